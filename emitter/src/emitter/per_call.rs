//! Recording per call, by [`Key`]: series already seen are found in an
//! index by one hash of the key as given and a comparison, without
//! building, validating or allocating anything; a key not seen before is
//! registered as a [`crate::Metric`] (validated then) and added to the
//! index.
//!
//! With `std`, each thread keeps the entries it used in a cache of its own
//! (`local`), so a repeat call takes no lock and touches no shared cache
//! line; otherwise, and on a thread's first use of a key, readers share the
//! index's lock (one atomic add and one subtract). The index is written only
//! when a key is seen for the first time. Keys that resolve to
//! the cardinality guard's overflow series are not indexed, so an unbounded
//! stream of new keys cannot grow it: those go through registration each
//! time, as they would through [`Emitter::counter`] (allocating, and
//! counted in [`crate::TelemetrySnapshot::series_overflowed`] per
//! recording rather than per handle); so do the same
//! dimensions given in more orders than twice
//! [`Config::max_series`](crate::Config::max_series) keys in all.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::hash::{BuildHasher, Hasher};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::Emitter;
use super::handles::{Handle, Target};
use crate::config::Key;
use crate::error::Result;
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};

/// Keys seen, with the series they record into.
#[derive(Debug, Default)]
pub(super) struct Index {
    hasher: RandomState,
    table: spin::RwLock<HashTable<Arc<Entry>>>,
}

/// One key as it was given, and where its recordings go.
#[derive(Debug)]
pub(super) struct Entry {
    hash: u64,
    kind: Kind,
    unit: Unit,
    resolution: Resolution,
    name: Box<str>,
    dimensions: Box<[(Box<str>, Box<str>)]>,
    target: Target,
}

impl Entry {
    fn matches(&self, kind: Kind, key: &Key<'_>) -> bool {
        self.kind == kind
            && self.unit == key.unit
            && self.resolution == key.resolution
            && same(&self.name, key.name)
            && self.dimensions.len() == key.dimensions.len()
            && self
                .dimensions
                .iter()
                .zip(key.dimensions)
                .all(|((n, v), (kn, kv))| same(n, kn) && same(v, kv))
    }
}

impl Index {
    /// One hash of the key as given: a word for its kind, unit, resolution
    /// and dimension count, then the name's and each dimension value's
    /// bytes (the hasher folds in each one's length). Dimension names are
    /// left out: they are the code's constants, seldom what tells two keys
    /// apart, and [`Entry::matches`] compares them anyway; hashing them
    /// would cost a recording a third more.
    #[inline]
    fn hash(&self, kind: Kind, key: &Key<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        let head = (kind as u64)
            | (key.unit as u64) << 8
            | (key.resolution as u64) << 16
            | (key.dimensions.len() as u64) << 24;
        h.write_u64(head);
        h.write(key.name.as_bytes());
        for (_, value) in key.dimensions {
            h.write(value.as_bytes());
        }
        h.finish()
    }
}

/// Whether `a` and `b` are the same string; short ones compared by a
/// few word loads rather than a call to `memcmp`.
#[inline(always)]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let len = a.len();
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |s: &[u8], at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    };
    match len {
        // Two overlapping loads cover every byte.
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        // The first, middle and last bytes are every byte.
        1..=3 => a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1],
        0 => true,
        _ => a == b,
    }
}

impl Emitter {
    /// Adds `v` to the counter `key`, registering it on first use. Invalid
    /// values are refused and counted as by [`crate::Counter::add`]; an
    /// error means the key itself was refused (see [`Emitter::counter`]).
    #[inline]
    pub fn add(&self, key: &Key<'_>, v: f64) -> Result<()> {
        self.per_call(Kind::Counter, key, Some(v), |t| t.add(&self.shared, v))
    }

    /// Sets the gauge `key`, registering it on first use; see
    /// [`Emitter::add`] and [`crate::Gauge::set`].
    #[inline]
    pub fn set(&self, key: &Key<'_>, v: f64) -> Result<()> {
        self.per_call(Kind::Gauge, key, None, |t| t.set(&self.shared, v))
    }

    /// Records `v` into the distribution `key`, registering it on first
    /// use; see [`Emitter::add`] and [`crate::Distribution::record`].
    #[inline]
    pub fn record(&self, key: &Key<'_>, v: f64) -> Result<()> {
        self.per_call(Kind::Distribution, key, Some(v), |t| {
            t.record(&self.shared, v, 1)
        })
    }

    /// Merges a statistic set into `key`, registering it on first use; see
    /// [`Emitter::add`] and [`crate::Statistics::record`].
    #[inline]
    pub fn record_statistics(
        &self,
        key: &Key<'_>,
        count: f64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> Result<()> {
        self.per_call(Kind::Statistics, key, None, |t| {
            t.merge(&self.shared, count, sum, min, max)
        })
    }

    /// Runs `record` on the series of `key`, found in the index or
    /// registered. `stage`: the value a counter adds or a distribution
    /// records once, which the thread's cache can stage itself.
    #[inline]
    fn per_call(
        &self,
        kind: Kind,
        key: &Key<'_>,
        stage: Option<f64>,
        record: impl FnOnce(&Target),
    ) -> Result<()> {
        let index = &self.shared.index;
        let hash = index.hash(kind, key);
        let matches = |e: &Arc<Entry>| e.hash == hash && e.matches(kind, key);
        #[cfg(feature = "std")]
        let record = match local::find(&self.shared, hash, matches, stage, record) {
            Ok(()) => return Ok(()),
            Err(record) => record,
        };
        {
            let table = index.table.read();
            if let Some(entry) = table.find(hash, matches) {
                #[cfg(feature = "std")]
                local::insert(&self.shared, entry);
                record(&entry.target);
                return Ok(());
            }
        }
        let _ = stage;
        let handle = self.seen_first(kind, key, hash)?;
        record(&handle.target);
        Ok(())
    }

    /// Registers a key seen for the first time and indexes it, unless it
    /// landed in the overflow series.
    #[cold]
    fn seen_first(&self, kind: Kind, key: &Key<'_>, hash: u64) -> Result<Handle> {
        let handle = self.register(key.metric(), kind)?;
        let overflowed = handle
            .target
            .cells
            .iter()
            .any(|cell| cell.id == super::registry::OVERFLOW_ID);
        if overflowed {
            return Ok(handle);
        }
        let mut table = self.shared.index.table.write();
        if table
            .find(hash, |e| e.hash == hash && e.matches(kind, key))
            .is_some()
        {
            return Ok(handle);
        }
        // Series are bounded; the orders their dimensions are given in are
        // bounded here too.
        if table.len() >= self.shared.config.max_series.saturating_mul(2) {
            return Ok(handle);
        }
        let entry = Arc::new(Entry {
            hash,
            kind,
            unit: key.unit,
            resolution: key.resolution,
            name: key.name.into(),
            dimensions: key
                .dimensions
                .iter()
                .map(|(n, v)| (Box::from(*n), Box::from(*v)))
                .collect(),
            target: handle.target.clone(),
        });
        #[cfg(feature = "std")]
        local::insert(&self.shared, &entry);
        table.insert_unique(hash, entry, |e| e.hash);
        Ok(handle)
    }
}

#[cfg(feature = "std")]
mod local;
#[cfg(test)]
mod tests;
