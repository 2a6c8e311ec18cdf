//! `Edgepush-Signature` headers: any text parses or is refused with a (`edgepush_receiver_fuzz::signature`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::signature(data));
