// Recording and flush cost of the edgepush JavaScript package against
// aws-embedded-metrics (CloudWatch EMF, what Powertools-style Node functions
// use), in one Node.js process, interleaved A B A B, medians.
//
//   bash .ci/build-js && node emitter/js/bench.mjs
//
// One iteration = a counter increment and a distribution record on a series
// with 3 dimensions. Flush = 1,000 iterations recorded, then flushed:
// edgepush gzips and POSTs to an HTTP server in this process (loopback);
// aws-embedded-metrics serialises EMF JSON to stdout, which this script
// swallows so that no terminal is timed.
import http from "node:http";
import { createRequire } from "node:module";
import { Emitter } from "./pkg/node.mjs";

const require = createRequire(new URL("../../tests/workerd/package.json", import.meta.url));
process.env.AWS_EMF_ENVIRONMENT = "Local";
process.env.AWS_EMF_NAMESPACE = "Bench";
const { createMetricsLogger, Unit, StorageResolution } = require("aws-embedded-metrics");

const server = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(202, { "content-type": "application/json" }).end('{"accepted":0,"rejected_count":0,"rejected":[]}'));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const endpoint = `http://127.0.0.1:${server.address().port}/v1/metrics`;

const dims = { service: "api", route: "/buy", method: "POST" };
const opts = { unit: "Count", dimensions: dims };
const lat = { unit: "Milliseconds", dimensions: dims };
let swallowed = 0;
const realWrite = process.stdout.write.bind(process.stdout);
const swallow = (on) => {
  process.stdout.write = on ? (chunk) => ((swallowed += chunk.length), true) : realWrite;
};
const log = (s) => realWrite(s + "\n");

const N = 200_000;
const cases = {
  "edgepush, handles": () => {
    const m = new Emitter({ endpoint, namespace: "Bench" });
    const c = m.counter("requests", opts);
    const d = m.distribution("latency", lat);
    return (i) => {
      c.add(1);
      d.record(i % 1000);
    };
  },
  "edgepush, per call": () => {
    const m = new Emitter({ endpoint, namespace: "Bench" });
    return (i) => {
      m.count("requests", 1, opts);
      m.record("latency", i % 1000, lat);
    };
  },
  "aws-embedded-metrics, putMetric": () => {
    const logger = createMetricsLogger();
    logger.setDimensions(dims);
    return (i) => {
      logger.putMetric("requests", 1, Unit.Count, StorageResolution.Standard);
      logger.putMetric("latency", i % 1000, Unit.Milliseconds, StorageResolution.Standard);
    };
  },
};

function timeRecording(make) {
  const step = make();
  swallow(true);
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) step(i);
  const ns = Number(process.hrtime.bigint() - start) / N;
  swallow(false);
  return ns;
}

async function timeFlush(kind) {
  swallow(true);
  let start;
  if (kind === "edgepush") {
    const m = new Emitter({ endpoint, namespace: "Bench" });
    const c = m.counter("requests", opts);
    const d = m.distribution("latency", lat);
    for (let i = 0; i < 1000; i++) {
      c.add(1);
      d.record(i);
    }
    start = process.hrtime.bigint();
    const report = await m.flush();
    if (!report.ok) throw new Error(JSON.stringify(report));
  } else {
    const logger = createMetricsLogger();
    logger.setDimensions(dims);
    for (let i = 0; i < 1000; i++) {
      logger.putMetric("requests", 1, Unit.Count);
      logger.putMetric("latency", i, Unit.Milliseconds);
    }
    start = process.hrtime.bigint();
    await logger.flush();
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  swallow(false);
  return ms;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rounds = 15;
const rec = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < rounds + 2; r++) {
  for (const [name, make] of Object.entries(cases)) {
    const ns = timeRecording(make);
    if (r >= 2) rec[name].push(ns); // two warm-up rounds
  }
}
const flush = { edgepush: [], emf: [] };
for (let r = 0; r < 40; r++) {
  for (const kind of ["edgepush", "emf"]) {
    const ms = await timeFlush(kind);
    if (r >= 5) flush[kind].push(ms);
  }
}
const emfRec = median(rec["aws-embedded-metrics, putMetric"]);
log(`Node ${process.version}, ${rounds} interleaved rounds of ${N} iterations`);
log("| library | ns per iteration (median) | vs aws-embedded-metrics |");
log("| --- | ---: | ---: |");
for (const [name, xs] of Object.entries(rec)) {
  log(`| ${name} | ${median(xs).toFixed(1)} | ${(median(xs) / emfRec).toFixed(2)} |`);
}
log("");
log("| flush of 1,000 iterations | ms (median of 35) |");
log("| --- | ---: |");
log(`| edgepush: encode, gzip, POST on loopback | ${median(flush.edgepush).toFixed(3)} |`);
log(`| aws-embedded-metrics: EMF JSON to stdout | ${median(flush.emf).toFixed(3)} |`);
log(`(EMF printed ${swallowed} bytes in all, swallowed)`);
server.close();
