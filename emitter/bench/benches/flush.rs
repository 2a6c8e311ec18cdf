//! Flush cost and bytes on the wire for 10,000 recorded values over 1,000
//! series.
//!
//! The workload ([`Workload::flush`]): 10 distribution metrics (milliseconds)
//! x 50 routes x 2 methods = 1,000 series, each with a common `service`
//! dimension, 10 values each (latencies 1.0-1000.9 ms in steps of 0.1).
//!
//! Group `flush-10k-values-1k-series` (each iteration records the workload
//! untimed, then times only the flush):
//! - `edgepush/flush_at_v3` and `edgepush/flush_at_v1`: `Emitter::flush_at`,
//!   which takes the aggregates, encodes one batch (1,000 points) in wire
//!   v3 (binary, the default) or v1 (JSON) and gzips it (level 5, the default);
//! - `metrics_cwe/flush`: `metrics_cloudwatch_embedded`'s `Collector::flush`
//!   into a `Vec`: the same data as EMF JSON lines (one document per
//!   dimension set, no compression: Lambda ships stdout as is);
//! - `reference/gzip_of_edgepush_v3` and `_v1`: gzip alone (level 5) of the
//!   batch each flush encodes, to see how much of the flush is gzip;
//! - `reference/emf_powertools_serde_json`: [`Workload::emf_lines`] alone,
//!   this crate's Powertools-style EMF encoder (serde_json, no gzip).
//!
//! Group `gzip-levels`: gzip alone of each format's batch at levels 1 to 9
//! (the sizes are printed), which is how the default level was chosen.
//!
//! Before benchmarking it prints, once, the bytes per recorded value of the
//! same data as CloudWatch EMF log lines the way AWS Lambda Powertools prints
//! them (built by [`Workload::emf_lines`], raw and gzip), as
//! metrics_cloudwatch_embedded writes them, and as edgepush wire v1 and v3
//! (raw and gzip as sent).
//!
//! Full run: `cargo bench -p edgepush-bench --bench flush`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use edgepush::wire::Version;
use edgepush_bench::{
    COMMON_DIMENSION, GZIP_LEVEL, NAMESPACE, TIMESTAMP_MS, Workload, emf_stream, gzip,
};

/// CloudWatch Logs counts 26 bytes per log event on top of its message
/// (PutLogEvents batch size).
const CLOUDWATCH_LOGS_EVENT_OVERHEAD: usize = 26;

/// Prints the bytes-per-value table.
fn print_sizes(w: &Workload, edgepush: [(usize, usize); 2], cwe_raw: usize) {
    let [(v1_raw, v1_gzip), (edgepush_raw, edgepush_gzip)] = edgepush;
    let values = w.values();
    let lines = w.emf_lines(TIMESTAMP_MS).expect("EMF encoding");
    let stream = emf_stream(&lines);
    let emf_raw = stream.len();
    let emf_gzip = gzip(&stream, GZIP_LEVEL).len();
    let emf_logs =
        lines.iter().map(String::len).sum::<usize>() + lines.len() * CLOUDWATCH_LOGS_EVENT_OVERHEAD;
    let per = |bytes: usize| bytes as f64 / values as f64;
    println!();
    println!(
        "Bytes on the wire: {values} recorded values, {} series, {} EMF documents",
        w.series.len(),
        lines.len()
    );
    println!("gzip level {GZIP_LEVEL}, the emitter's default");
    println!("| encoding | bytes | bytes per value |");
    println!("| --- | ---: | ---: |");
    let rows = [
        ("EMF JSON lines (Powertools-style), raw", emf_raw),
        ("EMF JSON lines (Powertools-style), gzip", emf_gzip),
        (
            "EMF raw + 26 B/event (CloudWatch Logs event size)",
            emf_logs,
        ),
        ("EMF JSON lines (metrics_cloudwatch_embedded), raw", cwe_raw),
        ("edgepush wire v1, raw JSON", v1_raw),
        ("edgepush wire v1, gzip", v1_gzip),
        ("edgepush wire v3, raw", edgepush_raw),
        ("edgepush wire v3, gzip (as sent)", edgepush_gzip),
    ];
    for (name, bytes) in rows {
        println!("| {name} | {bytes} | {:.2} |", per(bytes));
    }
    println!(
        "ratio edgepush v3 gzip / EMF raw: {:.3} (1 : {:.1})",
        edgepush_gzip as f64 / emf_raw as f64,
        emf_raw as f64 / edgepush_gzip as f64
    );
    println!(
        "ratio edgepush v3 gzip / EMF gzip: {:.3}",
        edgepush_gzip as f64 / emf_gzip as f64
    );
    println!();
}

fn flush(c: &mut Criterion) {
    let w = Workload::flush();

    // edgepush: register once; every iteration records then flushes. One
    // emitter per wire format.
    let setups: Vec<_> = [Version::V1, Version::V3]
        .into_iter()
        .map(|format| {
            let emitter = w.emitter(format).expect("config");
            let handles = w.register(&emitter).expect("register");
            w.record(&handles);
            let batches = emitter.flush_at(TIMESTAMP_MS).expect("flush");
            let points: usize = batches.iter().map(|b| b.points()).sum();
            assert_eq!(points, w.series.len(), "one point per series");
            (format, emitter, handles, batches)
        })
        .collect();
    let sizes = |i: usize| -> (usize, usize) {
        let batches = &setups[i].3;
        (
            batches
                .iter()
                .map(|b| b.encoded().expect("decompress").len())
                .sum(),
            batches.iter().map(|b| b.body().len()).sum(),
        )
    };
    let edgepush = [sizes(0), sizes(1)];

    // metrics_cloudwatch_embedded as the global recorder, handles registered once.
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(COMMON_DIMENSION.0, COMMON_DIMENSION.1)
        .with_timestamp(TIMESTAMP_MS as u64)
        .init()
        .expect("install the metrics_cloudwatch_embedded recorder");
    let histograms: Vec<metrics::Histogram> = w
        .series
        .iter()
        .map(|s| {
            metrics::describe_histogram!(s.name.clone(), metrics::Unit::Milliseconds, "");
            let labels: Vec<metrics::Label> = s
                .dimensions
                .iter()
                .map(|(n, v)| metrics::Label::new(n.clone(), v.clone()))
                .collect();
            metrics::histogram!(s.name.clone(), labels)
        })
        .collect();
    let cwe_record = || {
        for (s, h) in w.series.iter().zip(&histograms) {
            for &v in &s.values {
                h.record(v);
            }
        }
    };
    cwe_record();
    let mut out = Vec::new();
    collector.flush(&mut out).expect("flush");
    let cwe_values: usize = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let doc: serde_json::Value = serde_json::from_slice(l).expect("EMF document");
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| {
                    let name = m["Name"].as_str().expect("name");
                    doc[name].as_array().map_or(1, Vec::len)
                })
                .sum::<usize>()
        })
        .sum();
    assert_eq!(
        cwe_values,
        w.values(),
        "metrics_cloudwatch_embedded kept every value"
    );

    print_sizes(&w, edgepush, out.len());

    let mut group = c.benchmark_group("flush-10k-values-1k-series");
    // Both libraries keep their state in one shared registry, so every
    // iteration records, untimed, right before its flush.
    for (format, emitter, handles, _) in &setups {
        let name = match format {
            Version::V1 => "edgepush/flush_at_v1",
            _ => "edgepush/flush_at_v3",
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || w.record(handles),
                |()| emitter.flush_at(TIMESTAMP_MS).expect("flush"),
                BatchSize::PerIteration,
            );
        });
    }
    group.bench_function("metrics_cwe/flush", |b| {
        b.iter_batched(
            || {
                cwe_record();
                Vec::with_capacity(out.len())
            },
            |mut buf| {
                collector.flush(&mut buf).expect("flush");
                buf
            },
            BatchSize::PerIteration,
        );
    });
    // References, to read the flush times against: gzip alone of the same
    // wire JSON, and this crate's Powertools-style EMF encoding alone.
    for (format, _, _, batches) in &setups {
        let name = match format {
            Version::V1 => "reference/gzip_of_edgepush_v1",
            _ => "reference/gzip_of_edgepush_v3",
        };
        let encoded = batches[0].encoded().expect("decompress");
        group.bench_function(name, |b| {
            b.iter(|| gzip(black_box(&encoded), GZIP_LEVEL));
        });
    }
    group.bench_function("reference/emf_powertools_serde_json", |b| {
        b.iter(|| black_box(&w).emf_lines(TIMESTAMP_MS).expect("EMF encoding"));
    });
    group.finish();

    // What each gzip level gives on the batches, to choose the default.
    let mut group = c.benchmark_group("gzip-levels");
    for (format, _, _, batches) in &setups {
        let encoded = batches[0].encoded().expect("decompress");
        let format = match format {
            Version::V1 => "v1",
            _ => "v3",
        };
        for level in 1..=9 {
            println!(
                "gzip level {level} of the wire {format} batch: {} bytes",
                gzip(&encoded, level).len()
            );
            group.bench_function(format!("{format}/level_{level}"), |b| {
                b.iter(|| gzip(black_box(&encoded), level));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, flush);
criterion_main!(benches);
