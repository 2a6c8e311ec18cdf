//! Queue messages and spool records (the same encoding): any bytes decode
//! to a batch or an error, and what the encoder writes decodes to itself.
#![no_main]

use edgepush_receiver::decode::wire_v1;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::queue_message::{self, SinkTag};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_points: 64,
        ..Limits::default()
    };
    let _ = queue_message::peek(data);
    let _ = queue_message::decode(data, NOW, &limits);
    // Round trip of whatever wire v1 accepts.
    if let Ok(decoded) = wire_v1::decode(data, NOW, &limits) {
        let mut points = 0;
        for message in queue_message::encode(&decoded.batch, SinkTag::CloudWatch) {
            let (tag, batch) = queue_message::decode(&message, NOW, &limits).expect("round trip");
            assert_eq!(tag, SinkTag::CloudWatch);
            points += batch.points.len();
        }
        assert_eq!(points, decoded.batch.points.len());
    }
});
