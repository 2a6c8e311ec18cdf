//! # edgepush
//!
//! Push metrics from serverless functions. A function registers counters,
//! gauges, distributions and statistic sets, records into them (aggregated in
//! memory), and flushes: the emitter encodes everything recorded as compact
//! wire v1 batches, gzips them and pushes them to an edgepush receiver, which
//! forwards them to CloudWatch or a line-protocol store.
//!
//! ```no_run
//! use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};
//!
//! let emitter = Emitter::new(Config::new("Shop")?.dimension("service", "checkout")?);
//! let orders = emitter.counter(Metric::new("orders").unit(Unit::Count).dimension("route", "/buy"))?;
//! let latency = emitter.distribution(Metric::new("latency").unit(Unit::Milliseconds))?;
//!
//! orders.increment();
//! latency.record(12.5);
//!
//! let transport = HttpTransport::new("http://127.0.0.1:8787");
//! match emitter.push(&transport) {
//!     Ok(report) => println!("{} points accepted", report.accepted),
//!     // Nothing is lost: the batches come back to be retried or written elsewhere.
//!     Err(failed) => eprintln!("{failed}; {} batches kept", failed.unsent.len()),
//! }
//! # Ok::<(), edgepush::Error>(())
//! ```
//!
//! ## Features
//! - `std` (default): the system clock ([`Emitter::flush`]), random batch-id
//!   prefixes, gzip bodies (flate2) and the [`Transport`] trait.
//! - `http`: [`HttpTransport`], a blocking client on `ureq`, plain HTTP.
//! - `metrics`: `MetricsRecorder`, so code instrumented with the `metrics`
//!   crate's macros pushes through edgepush unchanged.
//! - `https` (default): `http` plus HTTPS through rustls with the webpki
//!   roots (about 1.4 MB of a stripped release binary; see
//!   `docs/BENCHMARKS.md`).
//!
//! Without default features the crate is `no_std` (it needs `alloc`): batches
//! are plain JSON and the caller supplies the time and sends the bytes.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod batch;
mod cell;
mod config;
mod emitter;
mod encode;
mod error;
pub mod limits;
#[cfg(feature = "metrics")]
mod metrics_recorder;
#[cfg(feature = "std")]
mod transport;
mod unit;
pub mod validate;
pub mod wire;

pub use batch::Batch;
pub use config::{Config, Metric};
pub use emitter::{
    Counter, Distribution, Emitter, Gauge, OVERFLOW_METRIC, Statistics, TelemetrySnapshot,
};
pub use error::{Error, Field, Result};
#[cfg(feature = "metrics")]
pub use metrics_recorder::{MetricsRecorder, cloudwatch_unit};
#[cfg(feature = "http")]
pub use transport::HttpTransport;
#[cfg(feature = "std")]
pub use transport::{Ack, PushError, PushReport, SendError, Transport, send_all};
pub use unit::{Resolution, Unit, UnknownUnit};

/// Milliseconds since the Unix epoch by the system clock.
#[cfg(feature = "std")]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
