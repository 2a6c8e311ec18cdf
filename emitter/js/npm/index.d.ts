// The package's entry points (node.mjs, workers.mjs): the emitter's classes
// and option types, and withMetrics for Lambda handlers.
import type { Emitter } from "./edgepush.js";

export {
  Counter,
  Distribution,
  Emitter,
  Gauge,
  Statistics,
  type EmitterOptions,
  type FlushOptions,
  type FlushReport,
  type MetricOptions,
  type Unit,
} from "./edgepush.js";

/**
 * Wraps an AWS Lambda handler: the emitter flushes before the handler's
 * result (or error) goes back, with the invocation's request id on any EMF
 * written. In a Worker, prefer ctx.waitUntil(emitter.flush()).
 */
export declare function withMetrics<E, C extends { awsRequestId?: string }, R>(
  emitter: Emitter,
  handler: (event: E, context: C) => Promise<R> | R,
): (event: E, context: C) => Promise<R>;
