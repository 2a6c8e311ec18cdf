//! Pushgateway-style pushes: the first line is the request path (routed as (`edgepush_receiver_fuzz::prometheus`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::prometheus(data));
