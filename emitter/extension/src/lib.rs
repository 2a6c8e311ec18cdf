//! The edgepush AWS Lambda extension, for functions in any language: it
//! takes the metrics their existing StatsD and DogStatsD clients send to
//! `127.0.0.1:8125` and their OpenTelemetry SDKs export to
//! `127.0.0.1:4318` (OTLP/HTTP), adds the platform's own from the Telemetry API, and
//! pushes them through edgepush as the flush policy says (adaptive by
//! default), writing what cannot be pushed as EMF to the function's log.
//!
//! The data path, in order: [`statsd`] reads datagrams (sans-IO),
//! [`recorder`] records their lines into the emitter, [`otlp`] OTLP
//! exports, [`platform`] the platform's events; [`listeners`] are the UDP and HTTP edges feeding
//! them, and [`lifecycle`] registers with Lambda and pushes per invocation
//! with `edgepush-lambda`'s [`LambdaMetrics`](edgepush_lambda::LambdaMetrics).

#[cfg(feature = "extension")]
pub mod lifecycle;
#[cfg(feature = "extension")]
pub mod listeners;
#[cfg(feature = "extension")]
pub mod otlp;
#[cfg(feature = "extension")]
pub mod platform;
pub mod recorder;
#[cfg(feature = "extension")]
pub mod settings;
pub mod statsd;

#[cfg(feature = "extension")]
pub use lifecycle::run;
#[cfg(feature = "extension")]
pub use settings::Settings;

#[cfg(test)]
pub(crate) mod testing;
