// Wraps a handler so the emitter flushes before the handler's result (or
// error) goes back, with the request id (AWS Lambda's context.awsRequestId)
// on any EMF written.
export function withMetrics(emitter, handler) {
  return async (event, context) => {
    try {
      return await handler(event, context);
    } finally {
      // A flush that fails must not turn the handler's result into an error.
      try {
        await emitter.flush({ requestId: context?.awsRequestId });
      } catch (e) {
        console.warn("edgepush: flush failed", e);
      }
    }
  };
}
