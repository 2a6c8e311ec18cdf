//! The emitter: registration, recording handles and flushing, a file per
//! role.
//!
//! - [`series`]: a series' identity, definition and aggregate state;
//! - [`registry`]: registering metrics into series (validation, dimension
//!   sets, the cardinality guard);
//! - [`handles`]: what recording goes through ([`Counter`], [`Gauge`],
//!   [`Distribution`], [`Statistics`]);
//! - [`per_call`]: recording by [`crate::Key`] without a handle, through
//!   an index of the keys seen;
//! - `staged` (with `std`): applying what threads staged to the series;
//! - [`flush`]: taking the aggregates and encoding them as batches;
//! - [`telemetry`]: the emitter's own counters and self-metrics;
//! - `push` (with `std`): sending batches through a [`crate::Transport`].

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
#[cfg(feature = "std")]
use alloc::vec::Vec;

use portable_atomic::AtomicU64;

use crate::config::Config;
use crate::encode::Taken;
use crate::format::Writer;
use crate::gzip::Compressor;
#[cfg(feature = "std")]
use crate::staging::{self, Buffer};

mod flush;
mod handles;
mod per_call;
#[cfg(feature = "std")]
mod push;
mod registry;
mod series;
#[cfg(feature = "std")]
mod staged;
mod telemetry;
#[cfg(test)]
mod tests;

pub use handles::{Counter, Distribution, Gauge, Statistics};
pub use registry::OVERFLOW_METRIC;
pub use telemetry::TelemetrySnapshot;

use registry::Registry;

/// What the registry and handles share.
#[derive(Debug)]
struct Shared {
    config: Config,
    /// The configured wire format's writer.
    writer: Writer,
    telemetry: telemetry::Telemetry,
    registry: spin::Mutex<Registry>,
    /// The series recorded into since the last flush.
    touched: series::Touched,
    /// Keys recorded by per call, with their series.
    index: per_call::Index,
    timestamped: spin::Mutex<BTreeMap<(usize, i64), Taken>>,
    sequence: AtomicU64,
    /// Gzip for batch bodies, its state kept between flushes.
    compressor: spin::Mutex<Compressor>,
    /// This emitter's id for the threads' staging buffers.
    #[cfg(feature = "std")]
    id: u64,
    /// Every thread's staging buffer for this emitter.
    #[cfg(feature = "std")]
    buffers: spin::Mutex<Vec<Arc<Buffer>>>,
}

/// Aggregates metrics in memory and turns them into wire batches on flush.
///
/// Cheap to clone: clones share one registry. Registering allocates; recording
/// through a handle does not, and takes no lock.
#[derive(Clone, Debug)]
pub struct Emitter {
    shared: Arc<Shared>,
}

impl Emitter {
    /// An emitter with these settings.
    pub fn new(config: Config) -> Self {
        let self_metrics = config.self_metrics;
        let compressor = spin::Mutex::new(Compressor::new(&config));
        let emitter = Emitter {
            shared: Arc::new(Shared {
                writer: Writer(config.wire),
                config,
                telemetry: telemetry::Telemetry::default(),
                registry: spin::Mutex::new(Registry::default()),
                touched: series::Touched::default(),
                index: per_call::Index::default(),
                timestamped: spin::Mutex::new(BTreeMap::new()),
                sequence: AtomicU64::new(0),
                compressor,
                #[cfg(feature = "std")]
                id: staging::next_owner(),
                #[cfg(feature = "std")]
                buffers: spin::Mutex::new(Vec::new()),
            }),
        };
        if self_metrics {
            emitter.register_self_metrics();
        }
        emitter
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}
