//! Sink requests per 100,000 pushes, per-push against merged, natively, and
//! what each way costs per million invocations.
//!
//! 1,000 emitters (the real `edgepush` emitter: 8 threads, each standing for
//! 125 function instances in turn) push 100 invocations each, paced over
//! `EDGEPUSH_BENCH_SECONDS` (default 60): every invocation records 50
//! series (25 counters, 25 distributions of one value, three dimensions)
//! and pushes once, as a Lambda function does at the end of an invocation.
//! The release receiver runs in this process, forwarding to a stub that
//! counts requests (CloudWatch over signed AWS JSON, and InfluxDB 1.x line
//! protocol); once delivering each push, once merging with the default
//! 10 s flush interval, and once merging with every push journaled first
//! (as with `spool_dir`). `EDGEPUSH_BENCH_SECONDS=0` pushes as fast as
//! the receiver takes them: the `took` column is then its throughput.
//!
//! The cost table, in USD per million invocations at us-east-1 list prices:
//! EMF to CloudWatch Logs (the same invocation as EMF, the bytes measured,
//! at USD 0.50 per GB ingested), `PutMetricData` per push and merged (USD
//! 0.01 per 1,000 requests). Custom metrics' monthly charge (per series)
//! is the same for all three and left out.
//!
//! `cargo run --release -p edgepush-tests --example aggregation_requests`
//! (`.ci/bench` runs it and keeps its table in `target/bench/aggregation.md`).

use edgepush_receiver::aggregate::Settings;
use edgepush_receiver::limits::Limits;
use edgepush_tests::merging::{INSTANCE_SERIES, Instance, push_invocations};
use edgepush_tests::{Receiver, StubSinks};

const EMITTERS: usize = 1000;
const THREADS: usize = 8;
const INVOCATIONS: usize = 100;
const SERIES: usize = INSTANCE_SERIES;

/// The bytes one invocation writes as EMF (what Powertools would log).
fn emf_bytes_per_invocation() -> usize {
    let one = Instance::new();
    one.invoke(1);
    one.emitter
        .flush()
        .expect("flush")
        .iter()
        .flat_map(|p| p.emf(&[]).expect("EMF"))
        .map(|doc| doc.len() + 1)
        .sum()
}

fn main() {
    let seconds: f64 = std::env::var("EDGEPUSH_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let mut rows = Vec::new();
    for (mode, merged) in [
        ("per push", false),
        ("merged", true),
        ("merged, journaled", true),
    ] {
        let stub = StubSinks::start();
        let journal = tempfile::tempdir().expect("temp dir");
        let receiver = match mode {
            "per push" => Receiver::start(stub.sinks(), Limits::default(), Vec::new()),
            "merged" => Receiver::start_aggregating(stub.sinks(), Settings::default()),
            _ => Receiver::start_aggregating_with(
                stub.sinks(),
                Settings::default(),
                Some(journal.path()),
            ),
        };
        let (pushes, took) = push_invocations(
            &receiver.url,
            THREADS,
            EMITTERS / THREADS,
            INVOCATIONS,
            seconds,
        );
        // Shutting down sends what is still merged.
        drop(receiver);
        let requests = stub.requests();
        eprintln!("{mode}: {pushes} pushes, {requests} sink requests in {took:.1?}");
        rows.push((mode, merged, pushes, requests, took));
    }
    let emf = emf_bytes_per_invocation();
    println!(
        "{} emitters x {INVOCATIONS} invocations ({SERIES} series each), paced over {seconds} s; two sinks (CloudWatch, InfluxDB); flush interval {} s.\n",
        EMITTERS,
        Settings::default().flush_interval_seconds
    );
    println!("| delivery | pushes | sink requests | per 100,000 pushes, each sink | took |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut per_million = [0.0; 2];
    for (mode, merged, pushes, requests, took) in &rows {
        let per_sink = *requests as f64 / 2.0 / *pushes as f64 * 100_000.0;
        per_million[usize::from(*merged)] = per_sink * 10.0;
        println!(
            "| {mode} | {pushes} | {requests} | {per_sink:.0} | {:.1} s |",
            took.as_secs_f64()
        );
    }
    let usd = |requests: f64| requests / 1000.0 * 0.01;
    println!(
        "\nUSD per million invocations (CloudWatch only; custom metrics' monthly charge aside):\n"
    );
    println!("| way | what is billed | USD |");
    println!("| --- | --- | ---: |");
    println!(
        "| EMF to CloudWatch Logs | {emf} B of logs per invocation, USD 0.50/GB | {:.2} |",
        emf as f64 * 1e6 / 1e9 * 0.50
    );
    println!(
        "| PutMetricData per push | {:.0} requests | {:.2} |",
        per_million[0],
        usd(per_million[0])
    );
    println!(
        "| PutMetricData merged | {:.0} requests | {:.4} |",
        per_million[1],
        usd(per_million[1])
    );
    println!(
        "\nMerged requests depend on time, not on pushes: one per flush interval (and per 1,000 datums) while pushes arrive."
    );
}
