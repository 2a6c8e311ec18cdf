//! # edgepush-protocol
//!
//! What an edgepush emitter and an edgepush receiver agree on, in one
//! `no_std` + `alloc` crate both depend on:
//!
//! - [`wire`]: the batch a function pushes, in its three encodings,
//!   [`wire::v1`] (JSON), [`wire::v2`] (binary) and [`wire::v3`] (binary,
//!   dimension sets shared), each with its encoder and decoder;
//! - [`Unit`] and [`Resolution`]: CloudWatch's units and storage resolutions;
//! - [`limits`] and [`validate`]: the platform limits and the rules a name,
//!   dimension, value or statistic set must meet, checked by the emitter at
//!   registration and by the receiver at ingest, so the two cannot disagree;
//! - [`sign`] (feature `sign`): HMAC-SHA256 request signatures;
//! - [`format_number`] and [`json_numbers`]: numbers as edgepush writes them, in wire v1 and in
//!   the sinks' formats;
//! - [`answer`]: the receiver's answer to a push;
//! - [`compact`]: how a distribution with too many distinct values is
//!   compacted, keeping its count, sum and extremes exact.
//!
//! ```
//! use edgepush_protocol::wire::{self, Batch, Kind, Point, Series};
//!
//! let batch = Batch {
//!     v: wire::v2::VERSION,
//!     id: "b1".into(),
//!     ns: "Shop".into(),
//!     t: 1_764_000_000_000,
//!     dims: Default::default(),
//!     series: vec![Series { n: "orders".into(), k: Kind::Counter, u: None, d: Default::default(), r: None }],
//!     points: vec![Point { s: 0, x: Some(3.0), ..Point::default() }],
//! };
//! let bytes = wire::v2::encode(&batch);
//! assert_eq!(wire::v2::decode(&bytes), Ok(batch));
//! ```
//!
//! ## Features
//! - `sign`: the [`sign`] module (HMAC-SHA256 with `hmac` and `sha2`).
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;

pub mod answer;
pub mod compact;
pub mod limits;
mod number;
#[cfg(feature = "sign")]
pub mod sign;
mod unit;
pub mod validate;
pub mod wire;

pub use number::{format_number, json_numbers};
pub use unit::{Resolution, Unit, UnknownUnit};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
