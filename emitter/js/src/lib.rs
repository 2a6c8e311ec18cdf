//! The edgepush emitter for JavaScript, compiled to WebAssembly with
//! `wasm-bindgen`: one package for Node.js (AWS Lambda) and Cloudflare Workers.
//!
//! The aggregation is the `no_std` core of [`edgepush`]; this crate only
//! turns JavaScript arguments into its types, its errors into JavaScript
//! `Error`s with a `code`, and hands the encoded batches to `push.js`, which
//! gzips them with the runtime's `CompressionStream` and posts them with
//! `fetch`, retrying and keeping what could not be sent for the next flush.
//! The per-call methods (`count`, `set`, `record`) are JavaScript
//! (`npm/per-call.mjs`): they find a handle in a cache kept there and call
//! it, crossing into the wasm once.
//!
//! Build the npm package with `.ci/build-js`; `emitter/js/npm/README.md`
//! documents the JavaScript API.
//!
//! One file over 500 lines, on purpose: the package's whole JavaScript API
//! (its TypeScript declarations included) reads top to bottom in one place;
//! each `#[wasm_bindgen]` item is a thin adapter onto the core.

use edgepush::{Config, Emitter as Core, Error, Field, Metric, Quoted, Unit};
use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A CloudWatch unit. */
export type Unit =
  | "Seconds" | "Microseconds" | "Milliseconds"
  | "Bytes" | "Kilobytes" | "Megabytes" | "Gigabytes" | "Terabytes"
  | "Bits" | "Kilobits" | "Megabits" | "Gigabits" | "Terabits"
  | "Percent" | "Count"
  | "Bytes/Second" | "Kilobytes/Second" | "Megabytes/Second" | "Gigabytes/Second" | "Terabytes/Second"
  | "Bits/Second" | "Kilobits/Second" | "Megabits/Second" | "Gigabits/Second" | "Terabits/Second"
  | "Count/Second" | "None";

/** Settings of an emitter. */
export interface EmitterOptions {
  /**
   * The receiver's base URL, such as "https://metrics.example.com" (what
   * EDGEPUSH_URL holds, as for the Rust emitter): batches go to its
   * /v1/metrics. A URL already ending in /v1/metrics is used as it is.
   */
  endpoint: string;
  /** CloudWatch namespace (not starting with "AWS/"). */
  namespace: string;
  /** Sent as "Authorization: Bearer <apiKey>", or used to sign with `sign`. */
  apiKey?: string;
  /** Sign each push with apiKey (an "Edgepush-Signature" HMAC-SHA256 by WebCrypto) instead of sending it. */
  sign?: boolean;
  /** Dimensions every metric gets. */
  dimensions?: Record<string, string>;
  /** Gzip batches with CompressionStream (default true). */
  gzip?: boolean;
  /** Time a flush may take, retries included, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Tries per batch within the timeout (default 3). */
  attempts?: number;
  /** Unsent batches kept for the next flush, in bytes (default 4 MiB); past it the oldest are dropped and counted. */
  maxPendingBytes?: number;
  /** Live series before the overflow series takes the rest (default 10,000). */
  maxSeries?: number;
  /**
   * Write what a flush cannot push (receiver down, refusing, or out of
   * time) to stdout as CloudWatch Embedded Metric Format, once, instead of
   * keeping it: in AWS Lambda, CloudWatch Logs turns it into the same
   * metrics. Default: on in AWS Lambda (AWS_LAMBDA_FUNCTION_NAME is set),
   * off elsewhere.
   */
  emf?: boolean;
}

/** Options of one flush. */
export interface FlushOptions {
  /** The invocation's request id, a property of each EMF document written. */
  requestId?: string;
}

/** Options of one metric. */
export interface MetricOptions {
  unit?: Unit;
  /** Dimensions of this metric, added to the emitter's. */
  dimensions?: Record<string, string>;
  /** 1-second storage resolution instead of 60 seconds. */
  highResolution?: boolean;
}

/** What a flush did. */
export interface FlushReport {
  /** True when every batch was delivered. */
  ok: boolean;
  /** Batches and data points the receiver accepted. */
  batches: number;
  points: number;
  /** Points the receiver refused (each named in errors). */
  rejected: number;
  /** Tries repeated after throttling, 5xx or network errors. */
  retried: number;
  /** Points kept to be sent at the next flush. */
  pending: number;
  /** Points dropped: refused batches (with emf, only those that could not be written as EMF either), or the oldest when maxPendingBytes was passed. */
  dropped: number;
  /** Points written to stdout as CloudWatch EMF instead (option emf). */
  written: number;
  /** What went wrong, as the receiver said it. */
  errors: string[];
}
"#;

#[wasm_bindgen(module = "/src/push.js")]
extern "C" {
    /// Gzips and posts `fresh` batches after those in `carry`; resolves to a
    /// `FlushReport`, leaving unsent batches in `carry`.
    #[wasm_bindgen(js_name = push)]
    fn push_batches(
        options: &JsValue,
        fresh: Array,
        carry: &Array,
        properties: &JsValue,
    ) -> js_sys::Promise;
}

/// An `Error` named `EdgepushError` with a machine-readable `code`.
fn error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("EdgepushError");
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

/// The code of a core error: what was wrong, in snake case.
fn code(e: &Error) -> String {
    match e {
        Error::Invalid { field, .. } => format!(
            "invalid_{}",
            match field {
                Field::Namespace => "namespace",
                Field::MetricName => "metric_name",
                Field::DimensionName => "dimension_name",
                Field::DimensionValue => "dimension_value",
                Field::Value => "value",
                Field::Count => "count",
                _ => "input",
            }
        ),
        Error::TooManyDimensions { .. } => "too_many_dimensions".into(),
        Error::DuplicateDimension { .. } => "duplicate_dimension".into(),
        Error::UnknownDimension { .. } => "unknown_dimension".into(),
        Error::Conflict { .. } => "conflict".into(),
        Error::Encode(_) => "encode".into(),
        _ => "config".into(),
    }
}

fn core_error(e: &Error) -> JsValue {
    error(&code(e), &e.to_string())
}

/// A property of an options object; `undefined` when the object is.
fn get(object: &JsValue, key: &str) -> JsValue {
    if object.is_undefined() || object.is_null() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn string_option(object: &JsValue, key: &str, required: bool) -> Result<Option<String>, JsValue> {
    let v = get(object, key);
    if v.is_undefined() {
        return if required {
            Err(error(
                "invalid_option",
                &format!("option {key} is required"),
            ))
        } else {
            Ok(None)
        };
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| error("invalid_option", &format!("option {key} must be a string")))
}

fn number_option(object: &JsValue, key: &str, min: u32) -> Result<Option<f64>, JsValue> {
    let v = get(object, key);
    if v.is_undefined() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= f64::from(min) => Ok(Some(n)),
        _ => Err(error(
            "invalid_option",
            &format!("option {key} must be a number of at least {min}"),
        )),
    }
}

/// The `[name, value]` pairs of a dimensions object.
fn dimensions(object: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    if object.is_undefined() || object.is_null() {
        return Ok(Vec::new());
    }
    if !object.is_object() {
        return Err(error(
            "invalid_option",
            "dimensions must be an object of name: value strings",
        ));
    }
    let entries = Object::entries(object.unchecked_ref());
    let mut out = Vec::with_capacity(entries.length() as usize);
    for entry in entries.iter() {
        let pair: Array = entry.unchecked_into();
        let name = pair.get(0).as_string().unwrap_or_default();
        let Some(value) = pair.get(1).as_string() else {
            return Err(error(
                "invalid_dimension_value",
                &format!("dimension value of {} must be a string", Quoted(&name)),
            ));
        };
        out.push((name, value));
    }
    Ok(out)
}

fn metric(name: &str, options: &JsValue) -> Result<Metric, JsValue> {
    let mut m = Metric::new(name);
    if let Some(unit) = string_option(options, "unit", false)? {
        let unit: Unit = unit.parse().map_err(|_| {
            error(
                "invalid_unit",
                &format!(
                    "unit {} is not a CloudWatch unit (such as \"Count\", \"Milliseconds\", \"Bytes/Second\")",
                    Quoted(&unit)
                ),
            )
        })?;
        m = m.unit(unit);
    }
    for (n, v) in dimensions(&get(options, "dimensions"))? {
        m = m.dimension(n, v);
    }
    if get(options, "highResolution").is_truthy() {
        m = m.high_resolution();
    }
    Ok(m)
}

/// Throws the `invalid_value` error for `v` if the core refuses it (not
/// finite, or past CloudWatch's range): the per-call methods
/// (`per-call.mjs`) ask before they register a series.
#[wasm_bindgen(js_name = checkValue)]
pub fn check_value(v: f64) -> Result<(), JsValue> {
    edgepush::validate::value(v).map_err(|reason| {
        // Formatting floats with `core::fmt` would add 16 KB of wasm.
        let shown = if v.is_nan() {
            "NaN"
        } else if v.is_infinite() {
            if v > 0.0 { "Infinity" } else { "-Infinity" }
        } else {
            "the value"
        };
        error(
            "invalid_value",
            &format!("{shown} {reason}: values must be finite numbers"),
        )
    })
}

/// Whether this runs in AWS Lambda: `AWS_LAMBDA_FUNCTION_NAME` is in
/// `process.env` (Node.js; Workers have no `process.env` by default).
fn in_aws_lambda() -> bool {
    let env = get(&get(&js_sys::global(), "process"), "env");
    !get(&env, "AWS_LAMBDA_FUNCTION_NAME").is_undefined()
}

thread_local! {
    /// `emf(encoded, properties)`: the EMF documents (JSON texts) of a
    /// batch `push.js` could not send (wire v3, the package's only
    /// encoding: its decoder alone is linked). One function for every
    /// emitter.
    static EMF: JsValue = Closure::<dyn Fn(Uint8Array, JsValue) -> Result<Array, JsValue>>::new(
        |encoded: Uint8Array, properties: JsValue| {
            let properties = dimensions(&properties)?;
            let properties: Vec<(&str, &str)> =
                properties.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let encoded = encoded.to_vec();
            let batch = edgepush::wire::v3::decode(&encoded)
                .map_err(|e| error("invalid_batch", &e.to_string()))?;
            let docs = edgepush::emf::documents(&batch, &properties);
            Ok(docs.iter().map(|d| JsValue::from(d.as_str())).collect())
        },
    )
    .into_js_value();
}

/// A random 64-bit instance id (batch ids start with it).
fn random_id() -> u64 {
    let high = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let low = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (high << 32) | low
}

/// Aggregates metrics in memory and pushes them to an edgepush receiver.
#[wasm_bindgen]
pub struct Emitter {
    core: Core,
    /// What `push.js` needs: endpoint, key and the retry settings.
    push: Object,
    /// Batches not sent yet, oldest first.
    carry: Array,
}

impl Emitter {
    /// Registers `name` with `options` through `kind` (`Core::counter`, ...).
    fn register<H>(
        &self,
        name: &str,
        options: &JsValue,
        kind: impl FnOnce(&Core, Metric) -> edgepush::Result<H>,
    ) -> Result<H, JsValue> {
        kind(&self.core, metric(name, options)?).map_err(|e| core_error(&e))
    }
}

#[wasm_bindgen]
impl Emitter {
    /// Creates an emitter; throws an `EdgepushError` when an option is wrong.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "EmitterOptions")] options: JsValue,
    ) -> Result<Emitter, JsValue> {
        if !options.is_object() {
            return Err(error("invalid_option", "options must be an object"));
        }
        let endpoint = string_option(&options, "endpoint", true)?.unwrap_or_default();
        let endpoint = edgepush::wire::push_url(&endpoint);
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(error(
                "invalid_option",
                &format!(
                    "option endpoint {} must be an http:// or https:// URL",
                    Quoted(&endpoint)
                ),
            ));
        }
        let namespace = string_option(&options, "namespace", true)?.unwrap_or_default();
        let mut config = Config::new(namespace)
            .map_err(|e| core_error(&e))?
            .instance_id(random_id());
        for (n, v) in dimensions(&get(&options, "dimensions"))? {
            config = config.dimension(n, v).map_err(|e| core_error(&e))?;
        }
        if let Some(n) = number_option(&options, "maxSeries", 1)? {
            config = config.max_series(n as usize);
        }
        let push = Object::new();
        let set = |key: &str, value: JsValue| {
            let _ = Reflect::set(&push, &key.into(), &value);
        };
        set("endpoint", endpoint.into());
        set(
            "apiKey",
            string_option(&options, "apiKey", false)?.map_or(JsValue::UNDEFINED, JsValue::from),
        );
        set(
            "gzip",
            (!get(&options, "gzip").loose_eq(&false.into())).into(),
        );
        set("sign", get(&options, "sign").is_truthy().into());
        let emf = match get(&options, "emf") {
            v if v.is_undefined() => in_aws_lambda(),
            v => v.is_truthy(),
        };
        if emf {
            set("emf", EMF.with(Clone::clone));
        }
        set(
            "timeoutMs",
            number_option(&options, "timeoutMs", 1)?
                .unwrap_or(5000.0)
                .into(),
        );
        set(
            "attempts",
            number_option(&options, "attempts", 1)?
                .unwrap_or(3.0)
                .floor()
                .into(),
        );
        set(
            "maxPendingBytes",
            number_option(&options, "maxPendingBytes", 0)?
                .unwrap_or(4.0 * 1024.0 * 1024.0)
                .into(),
        );
        Ok(Emitter {
            core: Core::new(config),
            push,
            carry: Array::new(),
        })
    }

    /// A counter handle: registering once and recording on the handle is
    /// the fastest way to record.
    pub fn counter(
        &self,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "MetricOptions")] options: JsValue,
    ) -> Result<Counter, JsValue> {
        self.register(name, &options, Core::counter).map(Counter)
    }

    /// A gauge handle.
    pub fn gauge(
        &self,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "MetricOptions")] options: JsValue,
    ) -> Result<Gauge, JsValue> {
        self.register(name, &options, Core::gauge).map(Gauge)
    }

    /// A distribution handle (CloudWatch values and counts).
    pub fn distribution(
        &self,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "MetricOptions")] options: JsValue,
    ) -> Result<Distribution, JsValue> {
        self.register(name, &options, Core::distribution)
            .map(Distribution)
    }

    /// A statistic-set handle (count, sum, minimum, maximum).
    pub fn statistics(
        &self,
        name: &str,
        #[wasm_bindgen(unchecked_param_type = "MetricOptions")] options: JsValue,
    ) -> Result<Statistics, JsValue> {
        self.register(name, &options, Core::statistics)
            .map(Statistics)
    }

    /// Series holding data not flushed yet.
    pub fn pending(&self) -> usize {
        self.core.pending()
    }

    /// Encodes everything recorded since the last flush and pushes it, with
    /// the batches an earlier flush could not send first. Resolves to a
    /// `FlushReport` (it does not reject when the receiver is down: what was
    /// not sent is written as EMF with option `emf`, or else stays for the
    /// next flush and is counted in `pending`).
    #[wasm_bindgen(unchecked_return_type = "Promise<FlushReport>")]
    pub fn flush(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "FlushOptions")] options: JsValue,
    ) -> js_sys::Promise {
        let batches = match self.core.flush_at(js_sys::Date::now() as i64) {
            Ok(b) => b,
            Err(e) => return js_sys::Promise::reject(&core_error(&e)),
        };
        let fresh = Array::new();
        for batch in &batches {
            let b = Object::new();
            let _ = Reflect::set(&b, &"id".into(), &batch.id().into());
            let _ = Reflect::set(&b, &"points".into(), &(batch.points() as f64).into());
            let _ = Reflect::set(
                &b,
                &"encoded".into(),
                &Uint8Array::from(batch.body()).into(),
            );
            let _ = Reflect::set(&b, &"contentType".into(), &batch.content_type().into());
            fresh.push(&b);
        }
        push_batches(&self.push, fresh, &self.carry, &options)
    }
}

/// A counter: a sum over the interval.
#[wasm_bindgen]
pub struct Counter(edgepush::Counter);

#[wasm_bindgen]
impl Counter {
    /// Adds `value` (default 1); throws on a value that is not finite.
    pub fn add(&self, value: Option<f64>) -> Result<(), JsValue> {
        let v = value.unwrap_or(1.0);
        check_value(v)?;
        self.0.add(v);
        Ok(())
    }
}

/// A gauge: the last value set, with the interval's statistics.
#[wasm_bindgen]
pub struct Gauge(edgepush::Gauge);

#[wasm_bindgen]
impl Gauge {
    /// Sets the value; throws on a value that is not finite.
    pub fn set(&self, value: f64) -> Result<(), JsValue> {
        check_value(value)?;
        self.0.set(value);
        Ok(())
    }
}

/// A distribution: distinct values and their counts.
#[wasm_bindgen]
pub struct Distribution(edgepush::Distribution);

#[wasm_bindgen]
impl Distribution {
    /// Records `count` (default 1) occurrences of `value`.
    pub fn record(&self, value: f64, count: Option<u32>) -> Result<(), JsValue> {
        check_value(value)?;
        let count = count.unwrap_or(1);
        if count == 0 {
            return Err(error("invalid_count", "count must be at least 1"));
        }
        self.0.record_many(value, count);
        Ok(())
    }
}

/// A statistic set.
#[wasm_bindgen]
pub struct Statistics(edgepush::Statistics);

#[wasm_bindgen]
impl Statistics {
    /// Records pre-aggregated samples.
    pub fn record(&self, count: f64, sum: f64, min: f64, max: f64) -> Result<(), JsValue> {
        for v in [count, sum, min, max] {
            check_value(v)?;
        }
        if count < 1.0 || min > max {
            return Err(error(
                "invalid_statistics",
                "a statistic set needs count >= 1 and min <= max",
            ));
        }
        self.0.record(count, sum, min, max);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_the_field() {
        let cases = [
            (Config::new("AWS/EC2").err(), "invalid_namespace"),
            (Config::new("").err(), "invalid_namespace"),
        ];
        for (e, want) in cases {
            let e = e.expect("refused");
            assert_eq!(code(&e), want, "{e}");
        }
        let too_many = Error::TooManyDimensions {
            name: "m".into(),
            count: 31,
        };
        assert_eq!(code(&too_many), "too_many_dimensions");
    }
}
