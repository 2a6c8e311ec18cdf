//! Sinks: where validated batches go. Each sink is a pure request builder
//! (batch in, `http::Request`s out) and a classifier of the answers; the
//! caller does the I/O, natively or in a Worker.

pub mod cloudwatch;
mod deliver;
pub mod line_protocol;

pub use deliver::{
    Client, Reply, Retry, SinkAnswer, SinkFailure, SinkRefusal, covers, deliver, parse_retry_after,
    refuse_values, settle, skipped,
};

use std::ops::Range;
use std::time::SystemTime;

use serde::Deserialize;

use crate::model::Batch;

/// A sink as configured.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Line protocol on standard output (the embedded default).
    Stdout,
    /// CloudWatch `PutMetricData`.
    Cloudwatch(cloudwatch::Config),
    /// An InfluxDB-compatible line-protocol store.
    Influxdb(line_protocol::Target),
}

/// A sink ready to build requests: credentials resolved.
#[derive(Clone, Debug)]
pub enum Sink {
    /// Line protocol on standard output.
    Stdout,
    /// CloudWatch over signed AWS JSON, with the keys to sign with.
    CloudWatch(cloudwatch::Config, cloudwatch::Keys),
    /// CloudWatch natively, with the SDK's credentials chain: through the
    /// SDK or signed AWS JSON, as configured.
    #[cfg(feature = "native")]
    Aws(std::sync::Arc<crate::native::cloudwatch::AwsCloudWatch>),
    /// A line-protocol store.
    LineProtocol(line_protocol::Target),
}

impl Sink {
    /// A short name for logs and answers.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Stdout => "stdout",
            Sink::CloudWatch(..) => "cloudwatch",
            #[cfg(feature = "native")]
            Sink::Aws(_) => "cloudwatch",
            Sink::LineProtocol(_) => "influxdb",
        }
    }

    /// The points of `batch` this sink cannot store, whatever it would
    /// answer, refused before any request: CloudWatch stores numbers only,
    /// so its sinks refuse string and boolean values; line-protocol sinks
    /// store them, unless configured not to store strings.
    pub fn unstorable(&self, batch: &Batch) -> Vec<SinkRefusal> {
        match self {
            Sink::CloudWatch(..) => cloudwatch::unstorable(batch),
            #[cfg(feature = "native")]
            Sink::Aws(_) => cloudwatch::unstorable(batch),
            Sink::LineProtocol(target) if !target.stores_strings() => {
                line_protocol::unstorable(batch)
            }
            Sink::Stdout | Sink::LineProtocol(_) => Vec::new(),
        }
    }

    /// The requests that deliver `batch` (none for stdout), signed at
    /// `now`, each with the points it carries.
    pub fn parts(&self, batch: &Batch, now: SystemTime) -> Result<Vec<Part>, String> {
        match self {
            Sink::Stdout => Ok(Vec::new()),
            Sink::CloudWatch(config, keys) => cloudwatch::body_parts(batch)
                .into_iter()
                .map(|(points, body)| {
                    let request =
                        cloudwatch::request(config, keys, &body, now).map_err(|e| e.to_string())?;
                    Ok(Part { points, request })
                })
                .collect(),
            #[cfg(feature = "native")]
            Sink::Aws(_) => Err("the native CloudWatch sink sends its own requests".into()),
            Sink::LineProtocol(target) => {
                if batch.points.is_empty() {
                    return Ok(Vec::new());
                }
                let mut text = String::new();
                line_protocol::encode_for(batch, &mut text, target.stores_strings());
                let request =
                    line_protocol::request(target, crate::gzip::compress(text.as_bytes()))
                        .map_err(|e| e.to_string())?;
                Ok(vec![Part {
                    points: 0..batch.points.len(),
                    request,
                }])
            }
        }
    }

    /// The points of `range` that a refusal saying `message` concerns: a
    /// line-protocol store that names a measurement (InfluxDB's partial
    /// writes: `... on measurement "m" ...`) refused that measurement's
    /// points and stored the rest; otherwise the whole request was refused.
    pub fn refused_points(&self, batch: &Batch, range: Range<usize>, message: &str) -> Vec<usize> {
        let named = match self {
            Sink::LineProtocol(_) => measurement_named(message),
            _ => None,
        };
        let all = range.clone().filter(|&i| i < batch.points.len());
        match named {
            Some(name) => {
                let of_it: Vec<usize> = all
                    .clone()
                    .filter(|&i| batch.series[batch.points[i].series].name == name)
                    .collect();
                if of_it.is_empty() {
                    all.collect()
                } else {
                    of_it
                }
            }
            None => all.collect(),
        }
    }

    /// What an answer to one of this sink's requests means.
    pub fn classify(&self, status: u16, body: &[u8]) -> Outcome {
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        let retryable = status == 408 || status == 429 || status >= 500;
        match self {
            Sink::CloudWatch(..) => {
                let kind = cloudwatch::error_type(body).unwrap_or_default();
                let throttled = cloudwatch::is_throttling(&kind);
                let message = format!("{status} {kind}: {text}");
                if retryable || throttled {
                    Outcome::Retry(message)
                } else {
                    Outcome::Fail(message)
                }
            }
            _ => {
                let message = format!("{status}: {text}");
                if retryable {
                    Outcome::Retry(message)
                } else {
                    Outcome::Fail(message)
                }
            }
        }
    }
}

/// One request of a delivery and the points of the batch it carries.
#[derive(Debug)]
pub struct Part {
    /// Indices of the batch's points in the request.
    pub points: Range<usize>,
    /// The request.
    pub request: http::Request<Vec<u8>>,
}

/// The measurement an InfluxDB error names (`measurement "m"` or, in a
/// JSON body, `measurement \"m\"`), unescaped.
fn measurement_named(message: &str) -> Option<String> {
    let rest = message.split_once("measurement ")?.1;
    let rest = rest.strip_prefix('\\').unwrap_or(rest).strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = rest[..end].strip_suffix('\\').unwrap_or(&rest[..end]);
    Some(name.to_string())
}

/// What a sink's answer means for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Delivered,
    /// Not stored, and worth trying again (throttling, 5xx, network).
    Retry(String),
    /// Not stored, and trying again will not help.
    Fail(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influxdb_refusals_name_their_measurement() {
        let json = r#"{"error":"partial write: field type conflict: input field \"value\" on measurement \"conflict\" is type float, already exists as type string dropped=1"}"#;
        assert_eq!(measurement_named(json).as_deref(), Some("conflict"));
        let plain =
            r#"field type conflict: input field "value" on measurement "cpu load" is type float"#;
        assert_eq!(measurement_named(plain).as_deref(), Some("cpu load"));
        assert_eq!(measurement_named("unable to parse"), None);
    }

    #[test]
    fn classification_table() {
        let cw = Sink::CloudWatch(
            cloudwatch::Config::new("r"),
            cloudwatch::Keys {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: None,
            },
        );
        let lp = Sink::LineProtocol(line_protocol::Target::V2 {
            url: "u".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
            store_strings: true,
        });
        assert_eq!(cw.classify(200, b""), Outcome::Delivered);
        assert_eq!(lp.classify(204, b""), Outcome::Delivered);
        assert!(matches!(
            cw.classify(400, br#"{"__type":"Throttling"}"#),
            Outcome::Retry(_)
        ));
        assert!(
            matches!(cw.classify(400, br#"{"__type":"InvalidParameterValue","message":"bad"}"#), Outcome::Fail(m) if m.contains("InvalidParameterValue"))
        );
        assert!(matches!(cw.classify(500, b""), Outcome::Retry(_)));
        assert!(matches!(lp.classify(429, b""), Outcome::Retry(_)));
        assert!(matches!(lp.classify(503, b""), Outcome::Retry(_)));
        assert!(
            matches!(lp.classify(400, b"field type conflict"), Outcome::Fail(m) if m.contains("conflict"))
        );
    }

    #[test]
    fn sink_config_reads_from_toml_shapes() {
        let v: Vec<SinkConfig> = serde_json::from_str(
            r#"[{"type":"stdout"},
                {"type":"cloudwatch","region":"eu-west-1","endpoint":"http://127.0.0.1:5000"},
                {"type":"influxdb","api":"v1","url":"http://127.0.0.1:8086","database":"m"},
                {"type":"influxdb","api":"v2","url":"u","org":"o","bucket":"b","store_strings":false}]"#,
        )
        .expect("parses");
        assert_eq!(v[0], SinkConfig::Stdout);
        assert!(
            matches!(&v[1], SinkConfig::Cloudwatch(c) if c.region.as_deref() == Some("eu-west-1") && c.protocol == cloudwatch::Protocol::Sdk)
        );
        assert!(
            matches!(&v[2], SinkConfig::Influxdb(t @ line_protocol::Target::V1 { database, .. }) if database == "m" && t.stores_strings())
        );
        assert!(
            matches!(&v[3], SinkConfig::Influxdb(t @ line_protocol::Target::V2 { .. }) if !t.stores_strings())
        );
        let bad = serde_json::from_str::<Vec<SinkConfig>>(
            r#"[{"type":"influxdb","api":"v1","url":"u","database":"m","colour":"red"}]"#,
        );
        assert!(bad.is_err());
    }
}
