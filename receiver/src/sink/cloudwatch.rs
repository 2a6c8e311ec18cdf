//! CloudWatch `PutMetricData` over the AWS JSON 1.0 protocol: datums, request
//! splitting, gzip and SigV4 signing. Pure: no clock, no network, no
//! filesystem, so the same code runs natively and inside a Worker.

use std::ops::Range;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use edgepush_protocol::Resolution;
use edgepush_protocol::limits::{MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_VALUES_PER_DATUM};
use serde::Deserialize;

use crate::model::{Batch, Series, StatisticSet, Value};
use crate::sink::{SinkRefusal, refuse_values};

/// The `X-Amz-Target` of `PutMetricData` in the AWS JSON 1.0 protocol.
pub const TARGET: &str = "GraniteServiceVersion20100801.PutMetricData";
/// The signing name of CloudWatch.
pub const SERVICE: &str = "monitoring";

/// Settings of a CloudWatch sink.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AWS region, such as `us-east-1`. Natively, by default the SDK's
    /// region chain (`AWS_REGION`, the profile's `region`, the instance's
    /// metadata); the Worker needs it set.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (an emulator, a VPC endpoint); by default
    /// `https://monitoring.<region>.amazonaws.com/` (natively: the SDK's
    /// endpoint resolution, `AWS_ENDPOINT_URL_CLOUDWATCH` included).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id. Natively, credentials set here replace the SDK's
    /// credentials chain; in the Worker they come from secrets.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key, with `access_key_id`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials, with `access_key_id`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Gzip request bodies (default true). Off for endpoints that cannot
    /// take compressed bodies.
    #[serde(default = "yes")]
    pub compress: bool,
    /// How requests are sent natively (the Worker always signs AWS JSON).
    #[serde(default)]
    pub protocol: Protocol,
    /// Natively, how the SDK paces its retries.
    #[serde(default)]
    pub retry_mode: RetryMode,
}

/// How the native receiver sends `PutMetricData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Through `aws-sdk-cloudwatch` (rpc-v2-cbor), with the SDK's retries.
    #[default]
    Sdk,
    /// AWS JSON 1.0, signed here with SigV4: what the Worker sends, for
    /// endpoints that do not speak the SDK's protocol.
    Json,
}

/// The SDK's retry modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    /// Exponential backoff with jitter, per request.
    #[default]
    Standard,
    /// Standard, plus client-side rate limiting when throttled.
    Adaptive,
}

fn yes() -> bool {
    true
}

impl Config {
    /// Settings for `region` and nothing else set.
    pub fn new(region: impl Into<String>) -> Self {
        Config {
            region: Some(region.into()),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            compress: true,
            protocol: Protocol::default(),
            retry_mode: RetryMode::default(),
        }
    }

    /// The region, or an error saying it is missing.
    pub fn region(&self) -> Result<&str, BuildError> {
        self.region.as_deref().ok_or(BuildError::Region)
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> Result<String, BuildError> {
        Ok(match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://monitoring.{}.amazonaws.com/", self.region()?),
        })
    }
}

/// Whether AWS error code `code` means "slow down" (retry later).
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException"
    )
}

fn number(out: &mut Vec<u8>, v: f64) {
    edgepush_protocol::format_number(v, |text| out.extend_from_slice(text.as_bytes()));
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

/// `s` as a JSON string, as serde_json writes it: most names and values
/// need no escape and are copied whole, without the serializer's per-byte
/// work (a tenth of a sink's encoding in wasm).
fn json_string(out: &mut Vec<u8>, s: &str) {
    if !needs_json_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // A string always serialises.
        let _ = serde_json::to_writer(out, s);
    }
}

/// Whether `bytes` hold a quote, a backslash or a control character below space,
/// tested eight bytes at a time: for each byte b of a word x, the top bit
/// of `(x - 0x01..01 * n) & !x & 0x80..80` is set somewhere iff some byte
/// is below n (n <= 128), and a byte equal to c is a zero byte of
/// `x ^ (0x01..01 * c)`.
fn needs_json_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut x = [0; 8];
        x.copy_from_slice(word);
        let x = u64::from_le_bytes(x);
        if below(x, b' ')
            || below(x ^ (ONES * u64::from(b'"')), 1)
            || below(x ^ (ONES * u64::from(b'\\')), 1)
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < b' ' || b == b'"' || b == b'\\')
}

/// What every datum of a series starts with: `{"MetricName":..,
/// "Dimensions":[..],"Unit":..,` and `"StorageResolution":1,` for high
/// resolution - written once per series, not once per datum, into `out`.
fn series_prefix(out: &mut Vec<u8>, series: &Series) {
    out.extend_from_slice(br#"{"MetricName":"#);
    json_string(out, &series.name);
    if !series.dimensions.is_empty() {
        out.extend_from_slice(br#","Dimensions":["#);
        for (i, (name, value)) in series.dimensions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"Name":"#);
            json_string(out, name);
            out.extend_from_slice(br#","Value":"#);
            json_string(out, value);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(br#","Unit":""#);
    out.extend_from_slice(series.unit.as_str().as_bytes());
    out.extend_from_slice(br#"","#);
    // 60 s is CloudWatch's default resolution: said only when it is not.
    if series.resolution != Resolution::Standard {
        out.extend_from_slice(br#""StorageResolution":"#);
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(series.resolution.seconds())
                .as_bytes(),
        );
        out.push(b',');
    }
}

/// What one CloudWatch datum carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure<'a> {
    /// `Value`.
    Value(f64),
    /// `StatisticValues`.
    Statistics(StatisticSet),
    /// `Values` and `Counts`, at most 150 of each.
    Values {
        /// The values.
        values: &'a [f64],
        /// How often each occurred.
        counts: &'a [f64],
    },
}

/// One CloudWatch datum, borrowed from a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Datum<'a> {
    /// Name, dimensions, unit and storage resolution.
    pub series: &'a Series,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The numbers.
    pub measure: Measure<'a>,
}

/// Every CloudWatch datum of `batch`, in order. This is the one place that
/// decides how points become datums, whichever way they are sent (signed
/// AWS JSON here and in the Worker, the SDK natively): distributions are cut
/// into datums of at most 150 values, and a gauge set several times goes as
/// the statistics of every value set (CloudWatch has no "last" statistic),
/// so its Minimum, Maximum and Average are right.
pub fn datums(batch: &Batch) -> impl Iterator<Item = Datum<'_>> {
    indexed_datums(batch).map(|(_, _, datum)| datum)
}

/// [`datums`] with the index of each one's series and point.
fn indexed_datums(batch: &Batch) -> impl Iterator<Item = (usize, usize, Datum<'_>)> {
    batch
        .points
        .iter()
        .enumerate()
        .flat_map(move |(index, point)| {
            let series = &batch.series[point.series];
            let datum = move |measure| {
                (
                    point.series,
                    index,
                    Datum {
                        series,
                        timestamp_ms: point.timestamp_ms,
                        measure,
                    },
                )
            };
            let (single, chunks) = match &point.value {
                Value::Counter(v)
                | Value::Gauge {
                    last: v,
                    stats: None,
                } => (Some(datum(Measure::Value(*v))), None),
                Value::Gauge {
                    stats: Some(st), ..
                }
                | Value::Statistics(st) => (Some(datum(Measure::Statistics(*st))), None),
                Value::Distribution { values, counts } => (
                    None,
                    Some(
                        values
                            .chunks(MAX_VALUES_PER_DATUM)
                            .zip(counts.chunks(MAX_VALUES_PER_DATUM))
                            .map(move |(values, counts)| datum(Measure::Values { values, counts })),
                    ),
                ),
                // CloudWatch stores numbers only: see [`unstorable`].
                Value::Text(_) | Value::Boolean(_) => (None, None),
            };
            single.into_iter().chain(chunks.into_iter().flatten())
        })
}

/// The points of `batch` CloudWatch cannot store (strings and booleans,
/// which line-protocol sinks store), refused by kind; they have no datums.
pub fn unstorable(batch: &Batch) -> Vec<SinkRefusal> {
    refuse_values(
        "cloudwatch",
        batch,
        |_| true,
        "CloudWatch stores numbers only (line-protocol sinks store it)",
    )
}

/// Groups items into requests, in order: at most 1000 items per request, and
/// `envelope` plus the items' sizes plus one separator between items at most
/// CloudWatch's 1 MB. The sizes are those of the encoding that will be sent
/// (exact for JSON, an upper bound for CBOR).
///
/// Each item belongs to a point (`(point, item, size)`, points in order);
/// a point's items stay in one request unless they alone overflow one, so
/// a request that fails concerns whole points. Each request comes with the
/// range of points it carries.
pub fn split<T>(
    items: impl IntoIterator<Item = (usize, T, usize)>,
    envelope: usize,
) -> Vec<(Range<usize>, Vec<T>)> {
    struct Open<T> {
        first: usize,
        items: Vec<(usize, T, usize)>,
        bytes: usize,
    }
    let fits = |open: &Open<T>, size: usize| {
        open.items.len() < MAX_DATUMS_PER_REQUEST
            && open.bytes + usize::from(!open.items.is_empty()) + size <= MAX_REQUEST_BYTES
    };
    let mut requests = Vec::new();
    let mut open = Open {
        first: 0,
        items: Vec::new(),
        bytes: envelope,
    };
    let close = |open: &mut Open<T>, end: usize, requests: &mut Vec<(Range<usize>, Vec<T>)>| {
        let items = std::mem::take(&mut open.items);
        requests.push((
            open.first..end,
            items.into_iter().map(|(_, t, _)| t).collect(),
        ));
        open.bytes = envelope;
    };
    for (point, item, size) in items {
        if !open.items.is_empty() && !fits(&open, size) {
            // Move the point's items so far to the next request, unless the
            // point started this one (then it is too large for any).
            let start = open.items.iter().position(|(p, _, _)| *p == point);
            match start {
                Some(0) => {
                    close(&mut open, point + 1, &mut requests);
                    open.first = point;
                }
                Some(start) => {
                    let moved = open.items.split_off(start);
                    close(&mut open, point, &mut requests);
                    open.first = point;
                    for (p, t, size) in moved {
                        open.bytes += usize::from(!open.items.is_empty()) + size;
                        open.items.push((p, t, size));
                    }
                }
                None => {
                    close(&mut open, point, &mut requests);
                    open.first = point;
                }
            }
            if !open.items.is_empty() && !fits(&open, size) {
                // The point's own items fill a request.
                close(&mut open, point + 1, &mut requests);
                open.first = point;
            }
        }
        if open.items.is_empty() {
            open.first = point;
        }
        open.bytes += usize::from(!open.items.is_empty()) + size;
        open.items.push((point, item, size));
    }
    if let Some(&(last, _, _)) = open.items.last() {
        close(&mut open, last + 1, &mut requests);
    }
    requests
}

/// The JSON bodies of the `PutMetricData` requests for `batch`: each holds at
/// most 1000 datums and stays under CloudWatch's 1 MB, measured exactly on
/// the encoded datums (before gzip).
pub fn bodies(batch: &Batch) -> Vec<Vec<u8>> {
    body_parts(batch)
        .into_iter()
        .map(|(_, body)| body)
        .collect()
}

/// [`bodies`], each with the range of points it carries.
pub fn body_parts(batch: &Batch) -> Vec<(Range<usize>, Vec<u8>)> {
    let mut prefix = br#"{"Namespace":"#.to_vec();
    // A String always serialises.
    let _ = serde_json::to_writer(&mut prefix, &batch.namespace);
    prefix.extend_from_slice(br#","MetricData":["#);
    const SUFFIX: &[u8] = b"]}";

    // Every series' prefix in one buffer (one allocation, not one each).
    let capacity: usize = batch
        .series
        .iter()
        .map(|s| {
            100 + s.name.len()
                + s.dimensions
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 24)
                    .sum::<usize>()
        })
        .sum();
    let mut prefix_text = Vec::with_capacity(capacity);
    let prefixes: Vec<Range<usize>> = batch
        .series
        .iter()
        .map(|series| {
            let start = prefix_text.len();
            series_prefix(&mut prefix_text, series);
            start..prefix_text.len()
        })
        .collect();
    // Every datum encoded once, one after the other, as the body of one
    // request would hold them; the split works on their ranges.
    let mut all = Vec::with_capacity(prefix.len() + batch.points.len() * 160 + SUFFIX.len());
    all.extend_from_slice(&prefix);
    let mut ranges = Vec::with_capacity(batch.points.len());
    for (series, point, datum) in indexed_datums(batch) {
        if !ranges.is_empty() {
            all.push(b',');
        }
        let start = all.len();
        encode_datum(&mut all, &prefix_text[prefixes[series].clone()], &datum);
        ranges.push((point, start..all.len(), all.len() - start));
    }
    let requests = split(ranges, prefix.len() + SUFFIX.len());
    // Most batches fit one request: it holds every datum, in order (the
    // split keeps them all), so its body is `all` as it stands.
    if let [(points, _)] = &requests[..] {
        let points = points.clone();
        all.extend_from_slice(SUFFIX);
        return vec![(points, all)];
    }
    requests
        .into_iter()
        .map(|(points, request)| {
            let size = request.iter().map(|r| r.len() + 1).sum::<usize>();
            let mut body = Vec::with_capacity(prefix.len() + size + SUFFIX.len());
            body.extend_from_slice(&prefix);
            for (i, range) in request.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&all[range]);
            }
            body.extend_from_slice(SUFFIX);
            (points, body)
        })
        .collect()
}

fn encode_datum(out: &mut Vec<u8>, prefix: &[u8], datum: &Datum<'_>) {
    out.extend_from_slice(prefix);
    // Seconds since the epoch, as AWS JSON timestamps are.
    out.extend_from_slice(br#""Timestamp":"#);
    number(out, datum.timestamp_ms as f64 / 1000.0);
    out.push(b',');
    match datum.measure {
        Measure::Value(v) => {
            out.extend_from_slice(br#""Value":"#);
            number(out, v);
            out.push(b'}');
        }
        Measure::Statistics(st) => {
            out.extend_from_slice(br#""StatisticValues":{"SampleCount":"#);
            number(out, st.count);
            out.extend_from_slice(br#","Sum":"#);
            number(out, st.sum);
            out.extend_from_slice(br#","Minimum":"#);
            number(out, st.min);
            out.extend_from_slice(br#","Maximum":"#);
            number(out, st.max);
            out.extend_from_slice(b"}}");
        }
        Measure::Values { values, counts } => {
            numbers(out, br#""Values":"#, values);
            numbers(out, br#","Counts":"#, counts);
            out.push(b'}');
        }
    }
}

/// CBOR bytes of a text string of `len` bytes, or of a map key.
fn cbor_text(len: usize) -> usize {
    len + match len {
        0..24 => 1,
        24..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// The most a container's head and end take in CBOR.
const CBOR_CONTAINER: usize = 3;
/// A double in CBOR.
const CBOR_DOUBLE: usize = 9;

/// An upper bound on the CBOR (rpc-v2-cbor, the SDK's protocol) of a
/// `PutMetricData` input without its datums.
pub fn cbor_envelope_bound(namespace: &str) -> usize {
    CBOR_CONTAINER
        + cbor_text("Namespace".len())
        + cbor_text(namespace.len())
        + cbor_text("MetricData".len())
        + CBOR_CONTAINER
}

/// An upper bound on the CBOR of one datum: every double taken as 9 bytes,
/// every container as 3, every text with its longest head. Checked against
/// the SDK's own bodies in the tests.
pub fn cbor_datum_bound(datum: &Datum<'_>) -> usize {
    let series = datum.series;
    let mut size = CBOR_CONTAINER
        + cbor_text("MetricName".len())
        + cbor_text(series.name.len())
        + cbor_text("Timestamp".len())
        + 1
        + CBOR_DOUBLE
        + cbor_text("Unit".len())
        + cbor_text(series.unit.as_str().len())
        + cbor_text("StorageResolution".len())
        + 5;
    if !series.dimensions.is_empty() {
        size += cbor_text("Dimensions".len()) + CBOR_CONTAINER;
        for (name, value) in &series.dimensions {
            size += CBOR_CONTAINER
                + cbor_text("Name".len())
                + cbor_text(name.len())
                + cbor_text("Value".len())
                + cbor_text(value.len());
        }
    }
    size + match datum.measure {
        Measure::Value(_) => cbor_text("Value".len()) + CBOR_DOUBLE,
        Measure::Statistics(_) => {
            cbor_text("StatisticValues".len())
                + CBOR_CONTAINER
                + ["SampleCount", "Sum", "Minimum", "Maximum"]
                    .iter()
                    .map(|k| cbor_text(k.len()) + CBOR_DOUBLE)
                    .sum::<usize>()
        }
        Measure::Values { values, counts } => {
            cbor_text("Values".len())
                + cbor_text("Counts".len())
                + 2 * CBOR_CONTAINER
                + CBOR_DOUBLE * (values.len() + counts.len())
        }
    }
}

/// The datums of `batch` grouped into the requests the SDK sends: the same
/// datums and limits as [`bodies`], measured on the CBOR the SDK writes,
/// each with the range of points it carries.
pub fn sdk_requests(batch: &Batch) -> Vec<(Range<usize>, Vec<Datum<'_>>)> {
    split(
        indexed_datums(batch).map(|(_, point, d)| {
            let size = cbor_datum_bound(&d);
            (point, d, size)
        }),
        cbor_envelope_bound(&batch.namespace),
    )
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
    /// No region is set.
    Region,
    /// The endpoint is not a valid URI.
    Endpoint(String),
    /// Signing failed.
    Signing(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Region => f.write_str("no CloudWatch region set"),
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
    let endpoint = config.endpoint()?;
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
        let gzipped = crate::gzip::compress(body);
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
        .region(config.region()?)
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
        SignableBody::Precomputed(crate::digest::sha256_hex(request.body())),
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
    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

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
    fn json_strings_are_what_serde_json_writes() {
        for s in [
            "",
            "plain",
            "/api/v1/resource0",
            "quote \" inside",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "del \u{7f} é 日本 🦀",
        ] {
            let mut ours = Vec::new();
            json_string(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).expect("json"), "{s:?}");
        }
    }

    #[test]
    fn the_word_test_finds_what_the_byte_test_finds() {
        let byte_rule = |s: &[u8]| s.iter().any(|&b| b < b' ' || b == b'"' || b == b'\\');
        // Every byte value at every position of words and tails, among
        // bytes that are fine (around the borrow edges: space, '!', '#',
        // '[', ']', 0x7f, 0x80, 0xff).
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for filler in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        assert_eq!(needs_json_escape(&s), byte_rule(&s), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn standard_resolution_is_left_to_cloudwatch_default() {
        let mut standard = series("a", Kind::Counter);
        standard.resolution = Resolution::Standard;
        let batch = Batch {
            id: "x".into(),
            namespace: "Shop".into(),
            series: vec![standard, series("b", Kind::Counter)],
            points: (0..2)
                .map(|series| Point {
                    series,
                    timestamp_ms: 1_700_000_000_000,
                    value: Value::Counter(1.0),
                })
                .collect(),
        };
        let body = parse(&bodies(&batch)[0]);
        let data = body["MetricData"].as_array().expect("datums");
        assert_eq!(data[0].get("StorageResolution"), None, "{body}");
        assert_eq!(data[1]["StorageResolution"], 1, "{body}");
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
        let ranges: Vec<Range<usize>> = body_parts(&batch).into_iter().map(|(r, _)| r).collect();
        assert_eq!(ranges, [0..1000, 1000..2000, 2000..2500]);

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
    fn a_point_stays_in_one_request_unless_it_alone_overflows_one() {
        // Points of 400 datums each (3 values): a request holds 2 whole
        // points, never part of a third.
        let items = (0..5).flat_map(|p| (0..400).map(move |d| (p, (p, d), 10)));
        let parts = split(items, 0);
        let ranges: Vec<Range<usize>> = parts.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(ranges, [0..2, 2..4, 4..5]);
        for (range, items) in &parts {
            assert!(items.iter().all(|(p, _)| range.contains(p)));
            assert_eq!(items.len(), range.len() * 400);
        }
        // A point of 2,500 datums fills requests of its own, named in each.
        let items = [(0, 0, 10)]
            .into_iter()
            .chain((0..2500).map(|d| (1, d, 10)))
            .chain([(2, 0, 10)]);
        let parts = split(items, 0);
        let shape: Vec<(Range<usize>, usize)> = parts
            .iter()
            .map(|(r, items)| (r.clone(), items.len()))
            .collect();
        assert_eq!(shape, [(0..1, 1), (1..2, 1000), (1..2, 1000), (1..3, 501)]);
    }

    #[test]
    fn request_is_signed_gzip_json() {
        let config = Config {
            endpoint: Some("http://127.0.0.1:5000/".into()),
            ..Config::new("us-east-1")
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
                endpoint: Some(endpoint.into()),
                compress: false,
                ..Config::new("r")
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
