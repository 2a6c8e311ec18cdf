//! Gzip, for push bodies, sink bodies and queue messages.
//!
//! Natively this is flate2 (zlib-rs). Inside a Worker it is the runtime's own
//! zlib, which workerd exposes as `node:zlib` (the `nodejs_compat` flag in
//! `wrangler.toml`): native code, so the Worker's wasm carries no deflate or
//! inflate of its own and a push spends less CPU in them.

use core::fmt;

/// Why a body could not be inflated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The body inflates to more than the cap.
    TooLarge,
    /// Not gzip, or cut short; the decoder's reason.
    Invalid(String),
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::TooLarge => f.write_str("larger than the cap once decompressed"),
            InflateError::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// Gzip at the fast level: sink bodies and queue messages are compressed
/// once, on the hot path.
pub fn compress(data: &[u8]) -> Vec<u8> {
    imp::compress(data)
}

/// Inflates gzip (one member or several, one after the other), refusing
/// output beyond `max` bytes: inflation stops just past the cap, so a gzip
/// bomb costs at most `max` bytes of memory.
pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    let out = imp::inflate(data, max)?;
    if out.len() > max {
        return Err(InflateError::TooLarge);
    }
    Ok(out)
}

#[cfg(not(all(feature = "worker", target_arch = "wasm32")))]
mod imp {
    use super::InflateError;
    use std::io::{Read as _, Write as _};

    pub fn compress(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 4 + 64),
            flate2::Compression::fast(),
        );
        // Writing to a Vec cannot fail.
        let _ = gz.write_all(data);
        gz.finish().unwrap_or_default()
    }

    pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
        flate2::read::MultiGzDecoder::new(data)
            .take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| InflateError::Invalid(e.to_string()))?;
        Ok(out)
    }
}

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
pub use imp::unavailable;

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod imp {
    use super::InflateError;
    use wasm_bindgen::prelude::*;

    // `process.getBuiltinModule` rather than an `import`: the bundler that
    // worker-build runs would otherwise have to be told `node:zlib` is the
    // runtime's. Decoder errors come back as strings: "" for the output cap
    // (a RangeError from `maxOutputLength`), else the decoder's reason.
    #[wasm_bindgen(inline_js = r#"
let z;
const zlib = () => (z ??= process.getBuiltinModule("node:zlib"));
export function zlibMissing() {
  try {
    zlib().gzipSync;
    // crate::digest's hash comes from the same Node.js compatibility.
    process.getBuiltinModule("node:crypto").createHash;
    return "";
  } catch (e) {
    return String(e && e.message);
  }
}
export function gzip(data) {
  return zlib().gzipSync(data, { level: 1 });
}
export function gunzip(data, max) {
  const lib = zlib();
  try {
    return lib.gunzipSync(data, { maxOutputLength: max });
  } catch (e) {
    throw e instanceof RangeError ? "" : String(e && e.message);
  }
}
"#)]
    extern "C" {
        #[wasm_bindgen(js_name = zlibMissing)]
        fn zlib_missing() -> String;
        fn gzip(data: &[u8]) -> Vec<u8>;
        #[wasm_bindgen(catch)]
        fn gunzip(data: &[u8], max: f64) -> Result<Vec<u8>, JsValue>;
    }

    /// Why the runtime's zlib (or crypto, for [`crate::digest`]) cannot be
    /// reached (the Worker runs without Node.js compatibility), or `None`
    /// when they can.
    pub fn unavailable() -> Option<String> {
        let reason = zlib_missing();
        (!reason.is_empty()).then(|| {
            format!(
                "gzip and request signing need the runtime's node:zlib and node:crypto ({reason}): add compatibility_flags = [\"nodejs_compat\"] to wrangler.toml"
            )
        })
    }

    pub fn compress(data: &[u8]) -> Vec<u8> {
        gzip(data)
    }

    pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
        // One byte past the cap, so that "exactly at the cap" inflates.
        gunzip(data, max as f64 + 1.0).map_err(|e| match e.as_string() {
            Some(reason) if reason.is_empty() => InflateError::TooLarge,
            Some(reason) => InflateError::Invalid(reason),
            // Not the decoder's: the runtime's zlib itself failed (the
            // Worker checks that it is there before it decodes anything).
            None => InflateError::Invalid("the runtime's zlib failed".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_compressed_inflates_again() {
        let text = b"cpu,host=a value=1 1700000000000000000\n".repeat(100);
        let gz = compress(&text);
        assert!(gz.len() < text.len() / 4, "{} bytes", gz.len());
        assert_eq!(inflate(&gz, text.len()).expect("inflate"), text);
    }

    #[test]
    fn members_one_after_the_other_inflate_as_one() {
        let mut both = compress(b"hello ");
        both.extend(compress(b"world"));
        assert_eq!(inflate(&both, 100).expect("inflate"), b"hello world");
    }

    #[test]
    fn the_cap_is_inclusive_and_enforced() {
        let gz = compress(b"abcdef");
        assert_eq!(inflate(&gz, 6).expect("at the cap"), b"abcdef");
        assert_eq!(inflate(&gz, 5), Err(InflateError::TooLarge));
        let bomb = compress(&vec![0u8; 8 << 20]);
        assert_eq!(inflate(&bomb, 1 << 20), Err(InflateError::TooLarge));
    }

    #[test]
    fn what_is_not_gzip_is_invalid_with_a_reason() {
        for bad in [&b"not gzip at all"[..], &compress(b"cut short")[..10]] {
            match inflate(bad, 100) {
                Err(InflateError::Invalid(reason)) => assert!(!reason.is_empty()),
                other => panic!("{other:?}"),
            }
        }
    }
}
