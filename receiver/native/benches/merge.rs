//! Merge throughput beside decoding, per datapoint, on one core: the same
//! 1,000-point push (100 series with two dimensions: counters, gauges and
//! distributions of 5 values) decoded from wire v1 JSON, and merged into an
//! aggregator that already holds its series and period (the steady state:
//! many functions pushing the same series).
//!
//! `cargo bench -p edgepush-receiver-native --bench merge`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepush_receiver::aggregate::Aggregator;
use edgepush_receiver::ingest::{Headers, Ingest};

const NOW: i64 = 1_764_000_000_000;
const POINTS: usize = 1000;

/// A 1,000-point push in wire v1 JSON: 100 series, 10 points each.
fn push() -> String {
    let kinds = ["c", "g", "d"];
    let mut series = String::new();
    for i in 0..100 {
        let kind = kinds[i % kinds.len()];
        let _ = write!(
            series,
            r#"{}{{"n":"checkout.step_{i}","k":"{kind}","u":"Milliseconds","d":{{"service":"shop","region":"eu-west-1"}}}}"#,
            if i == 0 { "" } else { "," }
        );
    }
    let mut points = String::new();
    for p in 0..POINTS {
        let s = p % 100;
        let value = match kinds[s % kinds.len()] {
            "d" => format!(
                r#""vs":[{a},{b},{c},{d},{e}],"cs":[1,2,1,1,3]"#,
                a = p % 17,
                b = p % 17 + 20,
                c = p % 17 + 40,
                d = p % 17 + 60,
                e = p % 17 + 80
            ),
            _ => format!(r#""x":{}"#, p % 13 + 1),
        };
        let _ = write!(
            points,
            r#"{}{{"s":{s},"t":{},{value}}}"#,
            if p == 0 { "" } else { "," },
            p % 50
        );
    }
    format!(
        r#"{{"v":1,"id":"bench","ns":"Shop","t":{NOW},"series":[{series}],"points":[{points}]}}"#
    )
}

fn merge(c: &mut Criterion) {
    let body = push();
    let ingest = Ingest::default();
    let headers = Headers {
        content_type: Some("application/vnd.edgepush.v1+json"),
        ..Headers::default()
    };
    let batch = ingest
        .decode(headers, body.as_bytes(), NOW)
        .expect("valid")
        .batch;
    assert_eq!(batch.points.len(), POINTS);
    let mut group = c.benchmark_group("merge");
    group.throughput(Throughput::Elements(POINTS as u64));
    group.bench_function("decode_wire_v1", |b| {
        b.iter(|| ingest.decode(headers, black_box(body.as_bytes()), NOW))
    });
    let mut aggregator = Aggregator::new();
    aggregator.add(&batch);
    group.bench_function("merge", |b| b.iter(|| aggregator.add(black_box(&batch))));
    group.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
