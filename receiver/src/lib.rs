//! # edgepush-receiver
//!
//! The receiving end of edgepush. It authenticates pushes, bounds and
//! validates them against CloudWatch's and line protocol's rules, and forwards
//! the accepted points to CloudWatch (`PutMetricData`) and to line-protocol
//! stores (InfluxDB 1/2/3, VictoriaMetrics, QuestDB).
//!
//! The core is sans-IO: [`ingest`] turns a request into a validated
//! [`model::Batch`], and each [`sink`] turns a batch into `http::Request`s and
//! classifies the answers. The native server ([`native`], feature `native`)
//! does the I/O with tokio and reqwest.
//!
//! ```
//! use edgepush_receiver::ingest::{Headers, Ingest};
//!
//! let body = br#"{"v":1,"id":"b1","ns":"Shop","t":1700000000000,
//!   "series":[{"n":"orders","k":"c","u":"Count"}],"points":[{"s":0,"x":3}]}"#;
//! let headers = Headers { content_type: Some("application/vnd.edgepush.v1+json"), ..Headers::default() };
//! let decoded = Ingest::default().decode(headers, body, 1_700_000_000_000).expect("valid");
//! assert_eq!(decoded.batch.points.len(), 1);
//! ```
//!
//! ## Features
//! - `native` (default): the `edgepush-receiver` server binary and `native`.
//! - `worker`: the Cloudflare Worker entry points (built for `wasm32` by
//!   `worker-build`; configured as [`env_config`] describes).

pub mod decode;
pub mod dedupe;
pub mod digest;
#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod edge;
pub mod env_config;
pub mod error;
pub mod gzip;
pub mod ingest;
pub mod limits;
pub mod model;
#[cfg(feature = "native")]
pub mod native;
pub mod pipeline;
pub mod queue_message;
pub mod sink;
pub mod tenant;

pub use error::{Error, Result};
