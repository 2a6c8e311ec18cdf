// The runtime's floor for a push: read the body, make the two subrequests a
// push makes (bodies of the sizes the receiver sends), answer 202.
const cw = new Uint8Array(15000).fill(120);
const lp = new Uint8Array(9000).fill(121);
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response('{"status":"ok"}');
    await request.arrayBuffer();
    const send = (target, body) => fetch(target, { method: "POST", headers: { "content-type": "application/octet-stream", "content-encoding": "gzip" }, body }).then((r) => r.arrayBuffer());
    await send(env.CLOUDWATCH_ENDPOINT, cw);
    await send(env.INFLUXDB_URL + "/write?db=bench", lp);
    return new Response('{"accepted":1000}', { status: 202 });
  },
};
