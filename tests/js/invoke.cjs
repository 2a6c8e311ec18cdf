// Invokes a bundled Lambda handler (argv[2]) as the runtime would, once per
// event of the JSON array argv[3], each with its own request id (req-1,
// req-2, ...). Results go to stderr: stdout is the function's log, where
// EMF documents are written.
const { handler } = require(require("node:path").resolve(process.argv[2]));

(async () => {
  let n = 0;
  for (const event of JSON.parse(process.argv[3])) {
    const result = await handler(event, { awsRequestId: `req-${++n}` });
    console.error(JSON.stringify(result));
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
