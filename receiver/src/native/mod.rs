//! The native server: axum on tokio, forwarding with reqwest.

pub mod cloudwatch;
pub mod config;
mod forward;
mod server;
pub mod sink;
pub mod spool;
pub mod telemetry;

pub use forward::{Forwarded, Forwarder, Reqwest};
pub use server::{App, router, serve};
pub use sink::NativeSink;
