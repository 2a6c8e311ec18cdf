//! `Edgepush-Signature` headers: any text parses or is refused with a
//! reason, and authentication never panics whatever the header and body.
#![no_main]

use edgepush_protocol::sign;
use edgepush_receiver::tenant::{TenantConfig, Tenants};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ok(parsed) = sign::parse(header) {
        assert!(sign::valid_nonce(parsed.nonce));
        let _ = parsed.verify("key", body);
    }
    let tenants =
        Tenants::new(vec![TenantConfig::new("t", &["key"], &["*"])], 300).expect("valid tenants");
    let _ = tenants.authenticate(Some(header), Some(header), body, 1_700_000_000_000);
    let _ = tenants.authenticate(Some(header), None, body, 1_700_000_000_000);
});
