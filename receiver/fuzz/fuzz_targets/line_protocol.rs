//! Line protocol into its decoder: the first line is the write's query (`edgepush_receiver_fuzz::line_protocol`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::line_protocol(data));
