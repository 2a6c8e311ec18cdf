//! Queue messages and spool records (the same encoding): any bytes decode (`edgepush_receiver_fuzz::envelope`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::envelope(data));
