//! CPU and bytes of one 1,000-datum `PutMetricData` through each native
//! CloudWatch path:
//! - `sdk`: `aws-sdk-cloudwatch` (rpc-v2-cbor, the SDK's gzip, SigV4, its
//!   retry and identity machinery) into an in-process HTTP client;
//! - `signed_json`: AWS JSON encoded, gzip'd and SigV4-signed by edgepush,
//!   as the Worker does.
//!
//! No network in either: the cost measured is the receiver's own.
//! `cargo bench -p edgepush-receiver-native --bench cloudwatch_paths`

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_smithy_http_client::test_util::infallible_client_fn;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};
use edgepush_receiver::model::{Batch, Point, Series, StatisticSet, Value};
use edgepush_receiver::sink::Retry;
use edgepush_receiver::sink::cloudwatch::{self, Protocol};
use edgepush_receiver_native::Reqwest;
use edgepush_receiver_native::cloudwatch::AwsCloudWatch;

/// 1,000 datums over 100 series with three dimensions each: 400 counters,
/// 200 gauges, 200 distributions of 10 distinct values, 200 statistic sets.
fn batch() -> Batch {
    let kinds = [
        Kind::Counter,
        Kind::Counter,
        Kind::Gauge,
        Kind::Distribution,
        Kind::Statistics,
    ];
    let series: Vec<Series> = (0..100)
        .map(|i| Series {
            name: format!("checkout.step_{i}.latency"),
            kind: kinds[i % kinds.len()],
            unit: Unit::Milliseconds,
            dimensions: vec![
                ("service".into(), "checkout".into()),
                ("route".into(), format!("/api/v1/items/{}", i % 7)),
                ("region".into(), "eu-west-1".into()),
            ],
            resolution: Resolution::Standard,
        })
        .collect();
    let points = (0..1000)
        .map(|i| {
            let s = i % series.len();
            let v = 12.5 + (i as f64) * 0.347;
            let value = match series[s].kind {
                Kind::Counter => Value::Counter((i % 17) as f64 + 1.0),
                Kind::Gauge => Value::Gauge {
                    last: v,
                    stats: None,
                },
                Kind::Distribution => Value::Distribution {
                    values: (0..10).map(|k| v + f64::from(k) * 1.25).collect(),
                    counts: (0..10).map(|k| f64::from(k % 3 + 1)).collect(),
                },
                _ => Value::Statistics(StatisticSet {
                    count: 12.0,
                    sum: v * 12.0,
                    min: v - 3.0,
                    max: v + 9.5,
                }),
            };
            Point {
                series: s,
                timestamp_ms: 1_764_000_000_000 + (i as i64 / 100) * 1000,
                value,
            }
        })
        .collect();
    Batch {
        id: "bench".into(),
        namespace: "Bench".into(),
        series,
        points,
    }
}

fn config(compress: bool, protocol: Protocol) -> cloudwatch::Config {
    cloudwatch::Config {
        endpoint: Some("http://127.0.0.1:9/".into()),
        access_key_id: Some("AKIDEXAMPLE".into()),
        secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
        compress,
        protocol,
        ..cloudwatch::Config::new("eu-west-1")
    }
}

/// The SDK path into an HTTP client that answers 200 at once and adds up
/// the bytes it was sent.
fn sdk(runtime: &tokio::runtime::Runtime, compress: bool) -> (AwsCloudWatch, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let http = infallible_client_fn(move |request| {
        let len = request.body().bytes().map_or(0, <[u8]>::len);
        counter.fetch_add(len, Ordering::Relaxed);
        http::Response::builder()
            .status(200)
            .header("smithy-protocol", "rpc-v2-cbor")
            .header("content-type", "application/cbor")
            .body(vec![0xa0_u8])
            .expect("response")
    });
    let aws = runtime
        .block_on(AwsCloudWatch::connect_with(
            &config(compress, Protocol::Sdk),
            Retry::default(),
            http,
        ))
        .expect("connect");
    (aws, sent)
}

fn signed_json(batch: &Batch, config: &cloudwatch::Config) -> Vec<http::Request<Vec<u8>>> {
    let keys = cloudwatch::Keys {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    };
    cloudwatch::bodies(batch)
        .iter()
        .map(|body| cloudwatch::request(config, &keys, body, SystemTime::now()).expect("signed"))
        .collect()
}

fn paths(c: &mut Criterion) {
    let batch = batch();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = Reqwest::default();

    // Bytes on the wire, printed once.
    let json_bytes = |compress| -> usize {
        signed_json(&batch, &config(compress, Protocol::Json))
            .iter()
            .map(|r| r.body().len())
            .sum()
    };
    let sdk_bytes = |compress| {
        let (aws, sent) = sdk(&runtime, compress);
        runtime
            .block_on(aws.deliver(&client, &batch, Retry::default()))
            .expect("sent");
        sent.load(Ordering::Relaxed)
    };
    eprintln!(
        "bytes per 1,000 datums: signed JSON {} raw, {} gzip; SDK CBOR {} raw, {} gzip",
        json_bytes(false),
        json_bytes(true),
        sdk_bytes(false),
        sdk_bytes(true),
    );

    let mut group = c.benchmark_group("put_metric_data_1000_datums");
    group.throughput(Throughput::Elements(1000));
    group.measurement_time(Duration::from_secs(5));
    let json_config = config(true, Protocol::Json);
    group.bench_function("signed_json_gzip", |b| {
        b.iter(|| black_box(signed_json(black_box(&batch), &json_config)))
    });
    let (aws, _) = sdk(&runtime, true);
    group.bench_function("sdk_cbor_gzip", |b| {
        b.iter(|| {
            runtime
                .block_on(aws.deliver(&client, black_box(&batch), Retry::default()))
                .expect("sent")
        })
    });
    group.finish();
}

criterion_group!(benches, paths);
criterion_main!(benches);
