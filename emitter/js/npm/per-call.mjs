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
// options object changed between calls finds its new series.
import { Emitter, checkValue } from "./edgepush.js";

// Handles a cache holds before it starts again; the emitter keeps its
// series either way, this bounds the cache's own memory.
const LIMIT = 10_000;
const END = Symbol("handle");
const CACHES = Symbol("edgepush per-call handles");

// The parts of the key for name and options, passed to `visit` in turn;
// false when a part is of a type registration refuses (the call then
// registers, which throws the error).
function parts(name, options, visit) {
  if (typeof name !== "string") return false;
  visit(name);
  const o = options ?? undefined;
  const unit = o?.unit;
  if (unit !== undefined && typeof unit !== "string") return false;
  visit(unit);
  visit(!!o?.highResolution);
  const d = o?.dimensions ?? undefined;
  if (d !== undefined) {
    if (typeof d !== "object") return false;
    for (const n of Object.keys(d)) {
      const v = d[n];
      if (typeof v !== "string") return false;
      visit(n);
      visit(v);
    }
  }
  return true;
}

// The cached handle for name and options, or undefined. (`parts` written
// out: a lookup is the hot path and allocates nothing.)
function find(root, name, options) {
  if (typeof name !== "string") return undefined;
  let node = root.get(name);
  if (node === undefined) return undefined;
  const o = options ?? undefined;
  node = node.get(o?.unit);
  if (node === undefined) return undefined;
  node = node.get(!!o?.highResolution);
  if (node === undefined) return undefined;
  const d = o?.dimensions ?? undefined;
  if (d !== undefined) {
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

function keep(cache, name, options, h) {
  if (cache.size >= LIMIT) {
    cache.root.clear();
    cache.size = 0;
  }
  let node = cache.root;
  const ok = parts(name, options, (part) => {
    let next = node.get(part);
    if (next === undefined) {
      next = new Map();
      node.set(part, next);
    }
    node = next;
  });
  if (ok && !node.has(END)) {
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
function handle(emitter, kind, name, options) {
  const caches = (emitter[CACHES] ??= [0, 1, 2].map(() => ({ root: new Map(), size: 0 })));
  const cache = caches[kind];
  let h = find(cache.root, name, options);
  if (h === undefined) {
    if (typeof name !== "string") throw invalidName();
    h = emitter[REGISTER[kind]](name, options);
    keep(cache, name, options, h);
  }
  return h;
}

// A value is refused (by the wasm, with its message) before its series is
// registered.
function valid(value) {
  if (!Number.isFinite(value)) checkValue(value);
}

function method(fn) {
  return { value: fn, writable: true, configurable: true };
}

Object.defineProperties(Emitter.prototype, {
  count: method(function count(name, value = 1, options = undefined) {
    valid(value);
    handle(this, 0, name, options).add(value);
  }),
  set: method(function set(name, value, options = undefined) {
    valid(value);
    handle(this, 1, name, options).set(value);
  }),
  record: method(function record(name, value, options = undefined) {
    valid(value);
    handle(this, 2, name, options).record(value);
  }),
});
