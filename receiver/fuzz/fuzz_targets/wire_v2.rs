//! Wire v2 bytes straight into the decoder: any bytes give a batch or a 4xx
//! naming a field, never a panic; what is accepted obeys the limits and
//! encodes back to a body that decodes to the same batch.
#![no_main]

use edgepush_protocol::wire::v2;
use edgepush_receiver::decode::wire::decode_v2;
use edgepush_receiver_fuzz::{NOW, check, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    if let Ok(batch) = v2::decode(data) {
        let again = v2::encode(&batch);
        assert_eq!(v2::decode(&again).as_ref(), Ok(&batch), "re-encoded");
    }
    check(decode_v2(data, NOW, &limits), &limits);
});
