//! # edgepush-receiver
//!
//! The core of the receiving end of edgepush, without I/O. It authenticates
//! pushes, bounds and validates them against CloudWatch's and line
//! protocol's rules, and forwards the accepted points to CloudWatch
//! (`PutMetricData`) and to line-protocol stores (InfluxDB 1/2/3,
//! VictoriaMetrics, QuestDB).
//!
//! [`pipeline`] handles one push from request to answer for every host;
//! [`ingest`] turns a request into a validated [`model::Batch`], and each
//! [`sink`] turns a batch into `http::Request`s and classifies the answers.
//! The hosts do the I/O: crate `edgepush-receiver-native` (the server and
//! its binary, with tokio, reqwest and the AWS SDK) and crate
//! `edgepush-receiver-worker` (the Cloudflare Worker).
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
//! - `formats` (default): every ingest format beside edgepush's wire
//!   formats (`ingest-otlp`, `ingest-line-protocol`, `ingest-prometheus`).
//! - `worker`: on wasm32, gzip and SHA-256 through the Workers runtime
//!   (`node:zlib`, `node:crypto`), for the Worker crate.

pub mod aggregate;
pub mod decode;
pub mod dedupe;
pub mod digest;
pub mod env_config;
pub mod envelope;
pub mod error;
pub mod gzip;
pub mod ingest;
pub mod limits;
pub mod model;
pub mod packed;
pub mod pipeline;
pub mod sink;
pub mod tenant;

pub use error::{Error, Result};
