//! The merge: whatever batch wire v1 accepts, merged split in two and in (`edgepush_receiver_fuzz::aggregate`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::aggregate(data));
