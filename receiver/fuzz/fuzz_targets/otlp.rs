//! OTLP/HTTP exports into their decoder: the first byte chooses protobuf (`edgepush_receiver_fuzz::otlp`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::otlp(data));
