//! OTLP/HTTP exports into their decoder: the first byte chooses protobuf
//! or JSON, the rest is the body. Any bytes give a batch with every bad
//! data point named, or a 4xx; never a panic, and what is accepted obeys
//! the limits.
#![no_main]

use edgepush_receiver::decode::otlp::{self, Encoding, Mapping};
use edgepush_receiver_fuzz::{NOW, check, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let limits = limits();
    let result = otlp::decode(body, encoding, "Fuzz", &Mapping::default(), NOW, &limits);
    check(result, &limits);
});
