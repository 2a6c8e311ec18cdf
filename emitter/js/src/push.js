// Sends encoded batches to the edgepush receiver: gzip with the runtime's
// CompressionStream (Node.js 18+, Cloudflare Workers), POST with fetch,
// retries on throttling, 5xx and network errors with backoff inside the
// flush's time budget, and keeps what could not be sent for the next flush.
// A batch keeps its id across tries, so the receiver forwards it once.

async function gzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Milliseconds to wait before try `n` (1-based): Retry-After when the
// receiver gave one, else exponential backoff with full jitter.
function backoff(n, retryAfter) {
  const seconds = Number(retryAfter);
  if (retryAfter && Number.isFinite(seconds)) return seconds * 1000;
  return Math.random() * Math.min(2000, 100 * 2 ** n);
}

const utf8 = new TextEncoder();

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// The Edgepush-Signature of `body` with `key`, made now with a fresh nonce
// (WebCrypto: the same HMAC-SHA256 as the Rust emitter's `sign` module).
async function signature(key, body) {
  const t = Math.floor(Date.now() / 1000);
  const n = hex(crypto.getRandomValues(new Uint8Array(8)));
  const digest = await crypto.subtle.digest("SHA-256", concat(utf8.encode("edgepush key id\0"), utf8.encode(key)));
  const k = hex(new Uint8Array(digest)).slice(0, 16);
  const hmac = await crypto.subtle.importKey("raw", utf8.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const bytes = typeof body === "string" ? utf8.encode(body) : new Uint8Array(body);
  const mac = await crypto.subtle.sign("HMAC", hmac, concat(utf8.encode(`${t}.${n}.`), bytes));
  return `t=${t},n=${n},k=${k},v1=${hex(new Uint8Array(mac))}`;
}

// One batch: "sent" (with the receiver's answer), "retry" or "refused".
async function send(options, batch, deadline, report) {
  const headers = {
    "content-type": batch.contentType,
    "x-edgepush-batch": batch.id,
  };
  if (batch.gzip) headers["content-encoding"] = "gzip";
  if (options.apiKey && !options.sign) headers.authorization = `Bearer ${options.apiKey}`;
  let last = "";
  for (let n = 1; n <= options.attempts; n++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    let retryAfter = null;
    try {
      // Signed afresh on every attempt: the receiver refuses a signature it saw.
      if (options.apiKey && options.sign) headers["edgepush-signature"] = await signature(options.apiKey, batch.body);
      const response = await fetch(options.endpoint, {
        method: "POST",
        headers,
        body: batch.body,
        signal: AbortSignal.timeout(left),
      });
      const text = await response.text();
      if (response.ok) return { outcome: "sent", text };
      last = `${response.status}: ${text}`;
      if (response.status !== 429 && response.status < 500) {
        return { outcome: "refused", text: last };
      }
      retryAfter = response.headers.get("retry-after");
    } catch (e) {
      last = `${e && e.name}: ${e && e.message}`;
    }
    if (n < options.attempts) {
      const wait = backoff(n, retryAfter);
      if (Date.now() + wait >= deadline) break;
      report.retried++;
      await sleep(wait);
    }
  }
  return { outcome: "retry", text: last };
}

// Writes EMF documents to stdout, one per line: straight to the stream in
// Node.js (Lambda's console adds a prefix that would hide the JSON from
// CloudWatch Logs), through the console elsewhere.
function writeLines(lines) {
  const stdout = globalThis.process?.stdout;
  if (stdout?.write) stdout.write(lines.map((l) => `${l}\n`).join(""));
  else for (const l of lines) console.log(l);
}

export async function push(options, fresh, carry, flushOptions) {
  const report = {
    ok: true,
    batches: 0,
    points: 0,
    rejected: 0,
    retried: 0,
    pending: 0,
    dropped: 0,
    written: 0,
    errors: [],
  };
  const properties = {};
  if (typeof flushOptions?.requestId === "string") properties.requestId = flushOptions.requestId;
  // Taken out of carry while in flight, so a concurrent flush does not send
  // them too; what is not sent goes back, also when something throws.
  const queue = carry.splice(0, carry.length);
  const unsent = [];
  let done = 0;
  try {
    await sendAll(options, fresh, queue, unsent, properties, report, () => done++);
  } finally {
    // Batches not reached (an exception) go back with the unsent ones.
    carry.unshift(...unsent, ...queue.slice(done));
  }
  let bytes = carry.reduce((n, b) => n + b.body.length, 0);
  while (bytes > options.maxPendingBytes && carry.length > 0) {
    const old = carry.shift();
    bytes -= old.body.length;
    report.dropped += old.points;
    report.errors.push(`batch ${old.id} dropped: more than maxPendingBytes unsent`);
  }
  report.pending = carry.reduce((n, b) => n + b.points, 0);
  report.ok = report.pending === 0 && report.dropped === 0 && report.rejected === 0 && report.written === 0;
  if (!report.ok) console.warn("edgepush: flush incomplete", report);
  return report;
}

// Gzips `fresh` onto `queue`, then sends each batch of `queue` in order,
// calling `next` once a batch is settled (sent, refused, written as EMF or
// put in `unsent`).
async function sendAll(options, fresh, queue, unsent, properties, report, next) {
  for (const b of fresh) {
    let body = b.encoded;
    let gzipped = false;
    if (options.gzip) {
      try {
        body = await gzip(b.encoded);
        gzipped = true;
      } catch (e) {
        // Sent as it is rather than lost.
        report.errors.push(`batch ${b.id} not gzip'd: ${e && e.message}`);
      }
    }
    queue.push({
      id: b.id,
      points: b.points,
      body,
      gzip: gzipped,
      contentType: b.contentType,
      // The bytes before gzip, for EMF if it cannot be pushed.
      encoded: options.emf ? b.encoded : undefined,
    });
  }
  const deadline = Date.now() + options.timeoutMs;
  for (const batch of queue) {
    const { outcome, text } = await send(options, batch, deadline, report);
    if (outcome === "sent") {
      report.batches++;
      let answer = {};
      try {
        answer = JSON.parse(text);
      } catch {}
      const rejected = Number(answer.rejected_count) || 0;
      report.points += batch.points - rejected;
      report.rejected += rejected;
      for (const r of answer.rejected || []) report.errors.push(JSON.stringify(r));
    } else if (options.emf && writeEmf(options, batch, properties, report)) {
      report.errors.push(`batch ${batch.id} ${outcome === "refused" ? "refused" : "not sent"}, written as EMF: ${text}`);
    } else if (outcome === "refused") {
      report.dropped += batch.points;
      report.errors.push(`batch ${batch.id} refused: ${text}`);
    } else {
      unsent.push(batch);
      report.errors.push(`batch ${batch.id} not sent: ${text}`);
    }
    next();
  }
}

// Writes `batch` as EMF documents; false (and an error in the report) when
// it cannot be converted, so the batch is kept instead.
function writeEmf(options, batch, properties, report) {
  let lines;
  try {
    lines = options.emf(batch.encoded, properties);
  } catch (e) {
    report.errors.push(`batch ${batch.id} could not be written as EMF: ${e && e.message}`);
    return false;
  }
  writeLines(lines);
  report.written += batch.points;
  return true;
}
