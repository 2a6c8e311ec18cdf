//! Merging at the edge, in workerd (Miniflare), side by side with the
//! Worker that delivers each push:
//!
//! 1. **CPU per 1,000-point push** with the Durable Object hop (the push
//!    handler, and the aggregator's merge and storage write, which run in
//!    the same workerd process) against today's inline push forwarded to
//!    two sinks: user CPU of the isolate threads, in interleaved rounds,
//!    less that of a `GET /healthz`.
//! 2. **Sink requests per 100,000 pushes**, per push and merged: 100
//!    emitters (the real `edgepush` emitter: 4 threads of 25 function
//!    instances) push 50 invocations each of 50 series (as
//!    `aggregation_requests`), paced over `EDGEPUSH_BENCH_SECONDS` (default
//!    30), to a stub that counts requests; merged with the default 10 s
//!    flush interval, counted once every period has gone out.
//!
//! `cargo run --release -p edgepush-tests --example edge_aggregation`
//! (`.ci/bench` step 7 runs it).

use std::time::Duration;

use edgepush_tests::merging::{INSTANCE_SERIES, push_invocations};
use edgepush_tests::{StubSinks, Workerd, edge_batch, edge_format, http_get, post};
use serde_json::{Value, json};

/// The aggregators as wrangler.toml binds them, with SQLite storage.
fn aggregators() -> Value {
    json!({
        "durableObjects": {
            "EDGEPUSH_SHARDS": { "className": "MergeShard", "useSQLite": true }
        }
    })
}

fn settings(stub: &StubSinks, merged: bool) -> Value {
    let mut settings = stub.worker_settings();
    // Miniflare implements the Cache API in JavaScript inside the same
    // workerd, which Cloudflare does not: leave it out of the CPU figures.
    settings.insert("EDGEPUSH_DEDUPE_SECONDS".into(), "0".into());
    if merged {
        settings.insert("EDGEPUSH_AGGREGATION".into(), "true".into());
    }
    Value::Object(settings)
}

/// Isolate-thread user CPU per request of `requests`, on `worker`.
fn cpu_of(worker: &Workerd, requests: impl FnOnce() -> u32) -> Duration {
    let (before, _) = worker.isolate_cpu_time();
    let n = requests();
    let (after, _) = worker.isolate_cpu_time();
    (after - before) / n
}

fn push_all(worker: &Workerd, bodies: &[Vec<u8>]) -> u32 {
    let url = format!("{}/v1/metrics", worker.url);
    let headers = [
        ("content-type", edge_format().content_type()),
        ("content-encoding", "gzip"),
    ];
    for body in bodies {
        let (status, answer) = post(&url, &headers, body);
        assert_eq!(status, 202, "{answer}");
        assert!(answer.get("duplicate").is_none(), "{answer}");
    }
    bodies.len() as u32
}

fn health(worker: &Workerd, n: u32) -> u32 {
    for _ in 0..n {
        assert_eq!(http_get(&format!("{}/healthz", worker.url)), Ok(200));
    }
    n
}

const ROUNDS: usize = 4;
const PER_ROUND: usize = 50;
const WARM_UP: usize = 200;

/// Part 1: (inline, merged) isolate CPU per push less /healthz.
fn cpu_per_push() -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stub = StubSinks::start();
    let inline = Workerd::start(dir.path(), &settings(&stub, false));
    let merged = Workerd::start_with(dir.path(), &settings(&stub, true), &aggregators());
    // Every push a batch of its own (a new id), 1,000 points over 1,000
    // series, as edge_cpu.
    let total = 2 * (WARM_UP + ROUNDS * PER_ROUND);
    let bodies: Vec<Vec<u8>> = (0..total).map(|_| edge_batch(edge_format())).collect();
    let (warm, timed) = bodies.split_at(2 * WARM_UP);
    // V8 tiers the hot wasm up over the first few hundred requests.
    push_all(&inline, &warm[..WARM_UP]);
    push_all(&merged, &warm[WARM_UP..]);
    let mut cpu = [Duration::ZERO; 2];
    let mut idle = [Duration::ZERO; 2];
    for (round, chunk) in timed.chunks(2 * PER_ROUND).enumerate() {
        // Interleaved, each worker first in turn.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let worker = [&inline, &merged][which];
            let bodies = &chunk[which * PER_ROUND..(which + 1) * PER_ROUND];
            cpu[which] += cpu_of(worker, || push_all(worker, bodies)) / ROUNDS as u32;
            idle[which] += cpu_of(worker, || health(worker, PER_ROUND as u32)) / ROUNDS as u32;
        }
    }
    (
        cpu[0].saturating_sub(idle[0]),
        cpu[1].saturating_sub(idle[1]),
    )
}

const THREADS: usize = 4;
const INSTANCES_PER_THREAD: usize = 25;
const INVOCATIONS: usize = 50;
const SERIES: usize = INSTANCE_SERIES;

/// Part 2: pushes made, and sink requests once every period went out.
fn requests(merged: bool, seconds: f64) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let stub = StubSinks::start();
    let worker = Workerd::start_with(dir.path(), &settings(&stub, merged), &aggregators());
    let (pushes, _) = push_invocations(
        &worker.url,
        THREADS,
        INSTANCES_PER_THREAD,
        INVOCATIONS,
        seconds,
    );
    if merged {
        // Every point is in a 60 s period: the last goes out a flush
        // interval (10 s) after its minute ends. Wait for that, then for
        // the stub to see no new request for 3 s.
        let now = edgepush::now_ms();
        let out = now - now % 60_000 + 60_000 + 10_000;
        while edgepush::now_ms() < out {
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut seen = stub.requests();
        loop {
            std::thread::sleep(Duration::from_secs(3));
            let now = stub.requests();
            if now == seen {
                break;
            }
            seen = now;
        }
    }
    (pushes, stub.requests())
}

fn main() {
    let seconds: f64 = std::env::var("EDGEPUSH_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    let (inline, merged) = cpu_per_push();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Merging in workerd: isolate-thread user CPU per 1,000-point push (1,000 series), less a `GET /healthz`, mean of {} pushes each, interleaved:\n",
        ROUNDS * PER_ROUND
    );
    println!("| Worker | CPU per push | ratio |");
    println!("| --- | ---: | ---: |");
    println!(
        "| inline, forwarded to 2 stub sinks | {:.2} ms | 1.00 |",
        ms(inline)
    );
    println!(
        "| merging: push handler + Durable Object (merge, SQLite write) | {:.2} ms | {:.2} |",
        ms(merged),
        merged.as_secs_f64() / inline.as_secs_f64()
    );
    if std::env::var("EDGEPUSH_BENCH_CPU_ONLY").is_ok() {
        return;
    }
    let per_push = requests(false, seconds);
    let merged = requests(true, seconds);
    println!(
        "\n{} emitters x {INVOCATIONS} invocations ({SERIES} series each) paced over {seconds} s, into workerd; two sinks; flush interval 10 s:\n",
        THREADS * INSTANCES_PER_THREAD
    );
    println!("| delivery | pushes | sink requests | per 100,000 pushes, each sink |");
    println!("| --- | ---: | ---: | ---: |");
    for (mode, (pushes, requests)) in [("per push", per_push), ("merged", merged)] {
        println!(
            "| {mode} | {pushes} | {requests} | {:.0} |",
            requests as f64 / 2.0 / pushes as f64 * 100_000.0
        );
    }
}
