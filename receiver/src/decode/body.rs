//! Request bodies: content encoding, with a hard cap on decompressed size.

use crate::error::{Error, Result};
use crate::gzip::InflateError;
use std::borrow::Cow;

/// Undoes the `Content-Encoding` (`gzip` or `identity`), refusing a body that
/// is larger than `max` bytes once decompressed. Inflation stops at `max + 1`
/// bytes, so a gzip bomb costs at most `max` bytes of memory.
pub fn decode_content<'a>(
    body: &'a [u8],
    encoding: Option<&str>,
    max: usize,
) -> Result<Cow<'a, [u8]>> {
    let too_large = || {
        Error::new(
            413,
            "body_too_large",
            format!("body is larger than {max} bytes once decompressed"),
        )
        .field("body")
    };
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            if body.len() > max {
                return Err(too_large());
            }
            Ok(Cow::Borrowed(body))
        }
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            let out = crate::gzip::inflate(body, max).map_err(|e| match e {
                InflateError::TooLarge => too_large(),
                InflateError::Invalid(reason) => Error::new(
                    400,
                    "invalid_gzip",
                    format!("body is not valid gzip: {reason}"),
                )
                .field("body"),
            })?;
            Ok(Cow::Owned(out))
        }
        Some(other) => Err(Error::new(
            415,
            "unsupported_encoding",
            format!("content-encoding {other:?} is not supported; use gzip or identity"),
        )
        .field("content-encoding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).expect("write");
        gz.finish().expect("finish")
    }

    #[test]
    fn identity_and_gzip_bodies_decode() {
        assert_eq!(
            &*decode_content(b"abc", None, 10).expect("identity"),
            b"abc"
        );
        assert_eq!(
            &*decode_content(&gzip(b"abc"), Some("gzip"), 10).expect("gzip"),
            b"abc"
        );
        assert_eq!(
            &*decode_content(&gzip(b"abc"), Some("GZIP"), 3).expect("at cap"),
            b"abc"
        );
    }

    #[test]
    fn bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100 << 10, "a small body: {}", bomb.len());
        let err = decode_content(&bomb, Some("gzip"), 1 << 20).expect_err("too large");
        assert_eq!((err.status, err.error), (413, "body_too_large"));
    }

    #[test]
    fn truncated_gzip_is_a_400() {
        let body = gzip(b"some metrics that will be cut short");
        let err = decode_content(&body[..body.len() - 6], Some("gzip"), 1000).expect_err("cut");
        assert_eq!((err.status, err.error), (400, "invalid_gzip"));
    }

    #[test]
    fn unknown_encoding_is_a_415() {
        let err = decode_content(b"x", Some("br"), 10).expect_err("br");
        assert_eq!(
            (err.status, err.field.as_deref()),
            (415, Some("content-encoding"))
        );
        let err = decode_content(b"12345678901", None, 10).expect_err("large identity");
        assert_eq!(err.status, 413);
    }
}
