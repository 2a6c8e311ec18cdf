//! Sinks: where validated batches go. Each sink is an [`Encoder`]: a pure
//! request builder (batch in, `http::Request`s out) and a classifier of the
//! answers; the caller does the I/O ([`deliver`]), natively or in a Worker.

pub mod cloudwatch;
mod deliver;
pub mod influxdb;

pub use deliver::{
    Client, Retry, Sent, SinkAnswer, SinkFailure, SinkRefusal, beyond_unstorable, covers, deliver,
    parse_retry_after, refusal, refuse_values, settle, skipped,
};

use std::ops::Range;
use std::time::SystemTime;

use crate::model::Batch;

/// What a sink is called in envelopes (queue messages and spool records): one byte
/// naming the sink a stored batch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTag {
    /// The CloudWatch sink.
    CloudWatch = 1,
    /// The InfluxDB sink (line protocol).
    Influxdb = 2,
}

/// A sink without I/O: it turns a batch into `http::Request`s and tells
/// what the answers mean. The caller sends the requests ([`deliver`]),
/// natively or in a Worker; sinks that do their own I/O (the AWS SDK's
/// client, standard output) belong to the native host.
pub trait Encoder {
    /// A short name for logs and answers.
    fn name(&self) -> &'static str;

    /// The tag of this sink's queue messages and spool records.
    fn tag(&self) -> SinkTag;

    /// The points of `batch` this sink cannot store, whatever it would
    /// answer, refused before any request.
    fn unstorable(&self, batch: &Batch) -> Vec<SinkRefusal>;

    /// The requests that deliver `batch`, signed at `now`, each with the
    /// points it carries.
    fn parts(&self, batch: &Batch, now: SystemTime) -> Result<Vec<Part>, String>;

    /// The points of `range` that a refusal saying `message` concerns
    /// (by default: all of them).
    fn refused_points(&self, batch: &Batch, range: Range<usize>, _message: &str) -> Vec<usize> {
        range.filter(|&i| i < batch.points.len()).collect()
    }

    /// What an answer to one of this sink's requests means.
    fn classify(&self, status: u16, body: &[u8]) -> Outcome {
        generic_outcome(status, body)
    }
}

/// The sinks the receiver core encodes for, ready to build requests:
/// credentials resolved.
#[derive(Clone, Debug)]
pub enum Sink {
    /// CloudWatch over signed AWS JSON, with the keys to sign with.
    CloudWatch(cloudwatch::Config, cloudwatch::Keys),
    /// An InfluxDB-compatible store (InfluxDB 1/2/3, VictoriaMetrics, QuestDB),
    /// written in line protocol.
    Influxdb(influxdb::Target),
}

impl Encoder for Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::CloudWatch(..) => "cloudwatch",
            Sink::Influxdb(_) => "influxdb",
        }
    }

    fn tag(&self) -> SinkTag {
        match self {
            Sink::CloudWatch(..) => SinkTag::CloudWatch,
            Sink::Influxdb(_) => SinkTag::Influxdb,
        }
    }

    /// CloudWatch stores numbers only, so its sinks refuse string and
    /// boolean values; line-protocol sinks store them, unless configured
    /// not to store strings, and refuse metrics named like a comment.
    fn unstorable(&self, batch: &Batch) -> Vec<SinkRefusal> {
        match self {
            Sink::CloudWatch(..) => cloudwatch::unstorable(batch),
            Sink::Influxdb(target) => influxdb::unstorable(batch, target.stores_strings()),
        }
    }

    fn parts(&self, batch: &Batch, now: SystemTime) -> Result<Vec<Part>, String> {
        match self {
            Sink::CloudWatch(config, keys) => cloudwatch::body_parts(batch)
                .into_iter()
                .map(|(points, body)| {
                    let request =
                        cloudwatch::request(config, keys, &body, now).map_err(|e| e.to_string())?;
                    Ok(Part { points, request })
                })
                .collect(),
            Sink::Influxdb(target) => {
                if batch.points.is_empty() {
                    return Ok(Vec::new());
                }
                let mut text = String::new();
                influxdb::encode_for(
                    batch,
                    &mut text,
                    target.stores_strings(),
                    target.quantiles(),
                );
                let request = influxdb::request(target, crate::gzip::compress(text.as_bytes()))
                    .map_err(|e| e.to_string())?;
                Ok(vec![Part {
                    points: 0..batch.points.len(),
                    request,
                }])
            }
        }
    }

    /// A line-protocol store that names a measurement (InfluxDB's partial
    /// writes: `... on measurement "m" ...`) refused that measurement's
    /// points and stored the rest; otherwise the whole request was refused.
    fn refused_points(&self, batch: &Batch, range: Range<usize>, message: &str) -> Vec<usize> {
        let named = match self {
            Sink::Influxdb(_) => measurement_named(message),
            Sink::CloudWatch(..) => None,
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

    /// CloudWatch also retries its throttling errors, whatever their status.
    fn classify(&self, status: u16, body: &[u8]) -> Outcome {
        match self {
            Sink::CloudWatch(..) if !(200..300).contains(&status) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
                let retryable = status == 408 || status == 429 || status >= 500;
                let kind = cloudwatch::error_type(body).unwrap_or_default();
                let throttled = cloudwatch::is_throttling(&kind);
                let message = format!("{status} {kind}: {text}");
                if retryable || throttled {
                    Outcome::Retry(message)
                } else {
                    Outcome::Fail(message)
                }
            }
            _ => generic_outcome(status, body),
        }
    }
}

/// What an HTTP answer means to a sink that knows nothing more: 2xx
/// stored; 408, 429 and 5xx worth a retry; anything else refused.
fn generic_outcome(status: u16, body: &[u8]) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let message = format!("{status}: {text}");
    if status == 408 || status == 429 || status >= 500 {
        Outcome::Retry(message)
    } else {
        Outcome::Fail(message)
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

/// Checks a sink's URL setting when the receiver starts, rather than at the
/// first push: `http://` or `https://`, then a host, and no spaces or
/// control characters. The error names `field` (the setting) and says why.
pub fn check_url(field: &str, url: &str) -> Result<(), String> {
    // Bytes only: this runs in the Worker, where every table counts.
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{field} is {url:?}: it must start with http:// or https://"))?;
    let host = rest
        .as_bytes()
        .split(|b| matches!(b, b'/' | b'?' | b'#'))
        .next()
        .unwrap_or_default();
    if host.is_empty() || host[0] == b':' {
        return Err(format!("{field} is {url:?}: it names no host"));
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{field} is {url:?}: it holds a space or a control character"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_are_checked_when_the_receiver_starts() {
        for good in [
            "http://127.0.0.1:8086",
            "https://influx.example.com/",
            "http://[::1]:9/x?y",
        ] {
            assert_eq!(check_url("url", good), Ok(()), "{good}");
        }
        for (bad, words) in [
            ("influx.example.com", "http:// or https://"),
            ("ftp://x", "http:// or https://"),
            ("http://", "no host"),
            ("http://:8086", "no host"),
            ("https:///path", "no host"),
            ("http://a b", "space"),
            ("", "http:// or https://"),
        ] {
            let e = check_url("sinks[0].url", bad).expect_err(bad);
            assert!(
                e.contains(words) && e.starts_with("sinks[0].url"),
                "{bad}: {e}"
            );
        }
    }

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
        let lp = Sink::Influxdb(influxdb::Target::V2 {
            url: "u".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
            store_strings: true,
            quantiles: Default::default(),
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
}
