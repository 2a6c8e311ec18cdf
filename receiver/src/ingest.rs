//! Handling one push, independent of the HTTP server that received it:
//! authentication, content negotiation, decoding and validation, and the
//! JSON answer.

use crate::decode::{self, Decoded, Rejection, wire_v1};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::sink::{SinkFailure, SinkRefusal};
use crate::tenant::{Caller, RateLimiter, Tenants};
use serde::Serialize;

/// How many refused points an answer lists; `rejected_count` has them all.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The request headers ingest looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding`.
    pub content_encoding: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `Edgepush-Signature` (see [`edgepush::sign`]).
    pub signature: Option<&'a str>,
}

/// The receiving half of the receiver: checks and decodes pushes.
#[derive(Clone, Debug, Default)]
pub struct Ingest {
    /// Bounds on one request (a tenant may have its own).
    pub limits: Limits,
    /// Who may push; none configured means no authentication (local use).
    pub tenants: Tenants,
}

impl Ingest {
    /// Finds the request's tenant from its key or signature (see
    /// [`Tenants::authenticate`]). The caller still has to check the
    /// signature against its [`crate::tenant::Replays`].
    pub fn authenticate(&self, headers: Headers<'_>, body: &[u8], now_ms: i64) -> Result<Caller> {
        self.tenants
            .authenticate(headers.authorization, headers.signature, body, now_ms)
    }

    /// Checks the body size and the media type, then decodes and validates
    /// the body within the caller's limits and namespaces. `now_ms` is the
    /// receiver's clock.
    pub fn decode_for(
        &self,
        caller: &Caller,
        headers: Headers<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Decoded> {
        let limits = self.tenants.limits(caller, &self.limits);
        if body.len() > limits.max_body_bytes {
            return Err(body_too_large(limits.max_body_bytes));
        }
        let content_type = headers.content_type.unwrap_or("");
        if !wire_v1::accepts(content_type)? {
            return Err(Error::new(
                415,
                "unsupported_media_type",
                format!(
                    "content-type {content_type:?} is not supported; send {}",
                    edgepush::wire::CONTENT_TYPE
                ),
            )
            .field("content-type"));
        }
        let json = decode::decode_content(
            body,
            headers.content_encoding,
            limits.max_decompressed_bytes,
        )?;
        let decoded = wire_v1::decode(&json, now_ms, limits)?;
        self.tenants
            .check_namespace(caller, &decoded.batch.namespace)?;
        Ok(decoded)
    }

    /// [`Ingest::decode_for`] within the caller's rates: the request is
    /// counted first (a refusal costs no decoding), then its points.
    pub fn decode_within(
        &self,
        rates: &RateLimiter,
        caller: &Caller,
        headers: Headers<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Decoded> {
        rates.request(&self.tenants, caller, now_ms)?;
        let decoded = self.decode_for(caller, headers, body, now_ms)?;
        rates.points(&self.tenants, caller, decoded.batch.points.len(), now_ms)?;
        Ok(decoded)
    }

    /// [`Ingest::authenticate`] then [`Ingest::decode_for`], without replay
    /// or rate checks.
    pub fn decode(&self, headers: Headers<'_>, body: &[u8], now_ms: i64) -> Result<Decoded> {
        let caller = self.authenticate(headers, body, now_ms)?;
        self.decode_for(&caller, headers, body, now_ms)
    }
}

/// The answer when sinks did not take a batch: `503 sink_unavailable` if
/// any failure is worth retrying (the client sends the batch again later,
/// same id), else `502 sink_refused`. `None` when every sink took it.
pub fn sink_failure(failures: &[SinkFailure]) -> Option<Error> {
    let first = failures.first()?;
    let (status, code) = if failures.iter().any(|f| f.retryable) {
        (503, "sink_unavailable")
    } else {
        (502, "sink_refused")
    };
    Some(
        Error::new(
            status,
            code,
            format!("{} did not take the batch: {}", first.sink, first.message),
        )
        .field(format!("sinks.{}", first.sink)),
    )
}

/// The 413 for a body over `max` bytes.
pub fn body_too_large(max: usize) -> Error {
    Error::new(
        413,
        "body_too_large",
        format!("body is larger than {max} bytes"),
    )
    .field("body")
}

/// The answer to a decoded push, before or without forwarding.
#[derive(Clone, Debug, Serialize)]
pub struct Answer<'a> {
    /// The batch id.
    pub batch: &'a str,
    /// Points accepted (and forwarded, in a 202).
    pub accepted: usize,
    /// Points refused.
    pub rejected_count: usize,
    /// The first refused points with their reasons.
    pub rejected: &'a [Rejection],
    /// Set when some points were refused and the rest accepted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Set when the batch was delivered before (same namespace and id) and
    /// was not forwarded again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Sinks that could not take the batch now: it is on the receiver's
    /// disk and will be delivered to them when they recover.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spooled: Vec<&'static str>,
    /// Points a sink refused for good while it took the rest: not sent
    /// again (a retry would be refused too), named by request index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sink_rejected: Vec<SinkRefusal>,
}

impl<'a> Answer<'a> {
    /// The answer for `decoded`.
    pub fn new(decoded: &'a Decoded) -> Self {
        let rejected = &decoded.rejected;
        Answer {
            batch: &decoded.batch.id,
            accepted: decoded.batch.points.len(),
            rejected_count: rejected.len(),
            rejected: &rejected[..rejected.len().min(MAX_LISTED_REJECTIONS)],
            partial: !rejected.is_empty() && !decoded.batch.points.is_empty(),
            duplicate: false,
            spooled: Vec::new(),
            sink_rejected: Vec::new(),
        }
    }

    /// Adds what sinks refused (point indices into `decoded`'s batch,
    /// reported as request indices); the answer becomes partial.
    pub fn sink_refused(&mut self, decoded: &Decoded, refusals: Vec<SinkRefusal>) {
        for mut refusal in refusals {
            for p in &mut refusal.points {
                *p = decoded.indices.get(*p).copied().unwrap_or(*p);
            }
            self.partial = true;
            self.sink_rejected.push(refusal);
        }
    }

    /// Every point was refused: nothing is forwarded and the client gets a 400.
    pub fn all_refused(&self) -> bool {
        self.accepted == 0 && self.rejected_count > 0
    }

    /// The status and JSON body to answer with once forwarding succeeded.
    pub fn to_response(&self) -> (u16, String) {
        if self.all_refused() {
            #[derive(Serialize)]
            struct Refused<'a> {
                error: &'static str,
                message: String,
                #[serde(flatten)]
                answer: &'a Answer<'a>,
            }
            let body = Refused {
                error: "invalid_points",
                message: format!("all {} points were refused", self.rejected_count),
                answer: self,
            };
            (400, serde_json::to_string(&body).unwrap_or_default())
        } else {
            (202, serde_json::to_string(self).unwrap_or_default())
        }
    }
}
