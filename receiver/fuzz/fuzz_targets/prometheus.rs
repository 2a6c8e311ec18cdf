//! Pushgateway-style pushes: the first line is the request path (routed as
//! a PUT), the rest the Prometheus text body. Any bytes give a batch with
//! every bad sample named, or a 4xx; never a panic.
#![no_main]

use edgepush_receiver::decode::{Format, prometheus};
use edgepush_receiver_fuzz::{NOW, check, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (path, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/metrics/job/j"[..], data),
    };
    let path = String::from_utf8_lossy(path);
    let grouping = match Format::route("PUT", &path, None, Some("text/plain")) {
        Ok(Some(Format::Prometheus(g))) => g,
        Ok(_) => return,
        Err(e) => {
            assert!((400..500).contains(&e.status), "{e}");
            return;
        }
    };
    let limits = limits();
    check(
        prometheus::decode(body, &grouping, "Fuzz", NOW, &limits),
        &limits,
    );
});
