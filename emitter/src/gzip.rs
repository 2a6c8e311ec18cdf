//! Compressing batch bodies: gzip from a size on
//! ([`Config::gzip_from`](crate::Config::gzip_from)), through one deflate
//! state per emitter that is reset, not rebuilt, between bodies (building
//! one allocates and clears a few hundred kilobytes: more than compressing
//! a small batch). Without `std`, bodies go as they are.

use alloc::vec::Vec;

use crate::error::Result;

/// An emitter's compressor.
#[derive(Debug)]
pub(crate) struct Compressor {
    #[cfg(feature = "std")]
    level: u32,
    #[cfg(feature = "std")]
    from: usize,
    /// Made at the first body to compress, then reused.
    #[cfg(feature = "std")]
    deflate: Option<flate2::Compress>,
}

impl Compressor {
    pub(crate) fn new(config: &crate::Config) -> Self {
        let _ = config;
        Compressor {
            #[cfg(feature = "std")]
            level: config.gzip_level,
            #[cfg(feature = "std")]
            from: config.gzip_from,
            #[cfg(feature = "std")]
            deflate: None,
        }
    }

    /// The body to send for `encoded`, and whether it is gzip'd.
    #[cfg(not(feature = "std"))]
    pub(crate) fn body(&mut self, encoded: Vec<u8>) -> Result<(Vec<u8>, bool)> {
        Ok((encoded, false))
    }

    /// The body to send for `encoded`, and whether it is gzip'd.
    #[cfg(feature = "std")]
    pub(crate) fn body(&mut self, encoded: Vec<u8>) -> Result<(Vec<u8>, bool)> {
        use flate2::{Compress, Compression, FlushCompress, Status};
        if encoded.len() < self.from {
            return Ok((encoded, false));
        }
        let level = self.level;
        let deflate = self
            .deflate
            .get_or_insert_with(|| Compress::new(Compression::new(level), false));
        deflate.reset();
        let mut out = Vec::with_capacity(encoded.len() / 3 + 64);
        // RFC 1952: magic, deflate, no flags, no time, the level's hint,
        // unknown OS.
        let hint = match level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, hint, 0xff]);
        loop {
            let read = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            let status = deflate
                .compress_vec(
                    &encoded[read.min(encoded.len())..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .map_err(|e| crate::Error::Encode(alloc::string::ToString::to_string(&e)))?;
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        let mut crc = flate2::Crc::new();
        crc.update(&encoded);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE: the length modulo 2^32.
        out.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        Ok((out, true))
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    fn compressor(level: u32, from: usize) -> Compressor {
        Compressor {
            level,
            from,
            deflate: None,
        }
    }

    proptest! {
        /// Whatever the body and level, a reused compressor writes gzip that
        /// any gzip reader reads back as the body; below the size it writes
        /// the body as it is.
        #[test]
        fn bodies_come_back_whole(
            bodies in prop::collection::vec(
                prop::collection::vec(prop::sample::select(&b"abcab\x00\xffxyz"[..]), 0..5000),
                1..6,
            ),
            level in 0u32..10,
            from in prop::sample::select(&[0usize, 1, 100, 1000][..]),
        ) {
            let mut c = compressor(level, from);
            for body in bodies {
                let (out, gzip) = c.body(body.clone()).expect("compresses");
                prop_assert_eq!(gzip, body.len() >= from);
                if gzip {
                    let mut back = Vec::new();
                    flate2::read::GzDecoder::new(&out[..])
                        .read_to_end(&mut back)
                        .expect("valid gzip");
                    prop_assert_eq!(back, body);
                } else {
                    prop_assert_eq!(out, body);
                }
            }
        }
    }

    #[test]
    fn an_incompressible_body_larger_than_its_first_guess_comes_back() {
        // Pseudo-random bytes: deflate's output exceeds the input's third.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let body: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (out, gzip) = compressor(5, 0).body(body.clone()).expect("compresses");
        assert!(gzip && out.len() > body.len() / 3);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .expect("valid gzip");
        assert_eq!(back, body);
    }
}
