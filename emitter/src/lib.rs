//! # edgepush
//!
//! Push metrics from serverless functions. A function registers counters,
//! gauges, distributions and statistic sets, records into them (aggregated in
//! memory), and flushes: the emitter encodes everything recorded as compact
//! wire v3 batches (binary, each dimension set written once; v2 and v1 JSON
//! on request), gzips them from 1 KiB on and pushes them to an edgepush
//! receiver, which forwards them to CloudWatch or a
//! line-protocol store.
//!
//! ```
//! use edgepush::{Config, Emitter, Metric, Unit};
//!
//! let emitter = Emitter::new(Config::new("Shop")?.dimension("service", "checkout")?);
//! let orders = emitter.counter(Metric::new("orders").unit(Unit::Count).dimension("route", "/buy"))?;
//! let latency = emitter.distribution(Metric::new("latency").unit(Unit::Milliseconds))?;
//!
//! // Recording takes no lock and allocates nothing: with `std`, counters
//! // and distributions stage into this thread's own buffer.
//! orders.increment();
//! latency.record(12.5);
//! latency.record(12.5);
//!
//! // At the end of the invocation: one batch, two points (a sum, and one
//! // value seen twice), ready to send.
//! let batches = emitter.flush_at(1_764_000_000_000)?;
//! assert_eq!((batches.len(), batches[0].points()), (1, 2));
//! # Ok::<(), edgepush::Error>(())
//! ```
//!
//! Pushing them to a receiver (feature `http`):
//!
//! ```no_run
//! # use edgepush::{Config, Emitter};
//! # let emitter = Emitter::new(Config::new("Shop")?);
//! use edgepush::HttpTransport;
//!
//! let transport = HttpTransport::new("https://metrics.example.com").api_key("...");
//! match emitter.push(&transport) {
//!     Ok(report) => println!("{} points accepted", report.accepted),
//!     // Nothing is lost: the batches come back, same ids, to retry or log.
//!     Err(failed) => eprintln!("{failed}; {} batches kept", failed.unsent.len()),
//! }
//! # Ok::<(), edgepush::Error>(())
//! ```
//!
//! ## What is recorded
//! - [`Counter`]: the sum over the interval.
//! - [`Gauge`]: the last value, with the count, sum, minimum and maximum of
//!   every value set.
//! - [`Distribution`]: CloudWatch values and counts. The first 150 distinct
//!   values of an interval are exact; later ones are grouped by 7 significant
//!   bits, each group sent as the exact mean of its values (at most 0.8 % from
//!   each), the interval's smallest and largest value as values of their own
//!   ([`edgepush_protocol::compact`]); when the table
//!   ([`Config::distribution_slots`]) is full the rest is summarised as a
//!   statistic set. Counts, sums, minima and maxima stay exact.
//! - [`Statistics`]: a statistic set (count, sum, minimum, maximum).
//!
//! Metrics may also record under subsets of their dimensions
//! ([`Metric::dimension_set`]) and at explicit times ([`Counter::add_at`]).
//! [`Config::max_series`] bounds the live series: past it, recordings count
//! into one overflow counter. [`Emitter::telemetry`] reports what the emitter
//! did, and [`Config::self_metrics`] pushes it too.
//!
//! ## Features
//! - `std` (default): the system clock ([`Emitter::flush`]), random batch-id
//!   prefixes, gzip bodies (flate2) and the [`Transport`] trait.
//! - `http`: [`HttpTransport`], a blocking client on `ureq`, plain HTTP.
//! - `sign`: HMAC-SHA256 request signatures (module `sign`,
//!   `HttpTransport::signing_key`); `no_std` like the core.
//! - `metrics`: `MetricsRecorder`, so code instrumented with the `metrics`
//!   crate's macros pushes through edgepush unchanged.
//! - `https` (default): `http` plus HTTPS through rustls with the webpki
//!   roots (about 1.4 MB of a stripped release binary; see
//!   `docs/BENCHMARKS.md`).
//!
//! Without default features the crate is `no_std` (it needs `alloc`): batches
//! are plain JSON and the caller supplies the time and sends the bytes.
//!
//! In AWS Lambda, crate `edgepush-lambda` runs a `lambda_runtime` handler
//! with an emitter and pushes at the end of each invocation, after the
//! response or periodically, with CloudWatch EMF (module `emf`) as the
//! fallback.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

mod cell;
mod config;
pub mod emf;
mod emitter;
mod encode;
mod error;
mod format;
mod gzip;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "metrics")]
mod metrics_recorder;
mod payload;
#[cfg(feature = "std")]
mod staging;
#[cfg(feature = "std")]
mod transport;

#[cfg(feature = "std")]
pub use config::DEFAULT_GZIP_FROM;
pub use config::{Config, Key, Metric};
pub use emitter::{
    Counter, Distribution, Emitter, Gauge, OVERFLOW_METRIC, Statistics, TelemetrySnapshot,
};
pub use error::{Error, Field, Quoted, Result};
#[cfg(feature = "http")]
pub use http::HttpTransport;
#[cfg(feature = "metrics")]
pub use metrics_recorder::{MetricsRecorder, cloudwatch_unit};
pub use payload::Payload;
#[cfg(feature = "std")]
pub use transport::{Ack, PushError, PushReport, SendError, Transport, send_all};
// What the emitter and the receiver agree on lives in `edgepush-protocol`;
// the parts a user of the emitter meets are re-exported here.
#[cfg(feature = "sign")]
pub use edgepush_protocol::sign;
pub use edgepush_protocol::{Resolution, Unit, UnknownUnit, limits, validate, wire};

/// Milliseconds since the Unix epoch by the system clock (JavaScript's
/// `Date.now()` on `wasm32-unknown-unknown`, where std has no clock).
#[cfg(all(feature = "std", target_arch = "wasm32", target_os = "unknown"))]
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Milliseconds since the Unix epoch by the system clock (JavaScript's
/// `Date.now()` on `wasm32-unknown-unknown`, where std has no clock).
#[cfg(all(
    feature = "std",
    not(all(target_arch = "wasm32", target_os = "unknown"))
))]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
