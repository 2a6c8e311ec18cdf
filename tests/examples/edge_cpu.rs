//! Cost of one 1,000-point batch in the receiver: pure CPU natively (decode,
//! validate, build the CloudWatch and line-protocol requests: gzip and SigV4
//! included, no network), and time per push natively and in workerd against
//! sink stubs that answer at once, less the time of a `GET /healthz`.
//!
//! ```text
//! cargo run --release -p edgepush-tests --example edge_cpu
//! ```

use std::time::{Duration, Instant, SystemTime};

use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Encoder as _;
use edgepush_tests::{Receiver, StubSinks, Workerd, edge_batch, edge_format, http_get, post};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median times of pushes (each a different batch, so none is a duplicate)
/// and of `GET /healthz`, interleaved.
fn time_pushes(base: &str, bodies: &[Vec<u8>], n: usize) -> (Duration, Duration) {
    let url = format!("{base}/v1/metrics");
    let headers = [
        ("content-type", edge_format().content_type()),
        ("content-encoding", "gzip"),
    ];
    let mut pushes = Vec::new();
    let mut health = Vec::new();
    for body in bodies.iter().take(n) {
        let start = Instant::now();
        let (status, answer) = post(&url, &headers, body);
        pushes.push(start.elapsed());
        assert_eq!(status, 202, "{answer}");
        assert!(answer.get("duplicate").is_none(), "{answer}");
        let start = Instant::now();
        assert_eq!(http_get(&format!("{base}/healthz")), Ok(200));
        health.push(start.elapsed());
    }
    (median(pushes), median(health))
}

fn main() {
    let body = edge_batch(edge_format());
    // A batch seen before is acknowledged without being forwarded, so every
    // timed push sends a batch of its own (same points, new id).
    let bodies: Vec<Vec<u8>> = (0..450).map(|_| edge_batch(edge_format())).collect();
    // `EDGEPUSH_BENCH_BODY=path` writes the batch out, to push it by other means
    // (for example into a workerd run under `perf`).
    if let Ok(path) = std::env::var("EDGEPUSH_BENCH_BODY") {
        std::fs::write(&path, &body).expect("write the batch");
        return;
    }
    let stub = StubSinks::start();
    let sinks = stub.sinks();

    // Pure CPU, natively.
    let ingest = Ingest::default();
    let headers = Headers {
        content_type: Some(edge_format().content_type()),
        content_encoding: Some("gzip"),
        ..Headers::default()
    };
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        let decoded = ingest
            .decode(headers, &body, edgepush::now_ms())
            .expect("valid");
        for sink in &sinks {
            let requests = sink
                .parts(&decoded.batch, SystemTime::now())
                .expect("requests");
            assert!(!requests.is_empty());
        }
    }
    let cpu = start.elapsed() / n;
    let decode_start = Instant::now();
    for _ in 0..n {
        ingest
            .decode(headers, &body, edgepush::now_ms())
            .expect("valid");
    }
    let decode = decode_start.elapsed() / n;
    let encoded = {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gzip");
        out
    };
    let parse_start = Instant::now();
    for _ in 0..n {
        // The wire format the bodies are in (`EDGEPUSH_WIRE`).
        let parsed: edgepush::wire::Batch<'_> = match edge_format() {
            edgepush::wire::Version::V1 => serde_json::from_slice(&encoded).expect("wire v1"),
            edgepush::wire::Version::V2 => edgepush::wire::v2::decode(&encoded).expect("wire v2"),
            edgepush::wire::Version::V3 => edgepush::wire::v3::decode(&encoded).expect("wire v3"),
        };
        std::hint::black_box(parsed);
    }
    let parse = parse_start.elapsed() / n;
    let inflate_start = Instant::now();
    for _ in 0..n {
        use std::io::Read as _;
        let mut out = Vec::with_capacity(encoded.len());
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("gzip");
        std::hint::black_box(out);
    }
    let inflate = inflate_start.elapsed() / n;
    eprintln!(
        "inflate {:?}, parse {:?} of decode {:?}",
        inflate, parse, decode
    );

    let native = Receiver::start(sinks.clone(), Limits::default(), vec![]);
    let (native_push, native_health) = time_pushes(&native.url, &bodies[..50], 50);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = stub.worker_settings();
    // `EDGEPUSH_BENCH_COMPRESS=false` measures uncompressed CloudWatch bodies.
    settings.insert(
        "EDGEPUSH_CLOUDWATCH_COMPRESS".into(),
        std::env::var("EDGEPUSH_BENCH_COMPRESS")
            .unwrap_or_else(|_| "true".into())
            .into(),
    );
    // Miniflare implements the Cache API in JavaScript inside the same
    // workerd, which Cloudflare does not: leave dedupe out of the CPU figure
    // (each batch here is new anyway).
    settings.insert("EDGEPUSH_DEDUPE_SECONDS".into(), "0".into());
    let worker = Workerd::start(dir.path(), &settings.into());
    let (edge_push, edge_health) = time_pushes(&worker.url, &bodies[..50], 50);
    // CPU of the workerd processes: 200 pushes, then 200 health checks.
    let url = format!("{}/v1/metrics", worker.url);
    let headers = [
        ("content-type", edge_format().content_type()),
        ("content-encoding", "gzip"),
    ];
    // V8 compiles the wasm's functions on first use and tiers the hot ones
    // up over the first few hundred pushes: 200 more pushes before the CPU
    // is read, for the steady state of an isolate that serves many.
    for body in &bodies[50..250] {
        let (status, answer) = post(&url, &headers, body);
        assert_eq!(status, 202, "{answer}");
    }
    let n = 200u32;
    let timed = &bodies[250..450];
    // (user, system) of every workerd thread, and user time of the threads
    // that run the isolate (without V8's background compilers and GC).
    let workerd_cpu = |f: &dyn Fn()| {
        let (user, system) = worker.cpu_time();
        let (isolate, _) = worker.isolate_cpu_time();
        f();
        let (user2, system2) = worker.cpu_time();
        let (isolate2, _) = worker.isolate_cpu_time();
        (
            (user2 - user) / n,
            (system2 - system) / n,
            (isolate2 - isolate) / n,
        )
    };
    let pushes_cpu = workerd_cpu(&|| {
        for body in timed {
            let (status, answer) = post(&url, &headers, body);
            assert_eq!(status, 202, "{answer}");
            assert!(answer.get("duplicate").is_none(), "{answer}");
        }
    });
    let health_cpu = workerd_cpu(&|| {
        for _ in 0..n {
            assert_eq!(http_get(&format!("{}/healthz", worker.url)), Ok(200));
        }
    });

    println!("1,000-point batch, {} bytes gzip'd", body.len());
    println!("| where | time |");
    println!("| --- | ---: |");
    println!(
        "| native, CPU: decode + validate | {:.3} ms |",
        decode.as_secs_f64() * 1e3
    );
    println!(
        "| native, CPU: decode + validate + both sinks' requests (gzip, SigV4) | {:.3} ms |",
        cpu.as_secs_f64() * 1e3
    );
    println!(
        "| native server, push forwarded to 2 stub sinks (median) | {:.3} ms |",
        native_push.as_secs_f64() * 1e3
    );
    println!(
        "| native server, GET /healthz (median) | {:.3} ms |",
        native_health.as_secs_f64() * 1e3
    );
    println!(
        "| workerd, push forwarded to 2 stub sinks (median) | {:.3} ms |",
        edge_push.as_secs_f64() * 1e3
    );
    println!(
        "| workerd, GET /healthz (median) | {:.3} ms |",
        edge_health.as_secs_f64() * 1e3
    );
    println!(
        "| workerd, push less /healthz | {:.3} ms |",
        edge_push.saturating_sub(edge_health).as_secs_f64() * 1e3
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| workerd CPU per push, user / system (mean of {n}) | {:.2} / {:.2} ms |",
        ms(pushes_cpu.0),
        ms(pushes_cpu.1)
    );
    println!(
        "| workerd CPU per /healthz, user / system (mean of {n}) | {:.2} / {:.2} ms |",
        ms(health_cpu.0),
        ms(health_cpu.1)
    );
    println!(
        "| workerd user CPU per push less /healthz | {:.2} ms |",
        ms(pushes_cpu.0.saturating_sub(health_cpu.0))
    );
    println!(
        "| workerd isolate thread user CPU per push, per /healthz | {:.2} / {:.2} ms |",
        ms(pushes_cpu.2),
        ms(health_cpu.2)
    );
    println!(
        "| **workerd isolate thread user CPU per push less /healthz** | **{:.2} ms** |",
        ms(pushes_cpu.2.saturating_sub(health_cpu.2))
    );
}
