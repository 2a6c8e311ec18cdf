//! Packed batches (what the Worker's aggregators store): any bytes are an (`edgepush_receiver_fuzz::packed`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::packed(data));
