//! SHA-256 of a request body, hex-encoded: SigV4's payload hash.
//!
//! Natively this is `sha2`. Inside a Worker it is the runtime's own
//! (`node:crypto`, native code, like the gzip in [`crate::gzip`]): `sha2`
//! compiled to wasm hashes a few times slower, and every CloudWatch body
//! is hashed once per request.

/// The lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    imp::sha256_hex(data)
}

#[cfg(not(all(feature = "worker", target_arch = "wasm32")))]
mod imp {
    use sha2::{Digest as _, Sha256};

    pub fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }
}

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod imp {
    use wasm_bindgen::prelude::*;

    // As for `node:zlib` (crate::gzip): reached through
    // `process.getBuiltinModule`, under the `nodejs_compat` flag, whose
    // presence the Worker checks before it does anything else.
    #[wasm_bindgen(inline_js = r#"
let c;
export function sha256Hex(data) {
  c ??= process.getBuiltinModule("node:crypto");
  return c.createHash("sha256").update(data).digest("hex");
}
"#)]
    extern "C" {
        #[wasm_bindgen(js_name = sha256Hex)]
        fn sha256_hex_js(data: &[u8]) -> String;
    }

    pub fn sha256_hex(data: &[u8]) -> String {
        sha256_hex_js(data)
    }
}

#[cfg(test)]
mod tests {
    use super::sha256_hex;

    #[test]
    fn known_digests() {
        // FIPS 180-2's examples.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
