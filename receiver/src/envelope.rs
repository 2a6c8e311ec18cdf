//! Envelopes: a validated batch addressed to one sink, as the Worker's queue
//! carries it and the native spool stores it.
//!
//! An envelope is one byte naming the sink, then the batch as gzip'd wire v1
//! JSON, so whoever opens it decodes it with the same decoder (and checks) as a
//! push. One envelope per sink keeps retries apart: a sink that failed is
//! retried without sending the batch again to the sinks that took it.
//! Batches are split so that every envelope stays under Cloudflare Queues'
//! 128 KB.

use std::borrow::Cow;

use edgepush_protocol::wire;

use crate::decode::wire::decode_v1;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::model::{Batch, Value};

/// Cloudflare Queues: at most 128 KB per message; this leaves room for the
/// queue's own framing.
pub const MAX_ENVELOPE_BYTES: usize = 120 * 1024;

use crate::sink::SinkTag;

/// The messages that carry `batch` to the sink tagged `tag`.
pub fn encode(batch: &Batch, tag: SinkTag) -> Vec<Vec<u8>> {
    batch.encode_in_parts(MAX_ENVELOPE_BYTES, &|range| {
        let mut message = vec![tag as u8];
        message.extend(crate::gzip::compress(&to_wire_json(batch, range)));
        message
    })
}

/// The points in `range` of `batch` as wire v1 JSON.
fn to_wire_json(batch: &Batch, range: std::ops::Range<usize>) -> Vec<u8> {
    let points = &batch.points[range];
    let base = points.first().map_or(0, |p| p.timestamp_ms);
    let mut index: Vec<Option<u32>> = vec![None; batch.series.len()];
    let mut series = Vec::new();
    let mut wire_points = Vec::with_capacity(points.len());
    for p in points {
        let s = *index[p.series].get_or_insert_with(|| {
            let model = &batch.series[p.series];
            series.push(wire::Series {
                n: Cow::Borrowed(&model.name),
                k: model.kind,
                u: Some(Cow::Borrowed(model.unit.as_str())),
                d: wire::Dimensions(
                    model
                        .dimensions
                        .iter()
                        .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                        .collect(),
                ),
                r: Some(model.resolution.seconds()),
            });
            (series.len() - 1) as u32
        });
        let mut point = wire::Point {
            s,
            t: p.timestamp_ms - base,
            ..wire::Point::default()
        };
        let set = |st: &crate::model::StatisticSet| [st.count, st.sum, st.min, st.max];
        match &p.value {
            Value::Counter(x) => point.x = Some(*x),
            Value::Gauge { last, stats } => {
                point.x = Some(*last);
                point.st = stats.as_ref().map(set);
            }
            Value::Distribution { values, counts } => {
                point.vs = Some(values.clone());
                point.cs = Some(counts.clone());
            }
            Value::Statistics(st) => point.st = Some(set(st)),
            Value::Text(text) => point.sv = Some(text.clone()),
            Value::Boolean(b) => point.b = Some(*b),
        }
        wire_points.push(point);
    }
    let batch = wire::Batch {
        v: wire::v1::VERSION,
        id: Cow::Borrowed(&batch.id),
        ns: Cow::Borrowed(&batch.namespace),
        t: base,
        dims: wire::Dimensions::default(),
        series,
        points: wire_points,
    };
    // Serialising owned, finite values cannot fail.
    serde_json::to_vec(&batch).unwrap_or_default()
}

/// The sink, batch id and namespace of a message, without checking the
/// batch (for naming dead letters, which may be older than CloudWatch
/// accepts).
pub fn peek(message: &[u8]) -> Option<(SinkTag, String, String)> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
        ns: String,
    }
    let (tag, body) = message.split_first()?;
    let tag = match tag {
        1 => SinkTag::CloudWatch,
        2 => SinkTag::Influxdb,
        _ => return None,
    };
    // Inflated whole and parsed from bytes, like every other JSON here: a
    // streaming reader would be another copy of serde_json's parser in the
    // Worker's wasm. Bounded like a push's body.
    let json = crate::gzip::inflate(body, Limits::default().max_decompressed_bytes).ok()?;
    let id: Id = serde_json::from_slice(&json).ok()?;
    Some((tag, id.id, id.ns))
}

/// The sink and the batch a message carries, checked again as a push would
/// be (a message that fails to decode is refused, never forwarded).
pub fn decode(message: &[u8], now_ms: i64, limits: &Limits) -> Result<(SinkTag, Batch)> {
    let (tag, body) = message
        .split_first()
        .ok_or_else(|| Error::new(400, "invalid_message", "empty queue message"))?;
    let tag = match tag {
        1 => SinkTag::CloudWatch,
        2 => SinkTag::Influxdb,
        other => {
            return Err(Error::new(
                400,
                "invalid_message",
                format!("unknown sink tag {other}"),
            ));
        }
    };
    let json = crate::gzip::inflate(body, limits.max_decompressed_bytes).map_err(|e| {
        Error::new(
            400,
            "invalid_message",
            format!("batch is not gzip'd wire v1: {e}"),
        )
    })?;
    let decoded = decode_v1(&json, now_ms, limits)?;
    if let Some(r) = decoded.rejected.first() {
        return Err(Error::new(
            400,
            "invalid_message",
            format!("{}: {}", r.field, r.reason),
        ));
    }
    Ok((tag, decoded.batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Point, Series, StatisticSet};
    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

    const NOW: i64 = 1_764_000_000_000;

    fn batch(points: usize) -> Batch {
        let series = vec![
            Series {
                name: "c".into(),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![("route".into(), "/a".into())],
                resolution: Resolution::High,
            },
            Series {
                name: "g".into(),
                kind: Kind::Gauge,
                unit: Unit::None,
                dimensions: vec![],
                resolution: Resolution::Standard,
            },
            Series {
                name: "d".into(),
                kind: Kind::Distribution,
                unit: Unit::Milliseconds,
                dimensions: vec![],
                resolution: Resolution::Standard,
            },
        ];
        let points = (0..points)
            .map(|i| {
                let value = match i % 4 {
                    0 => Value::Counter(i as f64),
                    1 => Value::Gauge {
                        last: 1.5,
                        stats: Some(StatisticSet {
                            count: 2.0,
                            sum: 3.0,
                            min: 1.5,
                            max: 1.5,
                        }),
                    },
                    2 => Value::Distribution {
                        // Varied values, so the batch does not compress away.
                        values: (0..50u64)
                            .map(|v| ((v * 7919 + i as u64 * 104_729) % 100_003) as f64 / 7.3)
                            .collect(),
                        counts: vec![2.0; 50],
                    },
                    _ => Value::Statistics(StatisticSet {
                        count: 4.0,
                        sum: 8.0,
                        min: 1.0,
                        max: 3.0,
                    }),
                };
                let series = [0, 1, 2, 2][i % 4];
                Point {
                    series,
                    timestamp_ms: NOW - i as i64,
                    value,
                }
            })
            .collect();
        Batch {
            id: "q-1".into(),
            namespace: "N".into(),
            series,
            points,
        }
    }

    #[test]
    fn messages_carry_the_batch_exactly() {
        let b = batch(8);
        let messages = encode(&b, SinkTag::Influxdb);
        assert_eq!(messages.len(), 1);
        let (tag, back) = decode(&messages[0], NOW, &Limits::default()).expect("decodes");
        assert_eq!(tag, SinkTag::Influxdb);
        assert_eq!(back, b);
    }

    /// A merged batch may hold more points than a push may: read back
    /// with [`Limits::stored`], it is whole.
    #[test]
    fn merged_batches_past_a_push_s_bounds_read_back_whole() {
        let mut b = batch(1);
        b.series.truncate(1);
        b.points = (0..20_000)
            .map(|i| Point {
                series: 0,
                timestamp_ms: NOW - 60_000 * (i % 3),
                value: Value::Counter(1.0),
            })
            .collect();
        let messages = encode(&b, SinkTag::CloudWatch);
        assert_eq!(
            messages.len(),
            1,
            "so many alike points compress into one message"
        );
        let refused =
            decode(&messages[0], NOW, &Limits::default()).expect_err("past a push's bound");
        assert!(refused.message.contains("points"), "{refused:?}");
        let (_, back) = decode(&messages[0], NOW, &Limits::stored()).expect("read");
        assert!(back == b, "not the batch sent");
    }

    #[test]
    fn messages_carry_strings_and_booleans_exactly() {
        let mut b = batch(3);
        for (i, value) in [
            Value::Text("v1 \"blue\" C:\\x\ttab".into()),
            Value::Text(String::new()),
            Value::Boolean(true),
            Value::Boolean(false),
        ]
        .into_iter()
        .enumerate()
        {
            b.points.push(Point {
                series: 1,
                timestamp_ms: NOW - 10 - i as i64,
                value,
            });
        }
        let messages = encode(&b, SinkTag::Influxdb);
        let (_, back) = decode(&messages[0], NOW, &Limits::default()).expect("decodes");
        assert_eq!(back, b);
    }

    #[test]
    fn large_batches_split_under_the_message_limit() {
        let b = batch(4000);
        let messages = encode(&b, SinkTag::CloudWatch);
        assert!(messages.len() > 1, "{}", messages.len());
        let mut points = Vec::new();
        for m in &messages {
            assert!(m.len() <= MAX_ENVELOPE_BYTES, "{}", m.len());
            let (tag, part) = decode(m, NOW, &Limits::default()).expect("decodes");
            assert_eq!(tag, SinkTag::CloudWatch);
            points.extend(part.points.into_iter().map(|p| (p.timestamp_ms, p.value)));
        }
        let want: Vec<_> = b
            .points
            .into_iter()
            .map(|p| (p.timestamp_ms, p.value))
            .collect();
        assert_eq!(points, want);
    }

    #[test]
    fn peek_names_sink_and_batch_without_checking() {
        let message = encode(&batch(3), SinkTag::Influxdb).remove(0);
        let b = batch(3);
        assert_eq!(
            peek(&message),
            Some((SinkTag::Influxdb, "q-1".to_string(), b.namespace))
        );
        assert_eq!(peek(&[7]), None);
    }

    #[test]
    fn damaged_messages_are_refused() {
        let good = encode(&batch(2), SinkTag::CloudWatch).remove(0);
        let limits = Limits::default();
        assert!(decode(&[], NOW, &limits).is_err());
        assert!(decode(&[9, 1, 2], NOW, &limits).is_err());
        assert!(decode(&good[..good.len() / 2], NOW, &limits).is_err());
    }
}
