//! Ingest formats: each decodes a request body into the internal model.

mod body;
pub mod build;
mod json_path;
pub mod line_protocol;
pub mod otlp;
pub mod prometheus;
pub mod wire;

pub use body::decode_content;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::Batch;

/// The formats a push may come in, told apart by method, path and media
/// type (see `docs/ingest-formats.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// edgepush wire v1, v2 or v3: `POST /v1/metrics`,
    /// `application/vnd.edgepush.v1+json`, `application/vnd.edgepush.v2` or
    /// `application/vnd.edgepush.v3`.
    Wire(edgepush_protocol::wire::Version),
    /// OTLP/HTTP metrics: `POST /v1/metrics`, `application/x-protobuf` or
    /// `application/json`.
    Otlp(otlp::Encoding),
    /// InfluxDB line protocol: `POST /write` (v1) or `POST /api/v2/write`.
    LineProtocol(line_protocol::Params),
    /// Prometheus text, Pushgateway-style: `PUT`/`POST /metrics/job/<job>...`.
    Prometheus(prometheus::Grouping),
}

/// The query of a URL as a runtime serialises it (WHATWG, as a Worker's
/// request carries it): between the first `?` and a fragment; `None` when
/// there is none.
pub fn url_query(url: &str) -> Option<&str> {
    let url = url.split_once('#').map_or(url, |(url, _)| url);
    url.split_once('?').map(|(_, query)| query)
}

impl Format {
    /// The format of a request, from its method, path, query string and
    /// `Content-Type`; `Ok(None)` when the path takes no pushes. A format
    /// this receiver was built without is refused by name.
    pub fn route(
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Option<Format>> {
        match Self::route_any(method, path, query, content_type)? {
            Some(format) if !format.built() => Err(format.not_built()),
            routed => Ok(routed),
        }
    }

    /// Whether this receiver was built with the format's decoder (the
    /// cargo features `ingest-otlp`, `ingest-line-protocol` and
    /// `ingest-prometheus`; wire v1 is always built).
    pub fn built(&self) -> bool {
        match self {
            Format::Wire(_) => true,
            Format::Otlp(_) => cfg!(feature = "ingest-otlp"),
            Format::LineProtocol(_) => cfg!(feature = "ingest-line-protocol"),
            Format::Prometheus(_) => cfg!(feature = "ingest-prometheus"),
        }
    }

    /// The refusal of a format this receiver was built without: 415 for
    /// OTLP (told apart from wire v1 by its media type), 404 for the
    /// formats that have paths of their own.
    pub fn not_built(&self) -> Error {
        let (status, feature) = match self {
            Format::Wire(_) => (500, "none"),
            Format::Otlp(_) => (415, "ingest-otlp"),
            Format::LineProtocol(_) => (404, "ingest-line-protocol"),
            Format::Prometheus(_) => (404, "ingest-prometheus"),
        };
        Error::new(
            status,
            "format_not_built",
            format!(
                "this receiver was built without {} ingest (cargo feature `{feature}`): push \
                 edgepush wire v1 ({}), or deploy a build with the feature",
                self.name(),
                edgepush_protocol::wire::v1::CONTENT_TYPE
            ),
        )
    }

    fn route_any(
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Option<Format>> {
        let only_post = || {
            if method.eq_ignore_ascii_case("POST") {
                Ok(())
            } else {
                Err(Error::new(405, "method_not_allowed", "use POST"))
            }
        };
        if path == edgepush_protocol::wire::PATH {
            only_post()?;
            let content_type = content_type.unwrap_or("");
            if let Some(version) = wire::accepts(content_type)? {
                return Ok(Some(Format::Wire(version)));
            }
            if let Some(encoding) = otlp::Encoding::of(content_type) {
                return Ok(Some(Format::Otlp(encoding)));
            }
            return Err(Error::new(
                415,
                "unsupported_media_type",
                format!(
                    "content-type {content_type:?} is not supported at {}; send {}, {} or {} \
                     (edgepush), application/x-protobuf or application/json (OTLP)",
                    edgepush_protocol::wire::PATH,
                    edgepush_protocol::wire::v3::CONTENT_TYPE,
                    edgepush_protocol::wire::v2::CONTENT_TYPE,
                    edgepush_protocol::wire::v1::CONTENT_TYPE
                ),
            )
            .field("content-type"));
        }
        if path == "/write" || path == "/api/v2/write" {
            only_post()?;
            return line_protocol::Params::from_query(path != "/write", query)
                .map(|p| Some(Format::LineProtocol(p)));
        }
        if let Some(rest) = path.strip_prefix("/metrics")
            && (rest.starts_with("/job/") || rest == "/job")
        {
            if !(method.eq_ignore_ascii_case("PUT") || method.eq_ignore_ascii_case("POST")) {
                return Err(Error::new(
                    405,
                    "method_not_allowed",
                    "use PUT or POST; edgepush forwards each push once and keeps no \
                     groups, so there is nothing to read or delete",
                ));
            }
            if !prometheus::accepts(content_type) {
                return Err(Error::new(
                    415,
                    "unsupported_media_type",
                    format!(
                        "content-type {:?} is not supported; push the Prometheus text format (text/plain)",
                        content_type.unwrap_or("")
                    ),
                )
                .field("content-type"));
            }
            return prometheus::Grouping::from_path(rest).map(|g| Some(Format::Prometheus(g)));
        }
        Ok(None)
    }

    /// The format's name in logs and the receiver's own metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Wire(edgepush_protocol::wire::Version::V1) => "wire_v1",
            Format::Wire(edgepush_protocol::wire::Version::V2) => "wire_v2",
            Format::Wire(edgepush_protocol::wire::Version::V3) => "wire_v3",
            Format::Otlp(_) => "otlp",
            Format::LineProtocol(_) => "line_protocol",
            Format::Prometheus(_) => "prometheus",
        }
    }
}

/// How the formats other than wire v1 map to metrics (configurable,
/// `[formats]` natively, `EDGEPUSH_FORMATS` at the edge).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Formats {
    /// The namespace of pushes whose format names none (OTLP, Prometheus)
    /// and that send no `Edgepush-Namespace` header. Default `edgepush`.
    pub namespace: String,
    /// Line protocol.
    pub line_protocol: line_protocol::Mapping,
    /// OTLP.
    pub otlp: otlp::Mapping,
}

impl Default for Formats {
    fn default() -> Self {
        Formats {
            namespace: "edgepush".into(),
            line_protocol: line_protocol::Mapping::default(),
            otlp: otlp::Mapping::default(),
        }
    }
}

/// A point refused while the rest of its batch was accepted.
pub use edgepush_protocol::answer::Rejection;

/// A decoded request: the accepted points as a validated batch, and every
/// refused point with its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The accepted part.
    pub batch: Batch,
    /// The refused points, in request order.
    pub rejected: Vec<Rejection>,
    /// For each accepted point, its index in the request.
    pub indices: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::url_query;

    #[test]
    fn url_query_is_what_follows_the_first_question_mark() {
        let cases = [
            (
                "https://edge.example/write?db=metrics&precision=ms",
                Some("db=metrics&precision=ms"),
            ),
            ("https://edge.example/v1/metrics", None),
            ("https://edge.example/write?", Some("")),
            ("https://edge.example/write?db=a?b#frag", Some("db=a?b")),
            ("https://edge.example/write#frag", None),
            ("https://edge.example/write#frag?db=a", None),
        ];
        for (url, query) in cases {
            assert_eq!(url_query(url), query, "{url}");
        }
    }
}
