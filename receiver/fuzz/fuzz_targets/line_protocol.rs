//! Line protocol into its decoder: the first line is the write's query
//! string (`db=...&precision=...`, v1 or v2 by its first byte), the rest the
//! body. Any bytes give a batch with every bad line named, or a 4xx; never
//! a panic, and what is accepted obeys the limits.
#![no_main]

use edgepush_receiver::decode::line_protocol::{self, Mapping, Params};
use edgepush_receiver_fuzz::{NOW, check, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (query, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let v2 = query.first().is_some_and(|b| b % 2 == 1);
    let query = String::from_utf8_lossy(query);
    let params = match Params::from_query(v2, Some(&query)) {
        Ok(p) => p,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    let limits = limits();
    check(
        line_protocol::decode(body, &params, &Mapping::default(), None, NOW, &limits),
        &limits,
    );
});
