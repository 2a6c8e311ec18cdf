//! Compacting a distribution: one rule for the emitter (past 150 distinct
//! values in an interval) and the receiver (past its memory bound when it
//! merges pushes).
//!
//! Values are grouped into buckets of 7 significant bits ([`quantize`]:
//! at most 2^-7, about 0.8 %, between a value and its bucket's key), and
//! each bucket is sent as the **exact mean** of the values it holds, with
//! their count. The smallest and the largest value are sent as values of
//! their own. So the SampleCount, Sum, Minimum and Maximum that CloudWatch
//! computes from the `Values` and `Counts` sent equal those of the values
//! recorded (the sum up to floating-point rounding), and a percentile read
//! from them is off by at most a bucket's width, 2^-7 of the value.

use alloc::vec::Vec;

/// Rounds to 7 significant bits (relative error at most 2^-7, about
/// 0.8 %), so at most 64 distinct keys remain per power of two.
pub fn quantize(v: f64) -> f64 {
    const SHIFT: u32 = 52 - 6;
    let bits = v.to_bits();
    let rounded = (bits + (1 << (SHIFT - 1))) & !((1u64 << SHIFT) - 1);
    let q = f64::from_bits(rounded);
    if q.is_finite() { q } else { v }
}

/// Values grouped under one key: a value recorded exactly (its own key) or
/// the values that [`quantize`] to the key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// The key: the value itself, or what the values round to.
    pub key: f64,
    /// How many values the bucket holds (more than 0).
    pub count: f64,
    /// Their sum less `key × count`: 0 when they all equal the key.
    pub deviation: f64,
}

/// The `Values` and `Counts` of `buckets` (ascending by key): ascending and
/// distinct, each value the mean of what its bucket holds, and `low` and
/// `high`, the smallest and largest value the buckets hold, as values of
/// their own (count 1) wherever their bucket's mean differs from them. The
/// extremes are taken out of `buckets`.
///
/// An extreme is taken out of the bucket keyed by itself if there is one,
/// else out of the bucket keyed by what it rounds to: where it was recorded.
pub fn values(buckets: &mut [Bucket], low: Option<f64>, high: Option<f64>) -> (Vec<f64>, Vec<f64>) {
    let low_own = low.filter(|e| take_out(buckets, *e));
    let high_own = high.filter(|e| Some(*e) != low && take_out(buckets, *e));
    // Means lie between the extremes; clamping only undoes rounding.
    let floor = low.unwrap_or(f64::NEG_INFINITY);
    let ceiling = high.unwrap_or(f64::INFINITY);
    let mut pairs: Vec<(f64, f64)> = Vec::with_capacity(buckets.len() + 2);
    pairs.extend(low_own.map(|e| (e, 1.0)));
    for b in buckets.iter() {
        let mean = (b.key + b.deviation / b.count).max(floor).min(ceiling);
        pairs.push((mean, b.count));
    }
    pairs.extend(high_own.map(|e| (e, 1.0)));
    // Buckets come in key order and each mean lies within its bucket, so
    // only neighbours can be out of order: an insertion sort is linear here.
    for i in 1..pairs.len() {
        let mut j = i;
        while j > 0 && pairs[j - 1].0 > pairs[j].0 {
            pairs.swap(j - 1, j);
            j -= 1;
        }
    }
    // Equal values become one.
    let mut values = Vec::with_capacity(pairs.len());
    let mut counts: Vec<f64> = Vec::with_capacity(pairs.len());
    for (v, c) in pairs {
        match counts.last_mut() {
            Some(n) if values.last() == Some(&v) => *n += c,
            _ => {
                values.push(v);
                counts.push(c);
            }
        }
    }
    (values, counts)
}

/// Takes one count of `e` out of its bucket, if the bucket's mean is not
/// `e` already; whether it did.
fn take_out(buckets: &mut [Bucket], e: f64) -> bool {
    let rounded = quantize(e);
    let mut at = None;
    for (i, b) in buckets.iter().enumerate() {
        if b.key == e {
            at = Some(i);
            break;
        }
        if b.key == rounded && at.is_none() {
            at = Some(i);
        }
    }
    let Some(b) = at.map(|i| &mut buckets[i]) else {
        return false;
    };
    if b.count > 1.0 && b.key + b.deviation / b.count != e {
        b.count -= 1.0;
        b.deviation -= e - b.key;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantize_error_is_bounded() {
        for v in [1.0, 1.001, 3.7, -12345.678, 1e-9, 6.02e23] {
            let q = quantize(v);
            assert!(((q - v) / v).abs() <= 1.0 / 128.0, "{v} -> {q}");
        }
    }

    /// Buckets as the emitter fills them: the first `exact` distinct values
    /// under their own key, later ones under what they round to (or their
    /// own key if it is already there).
    fn bucket(values: &[f64], exact: usize) -> (Vec<Bucket>, f64, f64) {
        let mut buckets: Vec<Bucket> = Vec::new();
        for &v in values {
            let at = |k: f64, buckets: &[Bucket]| buckets.iter().position(|b| b.key == k);
            let i = match at(v, &buckets) {
                Some(i) => i,
                None if buckets.len() < exact => {
                    buckets.push(Bucket {
                        key: v,
                        count: 0.0,
                        deviation: 0.0,
                    });
                    buckets.len() - 1
                }
                None => {
                    let q = quantize(v);
                    at(q, &buckets).unwrap_or_else(|| {
                        buckets.push(Bucket {
                            key: q,
                            count: 0.0,
                            deviation: 0.0,
                        });
                        buckets.len() - 1
                    })
                }
            };
            buckets[i].count += 1.0;
            buckets[i].deviation += v - buckets[i].key;
        }
        buckets.sort_by(|a, b| a.key.total_cmp(&b.key));
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (buckets, low, high)
    }

    /// 400 values, 250 distinct, as a new user tried: the sum and the
    /// extremes CloudWatch computes are those recorded.
    #[test]
    fn four_hundred_values_keep_their_sum_and_extremes() {
        let recorded: Vec<f64> = (0..400).map(|i| f64::from(i % 250) * 0.5 + 1.0).collect();
        let (mut buckets, low, high) = bucket(&recorded, 150);
        let (values, counts) = values(&mut buckets, Some(low), Some(high));
        let sum: f64 = values.iter().zip(&counts).map(|(v, c)| v * c).sum();
        assert_eq!(sum, recorded.iter().sum::<f64>());
        assert_eq!((values[0], values[values.len() - 1]), (1.0, 125.5));
        assert_eq!(counts.iter().sum::<f64>(), 400.0);
    }

    proptest! {
        /// Whatever is recorded, in whatever order, and however few values
        /// are kept exactly: counts, extremes and the sum are those
        /// recorded, values come ascending and distinct, and each value read
        /// back lies within a bucket's width of a value recorded.
        #[test]
        fn count_sum_and_extremes_are_exact(
            recorded in prop::collection::vec(
                prop_oneof![-1e6..1e6f64, 0.0..2.0f64, (0u32..50).prop_map(f64::from)],
                1..600,
            ),
            exact in 0usize..200,
        ) {
            let (mut buckets, low, high) = bucket(&recorded, exact);
            let (values, counts) = values(&mut buckets, Some(low), Some(high));
            prop_assert!(values.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
            prop_assert_eq!(counts.iter().sum::<f64>(), recorded.len() as f64);
            prop_assert_eq!(values[0], low);
            prop_assert_eq!(values[values.len() - 1], high);
            let sum: f64 = values.iter().zip(&counts).map(|(v, c)| v * c).sum();
            let exact_sum: f64 = recorded.iter().sum();
            let scale: f64 = recorded.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
            prop_assert!((sum - exact_sum).abs() <= scale * 1e-12, "{} vs {}", sum, exact_sum);
            for v in &values {
                let nearest = recorded
                    .iter()
                    .map(|r| (r - v).abs() / r.abs().max(f64::MIN_POSITIVE))
                    .fold(f64::INFINITY, f64::min);
                prop_assert!(nearest <= 1.0 / 64.0 || recorded.contains(v), "{} is far from every value", v);
            }
        }
    }
}
