//! CloudWatch `PutMetricData` over the AWS JSON 1.0 protocol: datums, request
//! splitting, gzip and SigV4 signing. Pure: no clock, no network, no
//! filesystem, so the same code runs natively and inside a Worker.

use std::io::Write as _;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use edgepush::limits::{MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_VALUES_PER_DATUM};
use serde::Deserialize;

use crate::model::{Batch, Value};

/// The `X-Amz-Target` of `PutMetricData` in the AWS JSON 1.0 protocol.
pub const TARGET: &str = "GraniteServiceVersion20100801.PutMetricData";
/// The signing name of CloudWatch.
pub const SERVICE: &str = "monitoring";

/// Settings of a CloudWatch sink.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AWS region, such as `us-east-1`.
    pub region: String,
    /// Endpoint override (an emulator, a VPC endpoint); by default
    /// `https://monitoring.<region>.amazonaws.com/`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id; natively the `AWS_ACCESS_KEY_ID` variable by default.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key; natively `AWS_SECRET_ACCESS_KEY` by default.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials; natively `AWS_SESSION_TOKEN`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Gzip request bodies (default true). Off for endpoints that cannot
    /// take compressed bodies, or that verify signatures over the
    /// decompressed body (moto does).
    #[serde(default = "yes")]
    pub compress: bool,
}

fn yes() -> bool {
    true
}

impl Config {
    /// The endpoint requests go to.
    pub fn endpoint(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://monitoring.{}.amazonaws.com/", self.region),
        }
    }
}

fn number(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(edgepush::wire::Number::new(v).as_str().as_bytes());
}

fn numbers(out: &mut Vec<u8>, key: &[u8], vs: &[f64]) {
    out.extend_from_slice(key);
    out.push(b'[');
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        number(out, *v);
    }
    out.push(b']');
}

/// What every datum of a series starts with: `{"MetricName":..,
/// "Dimensions":[..],"Unit":..,"StorageResolution":..,` - written once per
/// series, not once per datum.
fn series_prefix(series: &crate::model::Series) -> Vec<u8> {
    let mut out = br#"{"MetricName":"#.to_vec();
    // Strings always serialise.
    let _ = serde_json::to_writer(&mut out, &series.name);
    if !series.dimensions.is_empty() {
        out.extend_from_slice(br#","Dimensions":["#);
        for (i, (name, value)) in series.dimensions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"Name":"#);
            let _ = serde_json::to_writer(&mut out, name);
            out.extend_from_slice(br#","Value":"#);
            let _ = serde_json::to_writer(&mut out, value);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(br#","Unit":""#);
    out.extend_from_slice(series.unit.as_str().as_bytes());
    out.extend_from_slice(br#"","StorageResolution":"#);
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(series.resolution.seconds())
            .as_bytes(),
    );
    out.push(b',');
    out
}

/// Calls `f` with the JSON of every datum of `batch`; distributions are cut
/// into datums of at most 150 values.
fn for_each_datum(batch: &Batch, mut f: impl FnMut(&[u8])) {
    let prefixes: Vec<Vec<u8>> = batch.series.iter().map(series_prefix).collect();
    let mut datum = Vec::with_capacity(512);
    for point in &batch.points {
        let start = |datum: &mut Vec<u8>| {
            datum.clear();
            datum.extend_from_slice(&prefixes[point.series]);
            // Seconds since the epoch, as AWS JSON timestamps are.
            datum.extend_from_slice(br#""Timestamp":"#);
            number(datum, point.timestamp_ms as f64 / 1000.0);
            datum.push(b',');
        };
        match &point.value {
            Value::Counter(v)
            | Value::Gauge {
                last: v,
                stats: None,
            } => {
                start(&mut datum);
                datum.extend_from_slice(br#""Value":"#);
                number(&mut datum, *v);
                datum.push(b'}');
                f(&datum);
            }
            // CloudWatch has no "last" statistic: a gauge set several times
            // goes as the statistics of every value set, so its Minimum,
            // Maximum and Average are right.
            Value::Gauge {
                stats: Some(st), ..
            }
            | Value::Statistics(st) => {
                start(&mut datum);
                datum.extend_from_slice(br#""StatisticValues":{"SampleCount":"#);
                number(&mut datum, st.count);
                datum.extend_from_slice(br#","Sum":"#);
                number(&mut datum, st.sum);
                datum.extend_from_slice(br#","Minimum":"#);
                number(&mut datum, st.min);
                datum.extend_from_slice(br#","Maximum":"#);
                number(&mut datum, st.max);
                datum.extend_from_slice(b"}}");
                f(&datum);
            }
            Value::Distribution { values, counts } => {
                for (vs, cs) in values
                    .chunks(MAX_VALUES_PER_DATUM)
                    .zip(counts.chunks(MAX_VALUES_PER_DATUM))
                {
                    start(&mut datum);
                    numbers(&mut datum, br#""Values":"#, vs);
                    numbers(&mut datum, br#","Counts":"#, cs);
                    datum.push(b'}');
                    f(&datum);
                }
            }
        }
    }
}

/// The JSON bodies of the `PutMetricData` requests for `batch`: each holds at
/// most 1000 datums and stays under CloudWatch's 1 MB, measured exactly on
/// the encoded datums (before gzip).
pub fn bodies(batch: &Batch) -> Vec<Vec<u8>> {
    let mut prefix = br#"{"Namespace":"#.to_vec();
    // A String always serialises.
    let _ = serde_json::to_writer(&mut prefix, &batch.namespace);
    prefix.extend_from_slice(br#","MetricData":["#);
    const SUFFIX: &[u8] = b"]}";

    let mut bodies = Vec::new();
    let mut body = prefix.clone();
    let mut datums = 0;
    for_each_datum(batch, |encoded| {
        let full = datums == MAX_DATUMS_PER_REQUEST
            || body.len() + 1 + encoded.len() + SUFFIX.len() > MAX_REQUEST_BYTES;
        if datums > 0 && full {
            body.extend_from_slice(SUFFIX);
            bodies.push(std::mem::replace(&mut body, prefix.clone()));
            datums = 0;
        }
        if datums > 0 {
            body.push(b',');
        }
        body.extend_from_slice(encoded);
        datums += 1;
    });
    if datums > 0 {
        body.extend_from_slice(SUFFIX);
        bodies.push(body);
    }
    bodies
}

/// Credentials to sign with.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

/// Why a request could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The endpoint is not a valid URI.
    Endpoint(String),
    /// Signing failed.
    Signing(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Endpoint(e) => write!(f, "invalid CloudWatch endpoint: {e}"),
            BuildError::Signing(e) => write!(f, "cannot sign CloudWatch request: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A signed, gzip'd `PutMetricData` request for one JSON `body`, signed at
/// `time` (pass the clock in: inside a Worker it comes from JS).
pub fn request(
    config: &Config,
    keys: &Keys,
    body: &[u8],
    time: SystemTime,
) -> Result<http::Request<Vec<u8>>, BuildError> {
    let endpoint = config.endpoint();
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| BuildError::Endpoint(e.to_string()))?;
    if uri.scheme().is_none() || uri.host().is_none() {
        return Err(BuildError::Endpoint(format!(
            "{endpoint:?} needs a scheme and a host, such as https://monitoring.eu-west-1.amazonaws.com/"
        )));
    }
    let builder = http::Request::post(uri)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", TARGET);
    let mut request = if config.compress {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4 + 64),
            flate2::Compression::fast(),
        );
        let gzipped = gz
            .write_all(body)
            .and_then(|()| gz.finish())
            .map_err(|e| BuildError::Signing(e.to_string()))?;
        builder.header("content-encoding", "gzip").body(gzipped)
    } else {
        builder.body(body.to_vec())
    }
    .map_err(|e| BuildError::Endpoint(e.to_string()))?;
    let identity: Identity = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "edgepush",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&config.region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| BuildError::Signing(e.to_string()))?
        .into();
    let headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(
        "POST",
        &endpoint,
        headers,
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| BuildError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| BuildError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// The AWS error type in a JSON error body (`__type`, namespace stripped).
pub fn error_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let t = v.get("__type")?.as_str()?;
    Some(t.rsplit('#').next().unwrap_or(t).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Point, Series, StatisticSet};
    use edgepush::wire::Kind;
    use edgepush::{Resolution, Unit};

    fn series(name: &str, kind: Kind) -> Series {
        Series {
            name: name.into(),
            kind,
            unit: Unit::Milliseconds,
            dimensions: vec![("service".into(), "checkout".into())],
            resolution: Resolution::High,
        }
    }

    fn parse(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn datum_shapes() {
        let batch = Batch {
            id: "x".into(),
            namespace: "Shop".into(),
            series: vec![
                series("a", Kind::Counter),
                series("b", Kind::Distribution),
                series("c", Kind::Statistics),
                series("g", Kind::Gauge),
            ],
            points: vec![
                Point {
                    series: 0,
                    timestamp_ms: 1_700_000_000_500,
                    value: Value::Counter(2.0),
                },
                Point {
                    series: 1,
                    timestamp_ms: 1_700_000_000_000,
                    value: Value::Distribution {
                        values: vec![1.0, 2.0],
                        counts: vec![3.0, 1.0],
                    },
                },
                Point {
                    series: 2,
                    timestamp_ms: 1_700_000_000_000,
                    value: Value::Statistics(StatisticSet {
                        count: 4.0,
                        sum: 10.0,
                        min: 1.0,
                        max: 4.0,
                    }),
                },
                Point {
                    series: 3,
                    timestamp_ms: 1_700_000_000_000,
                    value: Value::Gauge {
                        last: 2.0,
                        stats: None,
                    },
                },
                Point {
                    series: 3,
                    timestamp_ms: 1_700_000_001_000,
                    value: Value::Gauge {
                        last: 2.0,
                        stats: Some(StatisticSet {
                            count: 2.0,
                            sum: 5.0,
                            min: 2.0,
                            max: 3.0,
                        }),
                    },
                },
            ],
        };
        let bodies = bodies(&batch);
        assert_eq!(bodies.len(), 1);
        let want = serde_json::json!({
            "Namespace": "Shop",
            "MetricData": [
                {"MetricName": "a", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000.5, "Unit": "Milliseconds", "StorageResolution": 1, "Value": 2},
                {"MetricName": "b", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "Values": [1, 2], "Counts": [3, 1]},
                {"MetricName": "c", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}},
                {"MetricName": "g", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000000, "Unit": "Milliseconds", "StorageResolution": 1, "Value": 2},
                {"MetricName": "g", "Dimensions": [{"Name": "service", "Value": "checkout"}], "Timestamp": 1700000001, "Unit": "Milliseconds", "StorageResolution": 1, "StatisticValues": {"SampleCount": 2, "Sum": 5, "Minimum": 2, "Maximum": 3}},
            ]
        });
        assert_eq!(parse(&bodies[0]), want);
    }

    #[test]
    fn splits_by_count_values_and_bytes() {
        // 2,500 counters: 1000 + 1000 + 500 datums.
        let mut batch = Batch {
            id: "x".into(),
            namespace: "N".into(),
            series: vec![series("a", Kind::Counter)],
            points: vec![],
        };
        for i in 0..2500 {
            batch.points.push(Point {
                series: 0,
                timestamp_ms: i,
                value: Value::Counter(1.0),
            });
        }
        let counts: Vec<usize> = bodies(&batch)
            .iter()
            .map(|b| parse(b)["MetricData"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(counts, [1000, 1000, 500]);

        // 400 values: 150 + 150 + 100 in three datums, nothing lost.
        let values: Vec<f64> = (0..400).map(f64::from).collect();
        batch.points = vec![Point {
            series: 0,
            timestamp_ms: 0,
            value: Value::Distribution {
                counts: vec![1.0; 400],
                values: values.clone(),
            },
        }];
        let body = parse(&bodies(&batch)[0]);
        let datums = body["MetricData"].as_array().expect("array");
        let sizes: Vec<usize> = datums
            .iter()
            .map(|d| d["Values"].as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, [150, 150, 100]);
        let all: Vec<f64> = datums
            .iter()
            .flat_map(|d| d["Values"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_f64())
            .collect();
        assert_eq!(all, values);

        // Large datums (30 dimensions of 1024 characters) split by bytes.
        let mut wide = series("w", Kind::Counter);
        wide.dimensions = (0..30)
            .map(|i| (format!("d{i}"), "v".repeat(1024)))
            .collect();
        batch.series = vec![wide];
        batch.points = (0..100)
            .map(|i| Point {
                series: 0,
                timestamp_ms: i,
                value: Value::Counter(1.0),
            })
            .collect();
        let bodies = bodies(&batch);
        assert!(bodies.len() >= 4, "{}", bodies.len());
        let mut total = 0;
        for b in &bodies {
            assert!(b.len() <= MAX_REQUEST_BYTES, "{}", b.len());
            total += parse(b)["MetricData"].as_array().map_or(0, Vec::len);
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn request_is_signed_gzip_json() {
        let config = Config {
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:5000/".into()),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            compress: true,
        };
        let keys = Keys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("tok".into()),
        };
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let r = request(
            &config,
            &keys,
            br#"{"Namespace":"N","MetricData":[]}"#,
            time,
        )
        .expect("request");
        let h = r.headers();
        assert_eq!(h["x-amz-target"], TARGET);
        assert_eq!(h["content-type"], "application/x-amz-json-1.0");
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["x-amz-date"], "20231114T221320Z");
        assert_eq!(h["x-amz-security-token"], "tok");
        let auth = h["authorization"].to_str().expect("ascii");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/monitoring/aws4_request, SignedHeaders="), "{auth}");
        assert!(
            auth.contains(
                "content-encoding;content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );
        // The same input signs the same way; another body does not.
        let again = request(
            &config,
            &keys,
            br#"{"Namespace":"N","MetricData":[]}"#,
            time,
        )
        .expect("request");
        assert_eq!(again.headers()["authorization"], h["authorization"]);
        let other = request(
            &config,
            &keys,
            br#"{"Namespace":"M","MetricData":[]}"#,
            time,
        )
        .expect("request");
        assert_ne!(other.headers()["authorization"], h["authorization"]);
    }

    #[test]
    fn endpoints_without_scheme_or_host_are_errors_not_panics() {
        let keys = Keys {
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            session_token: None,
        };
        for endpoint in ["localhost:4566", "/just/a/path", "http://", "not a uri"] {
            let config = Config {
                region: "r".into(),
                endpoint: Some(endpoint.into()),
                access_key_id: None,
                secret_access_key: None,
                session_token: None,
                compress: false,
            };
            let err = request(&config, &keys, b"{}", SystemTime::UNIX_EPOCH).expect_err(endpoint);
            assert!(matches!(err, BuildError::Endpoint(_)), "{endpoint}: {err}");
        }
    }

    #[test]
    fn error_types() {
        assert_eq!(
            error_type(br#"{"__type":"com.amazonaws#Throttling","message":"x"}"#).as_deref(),
            Some("Throttling")
        );
        assert_eq!(
            error_type(br#"{"__type":"InvalidParameterValue"}"#).as_deref(),
            Some("InvalidParameterValue")
        );
        assert_eq!(error_type(b"<xml/>"), None);
    }
}
