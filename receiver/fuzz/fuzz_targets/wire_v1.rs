//! Wire v1 JSON straight into the decoder: any bytes give a batch or a 4xx (`edgepush_receiver_fuzz::wire_v1`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::wire_v1(data));
