//! Wire v3 bytes straight into the decoder: any bytes give a batch or a 4xx (`edgepush_receiver_fuzz::wire_v3`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::wire_v3(data));
