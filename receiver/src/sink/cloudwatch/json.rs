//! `PutMetricData` bodies in AWS JSON 1.0, split into requests within
//! CloudWatch's bounds and measured exactly.

use std::ops::Range;

use edgepush_protocol::Resolution;

use super::datum::{Datum, Measure, indexed_datums};
use super::split::split;
use crate::model::{Batch, Series};

fn number(out: &mut Vec<u8>, v: f64) {
    edgepush_protocol::format_number(v, |text| out.extend_from_slice(text.as_bytes()));
}

fn numbers(out: &mut Vec<u8>, key: &[u8], vs: &[f64]) {
    out.extend_from_slice(key);
    edgepush_protocol::json_numbers(out, vs);
}

/// `s` as a JSON string, as serde_json writes it: most names and values
/// need no escape and are copied whole, without the serializer's per-byte
/// work (a tenth of a sink's encoding in wasm).
pub(super) fn json_string(out: &mut Vec<u8>, s: &str) {
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
pub(super) fn needs_json_escape(bytes: &[u8]) -> bool {
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
