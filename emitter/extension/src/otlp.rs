//! OTLP/HTTP metrics exports (protobuf or JSON, gzip'd or not), as the
//! OpenTelemetry SDKs of functions send them to `localhost:4318`: read by
//! the receiver's own decoder, then recorded into the emitter like every
//! other metric (counters add, gauges set, histograms record their values
//! and counts, summaries merge as statistic sets). Sans-IO: a body and its
//! headers in, the answer the exporter gets out.

use edgepush::{Emitter, Metric};
use edgepush_receiver::decode::{decode_content, otlp};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::{Batch, Value};

/// What an export gets back: status, content type and body (OTLP's own
/// shapes: partial success, or a `google.rpc.Status`).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The media type of `body`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Data points recorded.
    pub recorded: usize,
    /// Data points refused, by the decoder or the emitter.
    pub refused: usize,
}

/// Reads an export and records it into `emitter`.
pub fn export(
    emitter: &Emitter,
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    now_ms: i64,
) -> Answer {
    let Some(encoding) = content_type.and_then(otlp::Encoding::of) else {
        return Answer {
            status: 415,
            content_type: "text/plain",
            body: b"an OTLP export is application/x-protobuf or application/json".to_vec(),
            recorded: 0,
            refused: 0,
        };
    };
    let limits = Limits::default();
    // Resource attributes become no dimensions: the function's own
    // (FunctionName, FunctionVersion) are on every metric already.
    let mapping = otlp::Mapping {
        attributes: Vec::new(),
    };
    let decoded =
        decode_content(body, content_encoding, limits.max_decompressed_bytes).and_then(|body| {
            otlp::decode(
                &body,
                encoding,
                emitter.config().namespace(),
                &mapping,
                now_ms,
                &limits,
            )
        });
    match decoded {
        Err(e) => Answer {
            status: e.status,
            content_type: encoding.media_type(),
            body: otlp::status(encoding, &e),
            recorded: 0,
            refused: 0,
        },
        Ok(decoded) => {
            let mut refused: Vec<String> =
                decoded.rejected.iter().map(|r| r.reason.clone()).collect();
            let recorded = record(emitter, &decoded.batch, &mut refused);
            let message = refused.first().cloned().unwrap_or_default();
            Answer {
                status: 200,
                content_type: encoding.media_type(),
                body: otlp::response(encoding, refused.len(), &message),
                recorded,
                refused: refused.len(),
            }
        }
    }
}

/// Records `batch`'s points; how many; why each other was refused goes to
/// `refused`.
fn record(emitter: &Emitter, batch: &Batch, refused: &mut Vec<String>) -> usize {
    let mut recorded = 0;
    for point in &batch.points {
        let Some(series) = batch.series.get(point.series) else {
            continue;
        };
        let mut metric = Metric::new(series.name.as_str()).unit(series.unit);
        for (name, value) in &series.dimensions {
            metric = metric.dimension(name.as_str(), value.as_str());
        }
        if series.resolution == edgepush::Resolution::High {
            metric = metric.high_resolution();
        }
        let done = match &point.value {
            Value::Counter(v) => emitter.counter(metric).map(|c| c.add(*v)),
            Value::Gauge { last, .. } => emitter.gauge(metric).map(|g| g.set(*last)),
            Value::Distribution { values, counts } => emitter.distribution(metric).map(|d| {
                for (v, c) in values.iter().zip(counts) {
                    let mut left = c.round();
                    while left >= 1.0 {
                        let n = left.min(f64::from(u32::MAX));
                        d.record_many(*v, n as u32);
                        left -= n;
                    }
                }
            }),
            Value::Statistics(s) => emitter
                .statistics(metric)
                .map(|st| st.record(s.count, s.sum, s.min, s.max)),
            Value::Text(_) | Value::Boolean(_) => {
                refused.push(format!("{}: not a number", series.name));
                continue;
            }
        };
        match done {
            Ok(()) => recorded += 1,
            Err(e) => refused.push(format!("{}: {e}", series.name)),
        }
    }
    recorded
}

#[cfg(test)]
mod tests {
    use edgepush::Config;
    use serde_json::json;

    use super::*;
    use crate::testing::sums;

    fn emitter() -> Emitter {
        Emitter::new(Config::new("Test").expect("config").self_metrics(false))
    }

    #[test]
    fn a_json_export_is_recorded_as_its_points_say() {
        let emitter = emitter();
        let export = json!({"resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
            "scopeMetrics": [{"metrics": [
                {"name": "orders", "unit": "1", "sum": {
                    "aggregationTemporality": 1, "isMonotonic": true,
                    "dataPoints": [{"asDouble": 3, "timeUnixNano": "1764000000000000000",
                        "attributes": [{"key": "env", "value": {"stringValue": "prod"}}]}]}},
                {"name": "latency", "unit": "ms", "histogram": {
                    "aggregationTemporality": 1,
                    "dataPoints": [{"count": "3", "sum": 60, "min": 10, "max": 30,
                        "bucketCounts": ["1", "2"], "explicitBounds": [15],
                        "timeUnixNano": "1764000000000000000"}]}},
                {"name": "queue", "gauge": {"dataPoints": [{"asInt": "7", "timeUnixNano": "1764000000000000000"}]}}
            ]}]
        }]});
        let answer = export_json(&emitter, &export);
        assert_eq!(
            (answer.status, answer.recorded, answer.refused),
            (200, 3, 0)
        );
        let sums = sums(&emitter);
        assert_eq!(sums["orders{env=prod}"], (3.0, 1.0));
        assert_eq!(sums["queue"], (7.0, 1.0));
        assert_eq!(sums["latency"].1, 3.0, "{sums:?}");
    }

    fn export_json(emitter: &Emitter, export: &serde_json::Value) -> Answer {
        super::export(
            emitter,
            export.to_string().as_bytes(),
            Some("application/json"),
            None,
            1_764_000_000_000,
        )
    }

    #[test]
    fn what_cannot_be_read_is_answered_in_otlp_s_shapes() {
        let emitter = emitter();
        let answer = export(&emitter, b"{}", Some("text/plain"), None, 0);
        assert_eq!(answer.status, 415);
        let answer = export(&emitter, b"not json", Some("application/json"), None, 0);
        assert_eq!(answer.status, 400);
        let status: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains("OTLP/JSON")),
            "{status}"
        );
        // Cumulative sums are refused by name, the rest recorded.
        let export = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "total", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                "dataPoints": [{"asDouble": 3, "timeUnixNano": "1764000000000000000"}]}},
            {"name": "fine", "gauge": {"dataPoints": [{"asDouble": 1, "timeUnixNano": "1764000000000000000"}]}}
        ]}]}]});
        let answer = export_json(&emitter, &export);
        assert_eq!(
            (answer.status, answer.recorded, answer.refused),
            (200, 1, 1)
        );
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
        assert!(body.to_string().contains("cumulative"), "{body}");
    }
}
