//! Emitter settings and metric descriptions.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, Field, Result};
use edgepush_protocol::limits::MAX_DIMENSIONS;
use edgepush_protocol::validate;
use edgepush_protocol::{Resolution, Unit};

/// [`Config::gzip_from`]'s default: 1 KiB. Below it gzip saves under
/// 800 bytes for 10-20 us of CPU, which pays only on links slower than a
/// few hundred Mbit/s, and a body that small goes in TCP's first flight
/// either way; from a few KiB on it pays on links up to about a Gbit/s
/// (`docs/BENCHMARKS.md`, "Where gzip pays").
#[cfg(feature = "std")]
pub const DEFAULT_GZIP_FROM: usize = 1024;

/// Emitter settings. [`Config::new`] validates the namespace; the other
/// setters validate what they are given.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) namespace: String,
    pub(crate) dimensions: Vec<(String, String)>,
    pub(crate) max_datums_per_batch: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_series: usize,
    pub(crate) distribution_slots: usize,
    pub(crate) max_timestamped: usize,
    pub(crate) self_metrics: bool,
    pub(crate) instance_id: u64,
    #[cfg(feature = "std")]
    pub(crate) gzip_level: u32,
    #[cfg(feature = "std")]
    pub(crate) gzip_from: usize,
    pub(crate) wire: edgepush_protocol::wire::Version,
}

impl Config {
    /// Settings for a CloudWatch namespace (1-255 characters, not `AWS/...`).
    pub fn new(namespace: impl Into<String>) -> Result<Self> {
        let namespace = namespace.into();
        validate::namespace(&namespace)
            .map_err(|reason| Error::invalid(Field::Namespace, &namespace, reason))?;
        Ok(Config {
            namespace,
            dimensions: Vec::new(),
            max_datums_per_batch: edgepush_protocol::limits::MAX_DATUMS_PER_REQUEST,
            max_batch_bytes: 1 << 20,
            max_series: 10_000,
            distribution_slots: 512,
            max_timestamped: 10_000,
            self_metrics: false,
            instance_id: default_instance_id(),
            #[cfg(feature = "std")]
            gzip_level: 5,
            #[cfg(feature = "std")]
            gzip_from: DEFAULT_GZIP_FROM,
            wire: edgepush_protocol::wire::Version::V3,
        })
    }

    /// Adds a dimension to every metric of this emitter (written once per batch).
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let (name, value) = check_dimension(name.into(), value.into())?;
        if self.dimensions.iter().any(|(n, _)| *n == name) {
            return Err(Error::DuplicateDimension { name });
        }
        if self.dimensions.len() == MAX_DIMENSIONS {
            return Err(Error::TooManyDimensions {
                name: "(common dimensions)".to_string(),
                count: MAX_DIMENSIONS + 1,
            });
        }
        self.dimensions.push((name, value));
        Ok(self)
    }

    /// Most CloudWatch datums in one batch (at least 1; default and most
    /// 1000, CloudWatch's limit per request). A distribution point counts one
    /// datum per 150 values.
    pub fn max_points_per_batch(mut self, datums: usize) -> Self {
        self.max_datums_per_batch =
            datums.clamp(1, edgepush_protocol::limits::MAX_DATUMS_PER_REQUEST);
        self
    }

    /// Most bytes of an encoded batch (before compression) in one batch;
    /// default 1 MiB. Measured exactly while the batch is assembled; a single point
    /// larger than this still goes out, alone.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Most live series (default 10,000). Registering more does not fail:
    /// the handle records into one overflow counter,
    /// `edgepush_series_overflow`, and [`crate::TelemetrySnapshot`] counts
    /// the refused series.
    pub fn max_series(mut self, series: usize) -> Self {
        self.max_series = series;
        self
    }

    /// Slots of each distribution's value table (a power of two, at least 16;
    /// default 512: the 150 exact values plus about five powers of two of
    /// rounded ones). Each slot costs 64 bytes (two buffers of 32), allocated
    /// at registration; more slots keep more distinct values per interval
    /// before values are rounded or summarised.
    pub fn distribution_slots(mut self, slots: usize) -> Self {
        self.distribution_slots = slots.max(16).next_power_of_two();
        self
    }

    /// Most explicitly timestamped points held between flushes (default
    /// 10,000); past it, `*_at` recordings hand their value back.
    pub fn max_timestamped(mut self, points: usize) -> Self {
        self.max_timestamped = points;
        self
    }

    /// Also pushes the emitter's own counters as metrics, prefixed
    /// `edgepush_` (see [`crate::TelemetrySnapshot`]).
    pub fn self_metrics(mut self, on: bool) -> Self {
        self.self_metrics = on;
        self
    }

    /// A number unique to this emitter instance; batch ids are made of it and
    /// a sequence number. With `std` it is random by default; without `std`
    /// it is 0 and should be set.
    pub fn instance_id(mut self, id: u64) -> Self {
        self.instance_id = id;
        self
    }

    /// The gzip level, 0 (store) to 9 (smallest); default 5, which on
    /// both wire formats measured as small as level 6 or smaller, a
    /// quarter faster (`docs/BENCHMARKS.md`).
    #[cfg(feature = "std")]
    pub fn gzip_level(mut self, level: u32) -> Self {
        self.gzip_level = level.min(9);
        self
    }

    /// Bodies of at least this many bytes (encoded, before compression) are
    /// gzip'd; smaller ones are sent as they are (default
    /// [`DEFAULT_GZIP_FROM`]). 0 gzips every body.
    #[cfg(feature = "std")]
    pub fn gzip_from(mut self, bytes: usize) -> Self {
        self.gzip_from = bytes;
        self
    }

    /// The wire version batches are encoded in:
    /// [`edgepush_protocol::wire::Version::V3`] (binary, each dimension set
    /// of a batch written once: the default), `V2` (binary, for receivers
    /// older than v3) or `V1` (JSON, for receivers older than v2).
    pub fn wire_version(mut self, version: edgepush_protocol::wire::Version) -> Self {
        self.wire = version;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// On `wasm32-unknown-unknown` std has no clock, process id or random
/// source (they panic): JavaScript's `Math.random` seeds the id.
#[cfg(all(feature = "std", target_arch = "wasm32", target_os = "unknown"))]
fn default_instance_id() -> u64 {
    let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) | half()
}

#[cfg(all(
    feature = "std",
    not(all(target_arch = "wasm32", target_os = "unknown"))
))]
fn default_instance_id() -> u64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is seeded from the OS's random source.
    std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()))
}

#[cfg(not(feature = "std"))]
fn default_instance_id() -> u64 {
    0
}

pub(crate) fn check_dimension(name: String, value: String) -> Result<(String, String)> {
    validate::dimension_name(&name)
        .map_err(|reason| Error::invalid(Field::DimensionName, &name, reason))?;
    validate::dimension_value(&value)
        .map_err(|reason| Error::invalid(Field::DimensionValue, &value, reason))?;
    Ok((name, value))
}

/// What to register: a metric name with its unit, dimensions and resolution.
#[derive(Clone, Debug)]
pub struct Metric {
    pub(crate) name: String,
    pub(crate) unit: Unit,
    pub(crate) dimensions: Vec<(String, String)>,
    pub(crate) dimension_sets: Vec<Vec<String>>,
    pub(crate) resolution: Resolution,
}

impl Metric {
    /// A metric with unit `None`, no dimensions of its own, 60 s resolution.
    pub fn new(name: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            unit: Unit::None,
            dimensions: Vec::new(),
            dimension_sets: Vec::new(),
            resolution: Resolution::Standard,
        }
    }

    /// Sets the unit.
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Adds a dimension (checked at registration).
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    /// Also records under a subset of this metric's dimensions (the
    /// emitter's common dimensions are always kept), like an EMF dimension
    /// set: `.dimension("route", r).dimension("method", m).dimension_set(["route"])`
    /// records each value under {route, method} and under {route}; an empty
    /// set records under the common dimensions alone. Each set is a series of
    /// its own, and each recording updates them all.
    pub fn dimension_set<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dimension_sets
            .push(names.into_iter().map(Into::into).collect());
        self
    }

    /// Stores the metric at one-second resolution.
    pub fn high_resolution(mut self) -> Self {
        self.resolution = Resolution::High;
        self
    }
}

/// A metric described by borrowed parts, for recording per call without a
/// handle ([`Emitter::add`](crate::Emitter::add) and the others): the
/// series is registered the first time (validated as [`Metric`] is), and
/// found again by a hash and a probe after that, without allocating.
///
/// Its builders are `const`, so a metric's name and unit can be a `const`
/// next to the code that records, with the dimensions added per call:
///
/// ```
/// use edgepush::{Config, Emitter, Key, Unit};
///
/// const ORDERS: Key<'static> = Key::new("orders").unit(Unit::Count);
///
/// let emitter = Emitter::new(Config::new("Shop")?);
/// let route = "/checkout";
/// emitter.add(&ORDERS.dimensions(&[("route", route)]), 1.0)?;
/// # Ok::<(), edgepush::Error>(())
/// ```
///
/// Dimensions are matched in the order given: the same dimensions in
/// another order are the same series, found by a second entry of the
/// per-call index. A key records into its one series only: extra dimension
/// sets ([`Metric::dimension_set`]) need a registered handle, and a key
/// naming a series that a handle also records into with extra sets does
/// not update those sets.
#[derive(Clone, Copy, Debug)]
pub struct Key<'a> {
    pub(crate) name: &'a str,
    pub(crate) unit: Unit,
    pub(crate) resolution: Resolution,
    pub(crate) dimensions: &'a [(&'a str, &'a str)],
}

impl<'a> Key<'a> {
    /// A key with unit `None`, no dimensions of its own, 60 s resolution.
    pub const fn new(name: &'a str) -> Self {
        Key {
            name,
            unit: Unit::None,
            resolution: Resolution::Standard,
            dimensions: &[],
        }
    }

    /// Sets the unit.
    pub const fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Stores the metric at one-second resolution.
    pub const fn high_resolution(mut self) -> Self {
        self.resolution = Resolution::High;
        self
    }

    /// Sets the dimensions (name, value), replacing any set before.
    pub const fn dimensions(mut self, dimensions: &'a [(&'a str, &'a str)]) -> Self {
        self.dimensions = dimensions;
        self
    }

    /// The name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The dimensions, as given.
    pub fn dimension_pairs(&self) -> &'a [(&'a str, &'a str)] {
        self.dimensions
    }

    /// The owned description registration takes.
    pub(crate) fn metric(&self) -> Metric {
        Metric {
            name: self.name.to_string(),
            unit: self.unit,
            dimensions: self
                .dimensions
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            dimension_sets: Vec::new(),
            resolution: self.resolution,
        }
    }
}
