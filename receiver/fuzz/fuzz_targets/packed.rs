//! Packed batches (what the Worker's aggregators store): any bytes are an
//! error or a batch, never a panic; a batch read back packs and reads back
//! to the same points.
#![no_main]

use edgepush_receiver::model::Batch;
use edgepush_receiver::packed;
use libfuzzer_sys::fuzz_target;

/// Each point's series and value (NaN-safe through their debug form).
fn points_of(b: &Batch) -> Vec<String> {
    b.points
        .iter()
        .map(|p| format!("{:?} {} {:?}", b.series[p.series], p.timestamp_ms, p.value))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = packed::decode(data) {
        let again = packed::decode(&packed::encode(&batch)).expect("a packed batch reads back");
        assert_eq!((&again.id, &again.namespace), (&batch.id, &batch.namespace));
        assert_eq!(points_of(&again), points_of(&batch));
    }
});
