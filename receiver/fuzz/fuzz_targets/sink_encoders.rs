//! Whatever the decoder accepts, each sink encodes without panicking: (`edgepush_receiver_fuzz::sink_encoders`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::sink_encoders(data));
