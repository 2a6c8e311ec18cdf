// The runtime's floor under a push, for benchmarks (docs/BENCHMARKS.md,
// session 12): a JavaScript Worker that reads a push's body and makes the
// two subrequests the receiver makes, one after the other, with bodies of
// about the size the receiver sends for a 1,000-point batch, and answers
// 202. Run it beside the receiver's build with worker_ab:
//
//   EDGEPUSH_AB="tests/workerd/floor.js receiver/build/index.js" \
//     cargo run --release -p edgepush-tests --example worker_ab
const cloudwatch = new Uint8Array(15000).fill(120);
const lineProtocol = new Uint8Array(9000).fill(121);

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/healthz") {
      return new Response('{"status":"ok"}');
    }
    await request.arrayBuffer();
    const send = (url, body) =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/octet-stream", "content-encoding": "gzip" },
        body,
      }).then((response) => response.arrayBuffer());
    await send(env.EDGEPUSH_CLOUDWATCH_ENDPOINT, cloudwatch);
    await send(`${env.EDGEPUSH_INFLUXDB_URL}/write?db=bench`, lineProtocol);
    return new Response('{"accepted":1000}', { status: 202 });
  },
};
