//! # edgepush-receiver-native
//!
//! The receiver as a native server, and its binary `edgepush-receiver`:
//! the push pipeline of crate `edgepush-receiver` hosted by axum on tokio
//! ([`App`] is its [`edgepush_receiver::pipeline::Host`]), forwarding with
//! reqwest, CloudWatch through the AWS SDK ([`cloudwatch`]), spools on disk
//! ([`spool`]), its own metrics ([`telemetry`]) and its configuration
//! ([`config`]).

pub mod aggregation;
pub mod cloudwatch;
pub mod config;
mod forward;
pub mod journal;
mod server;
pub mod sink;
pub mod spool;
pub mod telemetry;

pub use forward::{Forwarded, Forwarder, Reqwest};

/// Milliseconds since the Unix epoch, by the system clock (0 before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
pub use server::{App, router, serve};
pub use sink::NativeSink;
