// Runs under `node --test` in a project that installed the packed edgepush
// package (tests/tests/js_package.rs sets it up). Pushes to the native
// receiver at EDGEPUSH_URL; the Rust test reads the values back from the
// CloudWatch emulator behind it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "edgepush";

const endpoint = process.env.EDGEPUSH_URL;
const apiKey = process.env.EDGEPUSH_API_KEY;

function emitter(options = {}) {
  return new Emitter({ endpoint, apiKey, namespace: "JsNode", dimensions: { service: "shop" }, ...options });
}

test("values pushed through the receiver", async () => {
  const m = emitter();
  const orders = m.counter("orders", { unit: "Count", dimensions: { route: "/buy" } });
  orders.add();
  orders.add(2);
  m.count("orders", 4, { unit: "Count", dimensions: { route: "/buy" } });
  m.count("orders", undefined, { unit: "Count", dimensions: { route: "/cart" } });
  m.set("queue_depth", 7);
  m.set("queue_depth", 3);
  for (const v of [1.5, 2.5, 2.5, 40]) m.record("latency", v, { unit: "Milliseconds", highResolution: true });
  m.distribution("latency", { unit: "Milliseconds", highResolution: true }).record(10, 6);
  m.statistics("payload", { unit: "Bytes" }).record(4, 100, 10, 40);
  assert.equal(m.pending(), 5);
  const report = await m.flush();
  assert.deepEqual(
    { ok: report.ok, batches: report.batches, points: report.points, pending: report.pending, errors: report.errors },
    { ok: true, batches: 1, points: 5, pending: 0, errors: [] },
  );
  assert.equal(m.pending(), 0);
  const again = await m.flush();
  assert.equal(again.batches, 0, "nothing new, nothing sent");
});

test("batches go uncompressed when gzip is off", async () => {
  const m = emitter({ gzip: false });
  m.count("plain", 3);
  const report = await m.flush();
  assert.deepEqual([report.ok, report.points], [true, 1], JSON.stringify(report));
});

test("a receiver answering 503 is retried, then the batch is kept", async () => {
  const m = new Emitter({ endpoint: process.env.EDGEPUSH_DOWN_URL, apiKey, namespace: "JsNode", attempts: 2, timeoutMs: 5000 });
  m.count("kept", 1);
  const report = await m.flush();
  assert.deepEqual([report.ok, report.retried, report.pending, report.dropped], [false, 1, 1, 0], JSON.stringify(report));
  assert.match(report.errors[0], /not sent: 503/);
});

test("a refused key is reported, not thrown or retried", async () => {
  const m = emitter({ apiKey: "wrong", attempts: 3 });
  m.count("refused", 1);
  const report = await m.flush();
  assert.equal(report.ok, false);
  assert.equal(report.dropped, 1);
  assert.equal(report.retried, 0);
  assert.match(report.errors[0], /401/);
});

test("signed pushes are taken where bearer keys are refused", async () => {
  const url = process.env.EDGEPUSH_SIGNED_URL;
  const key = process.env.EDGEPUSH_SIGNING_KEY;
  const signed = new Emitter({ endpoint: url, apiKey: key, sign: true, namespace: "JsSigned" });
  signed.count("signed_orders", 2, { unit: "Count" });
  let report = await signed.flush();
  assert.equal(report.ok, true, JSON.stringify(report.errors));
  assert.equal(report.points, 1);
  // Uncompressed bodies are signed too.
  const plain = new Emitter({ endpoint: url, apiKey: key, sign: true, gzip: false, namespace: "JsSigned" });
  plain.count("signed_orders", 3, { unit: "Count" });
  report = await plain.flush();
  assert.equal(report.ok, true, JSON.stringify(report.errors));
  // The same key as a bearer key: this tenant accepts signed requests only.
  const bearer = new Emitter({ endpoint: url, apiKey: key, namespace: "JsSigned" });
  bearer.count("bearer_orders", 1);
  report = await bearer.flush();
  assert.equal(report.ok, false);
  assert.match(report.errors[0], /signed requests only/);
});

test("an unreachable receiver keeps the batch for the next flush", async () => {
  const m = new Emitter({ endpoint: "http://127.0.0.1:9/v1/metrics", namespace: "JsNode", timeoutMs: 400, attempts: 2 });
  m.count("kept", 1);
  const first = await m.flush();
  assert.deepEqual([first.ok, first.pending, first.dropped], [false, 1, 0]);
  m.count("kept", 1);
  const second = await m.flush();
  assert.deepEqual([second.pending, second.dropped], [2, 0], "the old batch and the new one");
  const tiny = new Emitter({ endpoint: "http://127.0.0.1:9/v1/metrics", namespace: "JsNode", timeoutMs: 200, attempts: 1, maxPendingBytes: 0 });
  tiny.count("kept", 1);
  const bounded = await tiny.flush();
  assert.deepEqual([bounded.pending, bounded.dropped], [0, 1], "past maxPendingBytes the oldest is dropped, and counted");
});

test("bad arguments throw EdgepushErrors naming the problem", () => {
  const m = emitter();
  const cases = [
    [() => m.count("c", NaN), "invalid_value", /NaN/],
    [() => m.set("g", Infinity), "invalid_value", /Infinity/],
    [() => m.record("d", 1, { unit: "Parsecs" }), "invalid_unit", /"Parsecs" is not a CloudWatch unit/],
    [() => m.count("c", 1, { dimensions: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`d${i}`, "v"])) }), "too_many_dimensions", /31 dimensions, more than the 30 allowed/],
    [() => m.count("c", 1, { dimensions: { route: 5 } }), "invalid_dimension_value", /must be a string/],
    [() => m.count("", 1), "invalid_metric_name", /is empty/],
    [() => m.count("c", 1, { dimensions: { service: "again" } }), "duplicate_dimension", /"service" is given twice/],
    [() => m.distribution("d", {}).record(1, 0), "invalid_count", /at least 1/],
    [() => m.statistics("s", {}).record(2, 10, 9, 1), "invalid_statistics", /min <= max/],
    [() => new Emitter({ endpoint, namespace: "AWS/Lambda" }), "invalid_namespace", /reserved/],
    [() => new Emitter({ endpoint: "ftp://x", namespace: "N" }), "invalid_option", /endpoint/],
    [() => new Emitter({ namespace: "N" }), "invalid_option", /endpoint is required/],
  ];
  for (const [call, code, message] of cases) {
    assert.throws(call, (e) => {
      assert.equal(e.name, "EdgepushError");
      assert.equal(e.code, code, e.message);
      assert.match(e.message, message);
      return true;
    });
  }
  m.count("c", 1);
  assert.throws(() => m.record("c", 1), (e) => e.code === "conflict");
  // Once a series is known, bad values and bad options still throw, and
  // options of the wrong type do not pass for no options.
  m.count("known", 1, { dimensions: { route: "/a" } });
  const again = [
    [() => m.count("known", NaN, { dimensions: { route: "/a" } }), "invalid_value"],
    [() => m.count("known", 1, { dimensions: 5 }), "invalid_option"],
    [() => m.count("known", 1, { dimensions: { route: 5 } }), "invalid_dimension_value"],
    [() => m.count("known", 1, { unit: 5 }), "invalid_option"],
    [() => m.count(5, 1), "invalid_metric_name"],
    [() => m.count("known", 1, { unit: "Bytes", dimensions: { route: "/a" } }), "conflict"],
  ];
  for (const [call, code] of again) {
    assert.throws(call, (e) => e.name === "EdgepushError" && e.code === code, code);
  }
});

test("per-call methods find a series by the options' contents", async () => {
  // Read back by tests/tests/js_package.rs.
  const m = emitter({ namespace: "JsPerCall" });
  // Registrations, counted: a call that finds its series registers nothing.
  let registered = 0;
  const counter = m.counter.bind(m);
  m.counter = (...args) => {
    registered += 1;
    return counter(...args);
  };
  const options = { unit: "Count", dimensions: { route: "/a", method: "GET" } };
  m.count("hits", 1, options);
  assert.equal(registered, 1);
  // A copy finds it; the same dimensions in another order register again
  // (another path in the cache), into the same series.
  m.count("hits", 4, structuredClone(options));
  assert.equal(registered, 1, "a copy of the options finds the cached handle");
  m.count("hits", 2, { unit: "Count", dimensions: { method: "GET", route: "/a" } });
  assert.equal(registered, 2);
  m.count("hits", 0, { unit: "Count", dimensions: { method: "GET", route: "/a" } });
  assert.equal(registered, 2);
  // The same object changed in place names another series.
  options.dimensions.route = "/b";
  m.count("hits", 8, options);
  assert.equal(registered, 3, "options changed in place are looked up anew");
  // A getter read once: what is registered is what is cached.
  let reads = 0;
  const shifty = {
    get unit() {
      reads += 1;
      return reads === 1 ? "Count" : "Bytes";
    },
  };
  m.count("shifty", 1, shifty);
  assert.equal(reads, 1, "read once, for the registration and the cache alike");
  assert.throws(() => m.count("shifty", 1, { unit: "Bytes" }), (e) => e.code === "conflict");
  // A value out of range registers nothing.
  const before = registered;
  assert.throws(() => m.count("huge", 1e200), (e) => e.code === "invalid_value");
  assert.throws(() => m.count("hits", 1e200, options), (e) => e.code === "invalid_value");
  assert.equal(registered, before, "refused values register no series");
  // No value, or null, counts one.
  m.count("ones");
  m.count("ones", null);
  options.highResolution = true;
  m.record("hits_hr", 1, options);
  // The resolution is part of what is looked up: the cached
  // high-resolution handle is not taken for the standard one.
  assert.throws(() => m.record("hits_hr", 1, { ...options, highResolution: false }), (e) => e.code === "conflict");
  m.set("depth", 3);
  m.set("depth", 5, null);
  m.set("depth", 6, { dimensions: null });
  assert.equal(m.pending(), 6, "hits /a, hits /b, shifty, ones, hits_hr, depth");
  const report = await m.flush();
  assert.deepEqual([report.ok, report.points], [true, 6], JSON.stringify(report));
  // A freed emitter's per-call methods throw, cached series or not.
  const gone = emitter();
  gone.count("c", 1);
  gone.free();
  assert.throws(() => gone.count("c", 1));
});
