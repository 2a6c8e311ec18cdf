//! The merge: whatever batch wire v1 accepts, merged split in two and in
//! the other order, keeps the count of every number point, and its minimum
//! and maximum (exactly when counts are whole numbers, as emitters send
//! them; within them otherwise), and each merged batch comes back whole
//! from an envelope.
#![no_main]

use edgepush_receiver::aggregate::Aggregator;
use edgepush_receiver::decode::wire::decode_v1;
use edgepush_receiver::envelope;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::{Batch, Value};
use edgepush_receiver::sink::SinkTag;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

/// Count, minimum and maximum over every number point of `batches`.
fn totals(batches: &[Batch]) -> (f64, f64, f64) {
    let (mut count, mut low, mut high) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for b in batches {
        for p in &b.points {
            if let Some(s) = p.value.statistics() {
                count += s.count;
                low = low.min(s.min);
                high = high.max(s.max);
            }
        }
    }
    (count, low, high)
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_points: 64,
        ..Limits::default()
    };
    let Ok(decoded) = decode_v1(data, NOW, &limits) else {
        return;
    };
    let batch = decoded.batch;
    let half = batch.points.len() / 2;
    let mut first = batch.clone();
    first.points.truncate(half);
    let second = batch.from_point(half).into_owned();
    let mut aggregator = Aggregator::new();
    aggregator.add(&second);
    aggregator.add(&first);
    let merged = aggregator.take_all(NOW);
    assert_eq!(aggregator.open(), 0);
    // A merged batch travels in envelopes (spools, queues) unchanged.
    for b in &merged {
        let messages = envelope::encode(b, SinkTag::CloudWatch);
        if messages.len() == 1 {
            let (_, back) = envelope::decode(&messages[0], NOW, &Limits::default())
                .unwrap_or_else(|e| panic!("{b:?}: {}", e.message));
            assert_eq!(&back, b);
        }
    }
    let (count, low, high) = totals(&merged);
    let (pushed, pushed_low, pushed_high) = totals(std::slice::from_ref(&batch));
    assert!(
        (count - pushed).abs() <= pushed.abs() * 1e-9,
        "{count} vs {pushed}"
    );
    let whole = batch.points.iter().all(|p| match &p.value {
        Value::Distribution { counts, .. } => counts.iter().all(|c| *c >= 1.0 && c.fract() == 0.0),
        _ => true,
    });
    if whole {
        assert_eq!((low, high), (pushed_low, pushed_high));
    } else {
        assert!(low >= pushed_low && high <= pushed_high);
    }
});
