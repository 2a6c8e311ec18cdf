// The package's entry points (node.mjs, workers.mjs): the emitter's classes
// and option types, and withMetrics for Lambda handlers.
import type { Emitter, MetricOptions } from "./edgepush.js";

// The per-call methods (per-call.mjs): each finds its series by name and
// options in a cache kept in JavaScript, registering it the first time.
declare module "./edgepush.js" {
  interface Emitter {
    /**
     * Adds `value` (default 1) to the counter named `name` with `options`,
     * registering it the first time; throws an `EdgepushError` for a value
     * that is not a finite number or a metric that cannot be registered.
     */
    count(name: string, value?: number, options?: MetricOptions): void;
    /** Sets the gauge named `name` with `options`. */
    set(name: string, value: number, options?: MetricOptions): void;
    /** Records `value` in the distribution named `name` with `options`. */
    record(name: string, value: number, options?: MetricOptions): void;
  }
}

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
