//! A whole request body through ingest: gzip (or identity) then wire v1,
//! with tight size caps, so gzip bombs and truncated streams are explored.
#![no_main]

use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::limits::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let ingest = Ingest {
        limits: Limits {
            max_body_bytes: 64 * 1024,
            max_decompressed_bytes: 256 * 1024,
            max_points: 64,
            ..Limits::default()
        },
        ..Ingest::default()
    };
    let headers = Headers {
        content_type: Some("application/vnd.edgepush.v1+json"),
        content_encoding: (first & 1 == 1).then_some("gzip"),
        ..Headers::default()
    };
    if let Err(e) = ingest.decode(headers, body, 1_700_000_000_000) {
        assert!((400..500).contains(&e.status), "{e}");
    }
});
