//! Queue messages and spool records (the same encoding): any bytes decode
//! to a batch or an error, and what the encoder writes decodes to itself.
#![no_main]

use edgepush_receiver::decode::wire::decode_v1;
use edgepush_receiver::envelope;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::SinkTag;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_points: 64,
        ..Limits::default()
    };
    let _ = envelope::peek(data);
    let _ = envelope::decode(data, NOW, &limits);
    // Round trip of whatever wire v1 accepts.
    if let Ok(decoded) = decode_v1(data, NOW, &limits) {
        let mut points = 0;
        for message in envelope::encode(&decoded.batch, SinkTag::CloudWatch) {
            let (tag, batch) = envelope::decode(&message, NOW, &limits).expect("round trip");
            assert_eq!(tag, SinkTag::CloudWatch);
            points += batch.points.len();
        }
        assert_eq!(points, decoded.batch.points.len());
    }
});
