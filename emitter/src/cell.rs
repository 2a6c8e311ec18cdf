//! Per-series aggregation state, recorded into without locks or allocation.
//!
//! With `std`, counters and distributions are mostly written through the
//! threads' staging buffers (`staging`), by one consumer at a time; the
//! cells stay safe for direct concurrent writers, which every kind has.
//!
//! A counter is one atomic word. Gauges, statistic sets and distributions
//! need several words to stay consistent with each other, so they use two
//! buffers: recorders write into the active one, and a flush switches
//! buffers, waits for the writers still in the old one (a handful of
//! instructions each) and drains it. Recorders never wait for a flush and
//! never for each other; only the flush waits.

use core::hint::spin_loop;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use alloc::boxed::Box;
use alloc::vec::Vec;
use edgepush_protocol::compact::{self, Bucket, quantize};
use portable_atomic::{AtomicU64, AtomicUsize};

/// Bit pattern of an f64 slot that holds no value. It is a NaN, and NaN is
/// never recorded (non-finite input is refused), so it is unambiguous.
pub(crate) const EMPTY: u64 = u64::MAX;

/// Adds `v` to the f64 in `slot` (treating [`EMPTY`] as nothing yet).
///
/// Sequentially consistent, as [`take_f64`] is: for a counter (a [`Sum`])
/// this add and the flush's take are what order a recorder's look at
/// whether its series is listed for the next flush against the flush
/// unlisting it (`emitter/series.rs`, `Touched`). Inside a [`Double`],
/// the writers' protocol orders them instead.
fn add_f64(slot: &AtomicU64, v: f64) {
    let _ = slot.fetch_update(SeqCst, SeqCst, |bits| {
        Some(
            if bits == EMPTY {
                v
            } else {
                f64::from_bits(bits) + v
            }
            .to_bits(),
        )
    });
}

/// Lowers the f64 in `slot` to `v` if `v` is smaller (or the slot is empty).
fn min_f64(slot: &AtomicU64, v: f64) {
    let _ = slot.fetch_update(AcqRel, Acquire, |bits| {
        (bits == EMPTY || v < f64::from_bits(bits)).then_some(v.to_bits())
    });
}

/// Raises the f64 in `slot` to `v` if `v` is larger (or the slot is empty).
fn max_f64(slot: &AtomicU64, v: f64) {
    let _ = slot.fetch_update(AcqRel, Acquire, |bits| {
        (bits == EMPTY || v > f64::from_bits(bits)).then_some(v.to_bits())
    });
}

fn take_f64(slot: &AtomicU64) -> Option<f64> {
    let bits = slot.swap(EMPTY, SeqCst);
    (bits != EMPTY).then(|| f64::from_bits(bits))
}

/// A counter's sum: one word, updated with compare-and-swap.
#[derive(Debug)]
pub(crate) struct Sum(AtomicU64);

impl Sum {
    pub(crate) fn new() -> Self {
        Sum(AtomicU64::new(EMPTY))
    }

    pub(crate) fn add(&self, v: f64) {
        add_f64(&self.0, v);
    }

    pub(crate) fn take(&self) -> Option<f64> {
        take_f64(&self.0)
    }

    pub(crate) fn has_data(&self) -> bool {
        self.0.load(Relaxed) != EMPTY
    }
}

/// Two buffers: recorders write into the active one; [`Double::take`]
/// switches and drains the other.
#[derive(Debug)]
pub(crate) struct Double<T> {
    generation: AtomicUsize,
    writers: [AtomicUsize; 2],
    buffers: [T; 2],
}

impl<T> Double<T> {
    pub(crate) fn new(a: T, b: T) -> Self {
        Double {
            generation: AtomicUsize::new(0),
            writers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            buffers: [a, b],
        }
    }

    /// Runs `f` on the active buffer. Never waits.
    #[inline]
    pub(crate) fn write<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        loop {
            let generation = self.generation.load(SeqCst);
            let i = generation & 1;
            self.writers[i].fetch_add(1, SeqCst);
            // If a flush switched buffers in between, it may already be
            // draining buffer `i`: step back and use the new one.
            if self.generation.load(SeqCst) == generation {
                let r = f(&self.buffers[i]);
                self.writers[i].fetch_sub(1, SeqCst);
                return r;
            }
            self.writers[i].fetch_sub(1, SeqCst);
        }
    }

    /// Runs `f` on the active buffer without the writers' protocol: to look
    /// at it, or to write into it when [`Double::take`] is excluded by other
    /// means (the emitter's registry lock, under which flushes take).
    pub(crate) fn active<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.buffers[self.generation.load(SeqCst) & 1])
    }

    /// Switches buffers, waits for the writers still in the old one, and
    /// drains it with `f`. Calls must not overlap (the emitter serialises
    /// flushes).
    pub(crate) fn take<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let i = self.generation.fetch_add(1, SeqCst) & 1;
        while self.writers[i].load(SeqCst) != 0 {
            spin_loop();
        }
        f(&self.buffers[i])
    }
}

/// Count, sum, minimum and maximum, each an atomic word.
#[derive(Debug)]
pub(crate) struct Stats {
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            count: AtomicU64::new(EMPTY),
            sum: AtomicU64::new(EMPTY),
            min: AtomicU64::new(EMPTY),
            max: AtomicU64::new(EMPTY),
        }
    }
}

impl Stats {
    pub(crate) fn record(&self, count: f64, sum: f64, min: f64, max: f64) {
        add_f64(&self.count, count);
        add_f64(&self.sum, sum);
        min_f64(&self.min, min);
        max_f64(&self.max, max);
    }

    pub(crate) fn has_data(&self) -> bool {
        self.count.load(Relaxed) != EMPTY
    }

    /// `[count, sum, min, max]`, emptying the buffer.
    pub(crate) fn take(&self) -> Option<[f64; 4]> {
        let count = take_f64(&self.count);
        let sum = take_f64(&self.sum);
        let min = take_f64(&self.min);
        let max = take_f64(&self.max);
        Some([count?, sum?, min?, max?])
    }
}

/// A gauge: the last value set, with the statistics of every value set.
#[derive(Debug, Default)]
pub(crate) struct GaugeBuffer {
    /// The value of the last `set`, stored after its statistics.
    last: LastValue,
    stats: Stats,
}

#[derive(Debug)]
struct LastValue(AtomicU64);

impl Default for LastValue {
    fn default() -> Self {
        LastValue(AtomicU64::new(EMPTY))
    }
}

impl GaugeBuffer {
    pub(crate) fn set(&self, v: f64) {
        self.stats.record(1.0, v, v, v);
        self.last.0.store(v.to_bits(), Relaxed);
    }

    pub(crate) fn has_data(&self) -> bool {
        self.stats.has_data()
    }

    /// The last value and `[count, sum, min, max]`.
    pub(crate) fn take(&self) -> Option<(f64, [f64; 4])> {
        let last = take_f64(&self.last.0);
        let stats = self.stats.take();
        Some((last?, stats?))
    }
}

/// Maps an f64 to a u64 whose order is the f64's order. Finite values never
/// map to 0, which marks a free slot.
pub(crate) fn order_key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits(); // folds -0.0 into 0.0
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The inverse of [`order_key`].
pub(crate) fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// How many distinct values a distribution keeps exactly per interval (one
/// CloudWatch datum's worth).
pub(crate) const EXACT_VALUES: usize = edgepush_protocol::limits::MAX_VALUES_PER_DATUM;

/// A distribution's values and counts: a fixed open-addressing table,
/// allocated once at registration.
///
/// The first [`EXACT_VALUES`] distinct values of an interval are kept
/// exactly; later new values are rounded by [`quantize`], and each slot
/// keeps what its values differ from its key by, so that a flush sends it
/// as their exact mean, with the interval's extremes as values of their own
/// ([`edgepush_protocol::compact`]: CloudWatch's count, sum, minimum and
/// maximum stay exact). When the table is full, values go into `overflow`
/// (count, sum, min and max, exact), so nothing recorded is ever lost.
#[derive(Debug)]
pub(crate) struct Table {
    keys: Box<[AtomicU64]>,
    counts: Box<[AtomicU64]>,
    /// Indices of the claimed slots, in claiming order: a drain visits only
    /// these, not the whole table.
    claimed: Box<[AtomicUsize]>,
    used: AtomicUsize,
    /// Per slot, as f64 bits: the sum of what its values differ from its
    /// key (0.0 when every value equals the key).
    deviations: Box<[AtomicU64]>,
    /// The smallest and largest value in a slot, as f64 bits.
    low: AtomicU64,
    high: AtomicU64,
    overflow: Stats,
}

/// `slots` words set to 0 (one function for every table column).
fn zeroed(slots: usize) -> Box<[AtomicU64]> {
    (0..slots).map(|_| AtomicU64::new(0)).collect()
}

/// How many slots a value's search visits before it gives up: a full or
/// crowded table costs a record a few probes, never a scan.
const MAX_PROBES: usize = 16;

/// What a distribution held at a flush.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Drained {
    /// Distinct values, ascending, with their counts.
    pub(crate) values: Vec<f64>,
    pub(crate) counts: Vec<f64>,
    /// Values that found no slot, as `[count, sum, min, max]`.
    pub(crate) overflow: Option<[f64; 4]>,
}

impl Table {
    /// A table of `slots` slots (rounded up to a power of two, at least 16).
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(16).next_power_of_two();
        Table {
            keys: zeroed(slots),
            counts: zeroed(slots),
            claimed: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            used: AtomicUsize::new(0),
            deviations: zeroed(slots),
            low: AtomicU64::new(EMPTY),
            high: AtomicU64::new(EMPTY),
            overflow: Stats::default(),
        }
    }

    pub(crate) fn has_data(&self) -> bool {
        self.used.load(Relaxed) > 0 || self.overflow.has_data()
    }

    pub(crate) fn record(&self, v: f64, count: u32) {
        let key = order_key(v);
        let slot = self
            .add(key, count, self.used.load(Relaxed) < EXACT_VALUES)
            .or_else(|| {
                // Past the exact values: round, and try again with the
                // rounded value, keeping what the value differs from it by.
                let q = quantize(v);
                let slot = self.add(order_key(q), count, true)?;
                if v != q {
                    add_f64(&self.deviations[slot], (v - q) * f64::from(count));
                }
                Some(slot)
            });
        if slot.is_some() {
            min_f64(&self.low, v);
            max_f64(&self.high, v);
        } else {
            let c = f64::from(count);
            self.overflow.record(c, v * c, v, v);
        }
    }

    /// Adds `count` to `key`'s slot, claiming a free slot only if `claim`;
    /// the slot's index, or `None` if there was none. Visits at most
    /// [`MAX_PROBES`] slots.
    #[inline]
    fn add(&self, key: u64, count: u32, claim: bool) -> Option<usize> {
        let mask = self.keys.len() - 1;
        // Fibonacci hashing: the product's top bits depend on every bit of
        // the key (an f64's low mantissa bits are often all zero).
        let bits = self.keys.len().trailing_zeros();
        let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize;
        for probe in 0..MAX_PROBES.min(self.keys.len()) {
            let i = (start + probe) & mask;
            let mut current = self.keys[i].load(Acquire);
            if current == 0 {
                if !claim {
                    return None;
                }
                match self.keys[i].compare_exchange(0, key, AcqRel, Acquire) {
                    Ok(_) => {
                        let n = self.used.fetch_add(1, AcqRel);
                        self.claimed[n].store(i, Release);
                        current = key;
                    }
                    Err(other) => current = other,
                }
            }
            if current == key {
                self.counts[i].fetch_add(u64::from(count), Relaxed);
                return Some(i);
            }
        }
        None
    }

    /// Empties the table (no writer may be in it: see [`Double::take`]).
    /// Visits only the claimed slots.
    pub(crate) fn drain(&self) -> Drained {
        // With no writer in the table, each slot is read and reset by a
        // plain load and store: a swap would cost a locked instruction
        // each, the bulk of a small flush.
        let take = |slot: &AtomicU64| {
            let v = slot.load(Acquire);
            slot.store(0, Relaxed);
            v
        };
        let used = self.used.load(Acquire);
        // (key, slot), in key order: ascending values.
        let mut order: Vec<(u64, u64)> = Vec::with_capacity(used);
        for claimed in &self.claimed[..used] {
            let i = claimed.load(Acquire);
            order.push((take(&self.keys[i]), i as u64));
        }
        order.sort_unstable_by_key(|(k, _)| *k);
        let mut buckets: Vec<Bucket> = Vec::with_capacity(used);
        for (key, i) in order {
            let i = i as usize;
            let count = take(&self.counts[i]);
            let deviation = f64::from_bits(take(&self.deviations[i]));
            if count > 0 {
                buckets.push(Bucket {
                    key: from_order_key(key),
                    count: count as f64,
                    deviation,
                });
            }
        }
        self.used.store(0, Release);
        let (low, high) = (take_f64(&self.low), take_f64(&self.high));
        let (values, counts) = compact::values(&mut buckets, low, high);
        Drained {
            values,
            counts,
            overflow: self.overflow.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_preserves_order_and_never_is_zero() {
        let mut vs = [
            3.0,
            -1.0,
            0.0,
            -0.0,
            1e-300,
            -1e300,
            2.5,
            f64::MAX,
            f64::MIN,
        ];
        vs.sort_by(f64::total_cmp);
        let keys: Vec<u64> = vs.iter().map(|v| order_key(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        assert!(keys.iter().all(|k| *k != 0));
        for v in vs {
            assert_eq!(from_order_key(order_key(v)), v + 0.0);
        }
    }

    #[test]
    fn table_keeps_exact_then_rounded_then_overflow_without_losing_counts() {
        let t = Table::new(256);
        let mut total = 0u64;
        let mut sum = 0.0;
        for i in 0..20_000u32 {
            let v = 1.0 + f64::from(i % 5000) * 0.37;
            t.record(v, 1 + i % 3);
            total += u64::from(1 + i % 3);
            sum += v * f64::from(1 + i % 3);
        }
        let d = t.drain();
        // A value per slot, and the two extremes as values of their own.
        assert!(d.values.len() <= 256 + 2);
        assert!(
            d.values.windows(2).all(|w| w[0] < w[1]),
            "ascending, distinct"
        );
        let [oc, os, omin, omax] = d.overflow.expect("a full table overflows");
        let counted: f64 = d.counts.iter().sum::<f64>() + oc;
        assert_eq!(counted, total as f64, "every count kept");
        let approx: f64 = d
            .values
            .iter()
            .zip(&d.counts)
            .map(|(v, c)| v * c)
            .sum::<f64>()
            + os;
        // The sum CloudWatch computes from values, counts and the overflow's
        // statistic set is the one recorded (each rounded slot is sent as
        // its values' mean), up to floating-point rounding.
        assert!(((approx - sum) / sum).abs() < 1e-12, "{approx} vs {sum}");
        // So are the extremes: the smallest and largest value, wherever
        // they went.
        let low = d.values[0].min(omin);
        let high = d.values[d.values.len() - 1].max(omax);
        assert_eq!((low, high), (1.0, 1.0 + 4999.0 * 0.37));
        assert_eq!(t.drain(), Drained::default(), "drained empty");
    }

    #[test]
    fn double_buffer_loses_nothing_under_concurrent_flushes() {
        let d = Double::new(Stats::default(), Stats::default());
        let per_thread = 20_000;
        let mut flushed = 0.0;
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..per_thread {
                        d.write(|b| b.record(1.0, 1.0, 1.0, 1.0));
                    }
                });
            }
            for _ in 0..200 {
                if let Some([count, sum, _, _]) = d.take(Stats::take) {
                    assert_eq!(count, sum, "a write is never split across flushes");
                    flushed += count;
                }
            }
        });
        for _ in 0..2 {
            if let Some([count, ..]) = d.take(Stats::take) {
                flushed += count;
            }
        }
        assert_eq!(flushed, f64::from(2 * per_thread));
    }
}
