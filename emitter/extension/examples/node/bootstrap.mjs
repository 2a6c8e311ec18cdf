// What Lambda's Node.js runtime does around a handler, for running this
// example under a local Runtime API (AWS_LAMBDA_RUNTIME_API): ask for the
// next event, call the handler, post its result or error. In Lambda the
// managed runtime does this; deploy index.mjs alone.
import { handler } from "./index.mjs";

const api = `http://${process.env.AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation`;
for (;;) {
  const next = await fetch(`${api}/next`);
  const id = next.headers.get("lambda-runtime-aws-request-id");
  const event = await next.json();
  try {
    const result = await handler(event, { awsRequestId: id });
    await fetch(`${api}/${id}/response`, { method: "POST", body: JSON.stringify(result) });
  } catch (e) {
    const error = { errorType: e.name, errorMessage: e.message };
    await fetch(`${api}/${id}/error`, { method: "POST", body: JSON.stringify(error) });
  }
}
