// The emitter's per-call methods: count, set and record by name and
// options. Each finds its series' handle in a cache kept here, in
// JavaScript, so a call whose series is known crosses into the
// WebAssembly once, as a handle's own call does; a series not seen yet
// registers through counter(), gauge() or distribution(), which validate
// and throw their errors.
//
// The cache is a tree of Maps keyed by what registration reads, in order:
// the name, the unit, highResolution (as a boolean), then each dimension's
// name and value (the dimensions object's own enumerable properties, as
// registration reads them), and the handle under END. A lookup is a Map
// get per part, on strings whose hashes the engine keeps, and builds no
// string; it goes by the options' contents, never their identity, so an
// options object changed between calls finds its new series. A series
// not found registers with a snapshot of the options, cached under that
// same snapshot.
import { Emitter, checkValue } from "./edgepush.js";

// Handles a cache holds before it starts again; the emitter keeps its
// series either way, this bounds the cache's own memory.
const LIMIT = 10_000;
const END = Symbol("handle");
const CACHES = Symbol("edgepush per-call handles");

// What registration reads of `options`, read into a plain object that is
// both registered and cached (a getter that answers differently each time
// cannot make the cache and the series disagree); undefined when a part is
// of a type registration refuses (the call then registers with `options`
// as given, which throws the error, and caches nothing). The dimension
// names are kept in the order they were read, for the cache's path.
function snapshot(options) {
  if (options === null || (typeof options !== "object" && typeof options !== "function")) {
    return { unit: undefined, highResolution: false, dimensions: undefined, names: [] };
  }
  const unit = options.unit;
  if (unit !== undefined && typeof unit !== "string") return undefined;
  const highResolution = !!options.highResolution;
  const d = options.dimensions;
  let dimensions;
  let names = [];
  if (d !== undefined && d !== null) {
    if (typeof d !== "object") return undefined;
    names = Object.keys(d);
    dimensions = Object.create(null);
    for (const n of names) {
      const v = d[n];
      if (typeof v !== "string") return undefined;
      dimensions[n] = v;
    }
  }
  return { unit, highResolution, dimensions, names };
}

// The cached handle for name and options, or undefined: the snapshot's
// parts looked up in turn, each read once. (Written out, without the
// snapshot's copy: this is the hot path.)
function find(root, name, options) {
  let node = root.get(name);
  if (node === undefined) return undefined;
  let unit;
  let highResolution = false;
  let d;
  if (options !== null && (typeof options === "object" || typeof options === "function")) {
    unit = options.unit;
    highResolution = !!options.highResolution;
    d = options.dimensions;
  }
  node = node.get(unit);
  if (node === undefined) return undefined;
  node = node.get(highResolution);
  if (node === undefined) return undefined;
  if (d !== undefined && d !== null) {
    if (typeof d !== "object") return undefined;
    for (const n of Object.keys(d)) {
      const v = d[n];
      if (typeof v !== "string") return undefined;
      node = node.get(n);
      if (node === undefined) return undefined;
      node = node.get(v);
      if (node === undefined) return undefined;
    }
  }
  return node.get(END);
}

function child(node, part) {
  let next = node.get(part);
  if (next === undefined) {
    next = new Map();
    node.set(part, next);
  }
  return next;
}

// Caches `h` under name and a snapshot of the options.
function keep(cache, name, snap, h) {
  if (cache.size >= LIMIT) {
    cache.root.clear();
    cache.size = 0;
  }
  let node = child(child(child(cache.root, name), snap.unit), snap.highResolution);
  for (const n of snap.names) {
    node = child(child(node, n), snap.dimensions[n]);
  }
  if (!node.has(END)) {
    node.set(END, h);
    cache.size += 1;
  }
}

function invalidName() {
  const e = new Error("metric name must be a string");
  e.name = "EdgepushError";
  e.code = "invalid_metric_name";
  return e;
}

const REGISTER = ["counter", "gauge", "distribution"];

// The handle of `kind` (0 counter, 1 gauge, 2 distribution) for name and
// options: cached, or registered and kept.
function handle(emitter, kind, name, options, value) {
  const caches = (emitter[CACHES] ??= [0, 1, 2].map(() => ({ root: new Map(), size: 0 })));
  const cache = caches[kind];
  let h = typeof name === "string" ? find(cache.root, name, options) : undefined;
  if (h === undefined) {
    if (typeof name !== "string") throw invalidName();
    // Every bound the core puts on a value (finite, within CloudWatch's
    // range), before the series is registered.
    checkValue(value);
    const snap = snapshot(options);
    h = emitter[REGISTER[kind]](name, snap ?? options);
    if (snap !== undefined) keep(cache, name, snap, h);
  }
  return h;
}

// A value as the wasm takes it, converted once; one that is not finite is
// refused here (by the wasm, with its message), others out of range by the
// handle, or before registering (`handle`).
function valid(value) {
  const v = +value;
  if (!Number.isFinite(v)) checkValue(v);
  return v;
}

function method(fn) {
  return { value: fn, writable: true, configurable: true };
}

// A freed emitter's cached handles would still record, into an emitter
// that can no longer flush: freeing drops the cache, so per-call methods
// then throw as the others do.
const free = Emitter.prototype.free;
function freeCached() {
  delete this[CACHES];
  return free.call(this);
}

Object.defineProperties(Emitter.prototype, {
  count: method(function count(name, value = undefined, options = undefined) {
    const v = valid(value ?? 1);
    handle(this, 0, name, options, v).add(v);
  }),
  set: method(function set(name, value, options = undefined) {
    const v = valid(value);
    handle(this, 1, name, options, v).set(v);
  }),
  record: method(function record(name, value, options = undefined) {
    const v = valid(value);
    handle(this, 2, name, options, v).record(v);
  }),
  free: method(freeCached),
});
if (Symbol.dispose && Emitter.prototype[Symbol.dispose]) {
  Object.defineProperty(Emitter.prototype, Symbol.dispose, method(freeCached));
}
