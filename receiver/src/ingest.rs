//! Handling one push, independent of the HTTP server that received it:
//! authentication, content negotiation, decoding and validation, and the
//! JSON answer.

use crate::decode::{self, Decoded, Format, Formats, line_protocol, otlp, wire};
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::sink::{SinkFailure, SinkRefusal};
use crate::tenant::{Caller, RateLimiter, Tenants};
use serde::Serialize;

/// The request headers ingest looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Headers<'a> {
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding`.
    pub content_encoding: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `Edgepush-Signature` (see [`edgepush_protocol::sign`]).
    pub signature: Option<&'a str>,
    /// `Edgepush-Namespace`: the namespace of a push in a format that names
    /// none (OTLP, Prometheus text) or another than its database.
    pub namespace: Option<&'a str>,
}

/// The header that names the namespace of a push in another format.
pub const NAMESPACE_HEADER: &str = "edgepush-namespace";

/// The receiving half of the receiver: checks and decodes pushes.
#[derive(Clone, Debug, Default)]
pub struct Ingest {
    /// Bounds on one request (a tenant may have its own).
    pub limits: Limits,
    /// Who may push; none configured means no authentication (local use).
    pub tenants: Tenants,
    /// How the formats other than wire v1 map to metrics.
    pub formats: Formats,
}

impl Ingest {
    /// Finds the request's tenant from its key or signature (see
    /// [`Tenants::authenticate`]). The caller still has to check the
    /// signature against its [`crate::tenant::Replays`].
    pub fn authenticate(&self, headers: Headers<'_>, body: &[u8], now_ms: i64) -> Result<Caller> {
        self.tenants
            .authenticate(headers.authorization, headers.signature, body, now_ms)
    }

    /// [`Ingest::authenticate`] for a push in `format`: an InfluxDB v1 write
    /// may carry its key as the password (`p=`) instead of a header.
    pub fn authenticate_push(
        &self,
        format: &Format,
        headers: Headers<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Caller> {
        let password;
        let mut headers = headers;
        if let Format::LineProtocol(line_protocol::Params {
            password: Some(p), ..
        }) = format
            && headers.authorization.is_none()
        {
            password = format!("Bearer {p}");
            headers.authorization = Some(&password);
        }
        self.authenticate(headers, body, now_ms)
    }

    /// Checks the body size, then decodes and validates the body in
    /// `format` within the caller's limits and namespaces. `now_ms` is the
    /// receiver's clock.
    pub fn decode_for(
        &self,
        caller: &Caller,
        format: &Format,
        headers: Headers<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Decoded> {
        let limits = self.tenants.limits(caller, &self.limits);
        if body.len() > limits.max_body_bytes {
            return Err(body_too_large(limits.max_body_bytes));
        }
        let content = decode::decode_content(
            body,
            headers.content_encoding,
            limits.max_decompressed_bytes,
        )?;
        let formats = &self.formats;
        let named = headers.namespace.map(str::trim).filter(|n| !n.is_empty());
        let decoded = match format {
            Format::Wire(edgepush_protocol::wire::Version::V1) => {
                wire::decode_v1(&content, now_ms, limits)?
            }
            Format::Wire(edgepush_protocol::wire::Version::V2) => {
                wire::decode_v2(&content, now_ms, limits)?
            }
            Format::Wire(edgepush_protocol::wire::Version::V3) => {
                wire::decode_v3(&content, now_ms, limits)?
            }
            #[cfg(feature = "ingest-otlp")]
            Format::Otlp(encoding) => otlp::decode(
                &content,
                *encoding,
                named.unwrap_or(&formats.namespace),
                &formats.otlp,
                now_ms,
                limits,
            )?,
            #[cfg(feature = "ingest-line-protocol")]
            Format::LineProtocol(params) => line_protocol::decode(
                &content,
                params,
                &formats.line_protocol,
                named,
                now_ms,
                limits,
            )?,
            #[cfg(feature = "ingest-prometheus")]
            Format::Prometheus(grouping) => decode::prometheus::decode(
                &content,
                grouping,
                named.unwrap_or(&formats.namespace),
                now_ms,
                limits,
            )?,
            // Routing refuses them first; this is for callers that did not route.
            #[cfg(not(all(
                feature = "ingest-otlp",
                feature = "ingest-line-protocol",
                feature = "ingest-prometheus"
            )))]
            other => {
                let _ = (formats, named);
                return Err(other.not_built());
            }
        };
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
        format: &Format,
        headers: Headers<'_>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<Decoded> {
        rates.request(&self.tenants, caller, now_ms)?;
        let decoded = self.decode_for(caller, format, headers, body, now_ms)?;
        rates.points(&self.tenants, caller, decoded.batch.points.len(), now_ms)?;
        Ok(decoded)
    }

    /// A push to `POST /v1/metrics` (wire v1 or v2, or OTLP, by content type):
    /// [`Ingest::authenticate`] then [`Ingest::decode_for`], without replay
    /// or rate checks.
    pub fn decode(&self, headers: Headers<'_>, body: &[u8], now_ms: i64) -> Result<Decoded> {
        let format = Format::route(
            "POST",
            edgepush_protocol::wire::PATH,
            None,
            headers.content_type,
        )?
        .unwrap_or(Format::Wire(edgepush_protocol::wire::Version::V1));
        let caller = self.authenticate(headers, body, now_ms)?;
        self.decode_for(&caller, &format, headers, body, now_ms)
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

/// The answer to a decoded push (the type the emitter reads back).
pub use edgepush_protocol::answer::{Answer, MAX_LISTED_REJECTIONS};

/// The answer for `decoded`, before or without forwarding.
pub fn answer_for(decoded: &Decoded) -> Answer<'_> {
    let rejected = &decoded.rejected;
    Answer {
        batch: decoded.batch.id.as_str().into(),
        accepted: decoded.batch.points.len(),
        rejected_count: rejected.len(),
        rejected: std::borrow::Cow::Borrowed(
            &rejected[..rejected.len().min(MAX_LISTED_REJECTIONS)],
        ),
        partial: !rejected.is_empty() && !decoded.batch.points.is_empty(),
        duplicate: false,
        spooled: Vec::new(),
        sink_rejected: Vec::new(),
    }
}

/// Adds to `answer` what sinks refused (point indices into `decoded`'s
/// batch, reported as request indices); the answer becomes partial.
pub fn sink_refused(answer: &mut Answer<'_>, decoded: &Decoded, refusals: Vec<SinkRefusal>) {
    for mut refusal in refusals {
        for p in &mut refusal.points {
            *p = decoded.indices.get(*p).copied().unwrap_or(*p);
        }
        answer.partial = true;
        answer.sink_rejected.push(refusal);
    }
}

/// The status and JSON body of `answer` once forwarding succeeded: `202`,
/// or `400` with `invalid_points` when every point was refused.
pub fn to_response(answer: &Answer<'_>) -> (u16, String) {
    if answer.all_refused() {
        #[derive(Serialize)]
        struct Refused<'a> {
            error: &'static str,
            message: String,
            #[serde(flatten)]
            answer: &'a Answer<'a>,
        }
        let body = Refused {
            error: "invalid_points",
            message: format!("all {} points were refused", answer.rejected_count),
            answer,
        };
        (400, serde_json::to_string(&body).unwrap_or_default())
    } else {
        (202, serde_json::to_string(answer).unwrap_or_default())
    }
}

/// An HTTP answer, in the format the push came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// `Content-Type` (none for an empty body).
    pub content_type: Option<&'static str>,
    /// Body.
    pub body: Vec<u8>,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status,
            content_type: Some(content_type),
            body: body.into(),
            retry_after: None,
        }
    }

    fn empty(status: u16) -> Self {
        Reply {
            status,
            content_type: None,
            body: Vec::new(),
            retry_after: None,
        }
    }
}

/// The refusals of an answer, as one line each: `<where>: <field>: <reason>`.
fn refusal_lines(answer: &Answer<'_>, locate: impl Fn(usize) -> String) -> Vec<String> {
    let mut lines: Vec<String> = answer
        .rejected
        .iter()
        .map(|r| format!("{}: {}: {}", locate(r.point), r.field, r.reason))
        .collect();
    for refusal in &answer.sink_rejected {
        for p in refusal.points.iter().take(MAX_LISTED_REJECTIONS) {
            lines.push(format!(
                "{}: refused by {}: {}",
                locate(*p),
                refusal.sink,
                refusal.message
            ));
        }
    }
    lines
}

/// The answer to a handled push, in its format's terms:
/// - wire v1: [`to_response`];
/// - line protocol: `204` when every point was taken, else `400` with
///   InfluxDB's `{"code","message"}` (v2) and `{"error"}` (v1) and the
///   refused lines (`line`, counted from 1, as InfluxDB 3 names them);
/// - OTLP: `200` with `ExportMetricsServiceResponse`, its `partial_success`
///   counting the refused data points; `400` when all were refused;
/// - Prometheus text: `200` empty, or `400` naming the refused samples by
///   line (the others were forwarded).
pub fn reply(format: &Format, answer: &Answer<'_>) -> Reply {
    let by_sinks = answer.refused_by_sinks();
    let refused = answer.rejected_count + by_sinks;
    let written = answer.accepted.saturating_sub(by_sinks);
    match format {
        Format::Wire(_) => {
            let (status, body) = to_response(answer);
            Reply::new(status, "application/json", body)
        }
        Format::LineProtocol(_) => {
            if refused == 0 {
                return Reply::empty(204);
            }
            #[derive(Serialize)]
            struct Line {
                line: usize,
                field: String,
                error_message: String,
            }
            let mut data: Vec<Line> = answer
                .rejected
                .iter()
                .map(|r| Line {
                    line: r.point + 1,
                    field: r.field.clone(),
                    error_message: r.reason.clone(),
                })
                .collect();
            for s in &answer.sink_rejected {
                data.extend(s.points.iter().take(MAX_LISTED_REJECTIONS).map(|p| Line {
                    line: p + 1,
                    field: format!("sinks.{}", s.sink),
                    error_message: s.message.clone(),
                }));
            }
            let first = data
                .first()
                .map(|l| format!("line {}: {}: {}", l.line, l.field, l.error_message))
                .unwrap_or_default();
            let message = if answer.accepted == 0 {
                format!("no points written: {first}")
            } else {
                format!(
                    "partial write: {refused} points refused, {written} written to every sink; first: {first}"
                )
            };
            let body = serde_json::json!({
                "code": "invalid",
                "message": message,
                "error": message,
                "accepted": answer.accepted,
                "rejected_count": refused,
                "data": data,
            });
            Reply::new(400, "application/json", body.to_string())
        }
        Format::Otlp(encoding) => {
            let lines = refusal_lines(answer, |p| format!("data point {p}"));
            let message = lines
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if answer.all_refused() {
                let e = Error::new(
                    400,
                    "invalid_points",
                    format!("all {refused} data points were refused: {message}"),
                );
                return Reply::new(400, encoding.media_type(), otlp::status(*encoding, &e));
            }
            Reply::new(
                200,
                encoding.media_type(),
                otlp::response(*encoding, refused, &message),
            )
        }
        Format::Prometheus(_) => {
            if refused == 0 {
                return Reply::empty(200);
            }
            let lines = refusal_lines(answer, |p| format!("line {}", p + 1));
            let head = if answer.accepted == 0 {
                format!("all {refused} samples were refused:\n")
            } else {
                format!("{refused} samples were refused; the other {written} were forwarded:\n")
            };
            Reply::new(
                400,
                "text/plain; charset=utf-8",
                head + &lines.join("\n") + "\n",
            )
        }
    }
}

/// A refused push, in its format's terms (wire v1 and line protocol: the
/// JSON error, with InfluxDB's `code`/`message` for line protocol; OTLP: a
/// `google.rpc.Status`; Prometheus text: plain text).
pub fn refusal(format: Option<&Format>, e: &Error) -> Reply {
    let mut reply = match format {
        None | Some(Format::Wire(_)) => Reply::new(e.status, "application/json", e.to_json()),
        Some(Format::LineProtocol(_)) => {
            let message = match &e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message.clone(),
            };
            let mut body = serde_json::to_value(e).unwrap_or_default();
            if let Some(map) = body.as_object_mut() {
                map.insert("code".into(), e.error.into());
                map.insert("message".into(), message.into());
            }
            Reply::new(e.status, "application/json", body.to_string())
        }
        Some(Format::Otlp(encoding)) => {
            Reply::new(e.status, encoding.media_type(), otlp::status(*encoding, e))
        }
        Some(Format::Prometheus(_)) => {
            Reply::new(e.status, "text/plain; charset=utf-8", format!("{e}\n"))
        }
    };
    reply.retry_after = e.retry_after;
    reply
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::decode::otlp::proto;

    const NOW: i64 = 1_700_000_000_000;

    /// Two points, the second line refused.
    fn partial() -> Decoded {
        line_protocol::decode(
            format!("m v=1 {NOW}\nm,_t=x v=3 {NOW}\nn v=2 {NOW}").as_bytes(),
            &line_protocol::Params::from_query(false, Some("db=Shop&precision=ms")).expect("q"),
            &line_protocol::Mapping::default(),
            None,
            NOW,
            &Limits::default(),
        )
        .expect("decoded")
    }

    fn lp() -> Format {
        Format::LineProtocol(line_protocol::Params::default())
    }

    fn prom() -> Format {
        Format::Prometheus(decode::prometheus::Grouping::default())
    }

    fn otlp(encoding: otlp::Encoding) -> Format {
        Format::Otlp(encoding)
    }

    fn text(r: &Reply) -> String {
        String::from_utf8(r.body.clone()).expect("utf-8")
    }

    #[test]
    fn each_format_answers_a_partial_push_in_its_terms() {
        let d = partial();
        let answer = answer_for(&d);
        assert_eq!(
            reply(&Format::Wire(edgepush_protocol::wire::Version::V1), &answer).status,
            202
        );

        let r = reply(&lp(), &answer);
        assert_eq!(r.status, 400);
        let body: serde_json::Value = serde_json::from_str(&text(&r)).expect("json");
        assert_eq!(body["data"][0]["line"], 2, "{body}");
        assert!(
            body["message"].as_str().is_some_and(
                |m| m.starts_with("partial write: 1 points refused, 2 written to every sink")
            ),
            "{body}"
        );

        let r = reply(&otlp(otlp::Encoding::Protobuf), &answer);
        assert_eq!(r.status, 200);
        let response = proto::ExportMetricsServiceResponse::decode(&r.body[..]).expect("protobuf");
        let partial = response.partial_success.expect("partial success");
        assert_eq!(partial.rejected_data_points, 1);
        assert!(partial.error_message.contains("reserved"), "{partial:?}");

        let r = reply(&prom(), &answer);
        assert_eq!(r.status, 400);
        assert!(
            text(&r).starts_with("1 samples were refused; the other 2 were forwarded:\nline 2:"),
            "{}",
            text(&r)
        );
    }

    #[test]
    fn sink_refusals_count_as_refused_and_not_written() {
        let d = partial();
        let mut answer = answer_for(&d);
        sink_refused(
            &mut answer,
            &d,
            vec![SinkRefusal {
                sink: "cloudwatch".into(),
                points: vec![1],
                message: "refused".into(),
            }],
        );
        assert_eq!(answer.refused_by_sinks(), 1);
        let body: serde_json::Value =
            serde_json::from_str(&text(&reply(&lp(), &answer))).expect("json");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("partial write: 2 points refused, 1 written")),
            "{body}"
        );
        // The point the sink refused is named by its request line.
        assert_eq!(body["data"][1]["line"], 3, "{body}");
        assert_eq!(body["data"][1]["field"], "sinks.cloudwatch", "{body}");
    }

    #[test]
    fn whole_pushes_answer_in_their_terms() {
        let ok = Decoded {
            batch: partial().batch,
            rejected: Vec::new(),
            indices: vec![0, 2],
        };
        let answer = answer_for(&ok);
        assert_eq!(reply(&lp(), &answer), Reply::empty(204));
        assert_eq!(reply(&prom(), &answer), Reply::empty(200));
        let r = reply(&otlp(otlp::Encoding::Json), &answer);
        assert_eq!((r.status, text(&r)), (200, "{}".to_string()));

        let mut none = partial();
        none.batch.points.clear();
        none.indices.clear();
        let r = reply(&otlp(otlp::Encoding::Protobuf), &answer_for(&none));
        assert_eq!(r.status, 400);
        let status = proto::Status::decode(&r.body[..]).expect("status");
        assert_eq!(status.code, 3);
        assert!(
            status.message.contains("all 1 data points were refused"),
            "{status:?}"
        );
    }

    #[test]
    fn refusals_keep_status_retry_and_reason_in_each_format() {
        let e = Error::new(429, "rate_limited", "slow down")
            .field("tenants.t.points_per_second")
            .retry_after(7);
        for format in [
            Format::Wire(edgepush_protocol::wire::Version::V1),
            lp(),
            prom(),
            otlp(otlp::Encoding::Json),
            otlp(otlp::Encoding::Protobuf),
        ] {
            let r = refusal(Some(&format), &e);
            assert_eq!((r.status, r.retry_after), (429, Some(7)), "{format:?}");
            assert!(
                r.body.windows(9).any(|w| w == b"slow down"),
                "{format:?}: {:?}",
                text(&r)
            );
        }
        let body: serde_json::Value =
            serde_json::from_str(&text(&refusal(Some(&lp()), &e))).expect("json");
        assert_eq!(body["code"], "rate_limited");
        assert_eq!(body["message"], "tenants.t.points_per_second: slow down");
        let body: serde_json::Value =
            serde_json::from_str(&text(&refusal(Some(&otlp(otlp::Encoding::Json)), &e)))
                .expect("json");
        assert_eq!(
            (&body["code"], &body["error"]),
            (&8.into(), &"rate_limited".into())
        );
    }
}
