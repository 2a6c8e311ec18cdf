//! Wire v1 JSON straight into the decoder: any bytes give a batch or a 4xx
//! naming a field, never a panic; what is accepted obeys the limits.
#![no_main]

use edgepush_receiver::decode::wire::decode_v1;
use edgepush_receiver_fuzz::{NOW, check, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    check(decode_v1(data, NOW, &limits), &limits);
});
