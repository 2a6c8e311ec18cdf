//! A whole request body through ingest: gzip (or identity) then wire v1, (`edgepush_receiver_fuzz::gzip_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| edgepush_receiver_fuzz::gzip_request(data));
