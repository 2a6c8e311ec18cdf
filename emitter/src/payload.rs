//! A payload: one batch encoded, ready to push.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Result;
use crate::format::{BatchWriter, Writer};
use edgepush_protocol::wire;

/// The payload of one push: a batch's id and its body (wire v3, or v2 or v1
/// if configured), gzip'd when the `std` feature is on and the body is at
/// least [`Config::gzip_from`](crate::Config::gzip_from) bytes.
///
/// A payload that could not be sent is handed back to the caller, who can send
/// it again as it is: the id stays the same, so the receiver can recognise
/// the retry.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    id: String,
    points: usize,
    body: Vec<u8>,
    gzip: bool,
    version: wire::Version,
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Payload")
            .field("id", &self.id)
            .field("points", &self.points)
            .field("bytes", &self.body.len())
            .field("gzip", &self.gzip)
            .finish()
    }
}

impl Payload {
    /// A batch `id` of `points` points whose body, as sent, is `body`
    /// (gzip'd if `gzip`).
    pub(crate) fn new(
        id: String,
        points: usize,
        body: Vec<u8>,
        gzip: bool,
        version: wire::Version,
    ) -> Self {
        Payload {
            id,
            points,
            body,
            gzip,
            version,
        }
    }

    /// The batch id (also in the body and the `x-edgepush-batch` header).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many points the batch carries.
    pub fn points(&self) -> usize {
        self.points
    }

    /// The body as sent.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The `Content-Type` to send the body with.
    pub fn content_type(&self) -> &'static str {
        self.version.content_type()
    }

    /// The wire version the body is in.
    pub fn version(&self) -> wire::Version {
        self.version
    }

    /// The `Content-Encoding` to send the body with, if any.
    pub fn content_encoding(&self) -> Option<&'static str> {
        self.gzip.then_some("gzip")
    }

    /// The batch as wire v1 JSON, whatever its version: for logs, tests and
    /// [`Payload::emf`].
    pub fn json(&self) -> Result<Vec<u8>> {
        Writer(self.version).json(self.encoded()?)
    }

    /// The encoded batch inside the body (decompressed if needed).
    pub fn encoded(&self) -> Result<Vec<u8>> {
        #[cfg(feature = "std")]
        if self.gzip {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .map_err(|e| crate::Error::Encode(alloc::string::ToString::to_string(&e)))?;
            return Ok(out);
        }
        Ok(self.body.clone())
    }

    /// The batch as CloudWatch EMF documents (JSON texts, one per log
    /// line), with `properties` added to each: the way out when it cannot
    /// be pushed. See [`crate::emf`].
    pub fn emf(&self, properties: &[(&str, &str)]) -> Result<Vec<String>> {
        let encoded = self.encoded()?;
        let batch = Writer(self.version).decode(&encoded)?;
        Ok(crate::emf::documents(&batch, properties))
    }
}
