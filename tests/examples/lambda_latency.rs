//! Response latency each flush strategy adds to a Lambda invocation, and
//! init cost, side by side with a function without metrics and with every
//! batch written as EMF to stdout (the Powertools way).
//!
//! ```text
//! cargo run --release -p edgepush-tests --example lambda_latency
//! ```
//!
//! Latency: five `cargo lambda watch --release` emulators (baseline, EMF,
//! end-of-invocation, after-response, periodic) invoked in turn, A B C D E
//! A B ..., timed at the client. Init: the function binaries started under
//! the project's Runtime API test server, time from spawn to the first
//! response, interleaved.

use std::process::Command;
use std::time::{Duration, Instant};

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::lambda_api::{CargoLambdaWatch, LambdaApi};
use edgepush_tests::{Receiver, median, quantile, repo_root};
use serde_json::json;

const ROUNDS: usize = 400;

/// Name, binary, environment.
type Variant<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);

fn main() {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-q", "-p", "lambda-example", "--bins"])
        .current_dir(repo_root())
        .status()
        .expect("cargo build");
    assert!(status.success());
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(Vec::<Sink>::new(), Limits::default(), vec![]);
    let url = receiver.url.clone();
    let variants: Vec<Variant<'_>> = vec![
        ("no metrics (baseline)", "baseline", vec![]),
        ("EMF to stdout", "lambda-example", vec![]),
        (
            "end of invocation",
            "lambda-example",
            vec![
                ("EDGEPUSH_URL", &url),
                ("EDGEPUSH_FLUSH", "end-of-invocation"),
            ],
        ),
        (
            "after response",
            "lambda-example",
            vec![("EDGEPUSH_URL", &url), ("EDGEPUSH_FLUSH", "after-response")],
        ),
        (
            "periodic (60 s)",
            "lambda-example",
            vec![
                ("EDGEPUSH_URL", &url),
                ("EDGEPUSH_FLUSH", "periodic:60:100000"),
            ],
        ),
    ];
    let watches: Vec<CargoLambdaWatch> = variants
        .iter()
        .map(|(_, bin, env)| CargoLambdaWatch::start_release(dir.path(), bin, env))
        .collect();
    let order = json!({"tenant": "acme", "items": 2, "cents": 1250, "payment_ms": 12.5});
    let mut times = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS + 20 {
        for (i, watch) in watches.iter().enumerate() {
            let start = Instant::now();
            watch.invoke(&order);
            if round >= 20 {
                times[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let base = median(&mut times[0].clone());
    println!(
        "latency per invocation, {ROUNDS} rounds, ms at the client (cargo lambda watch --release):"
    );
    println!("| function | median | p90 | added to the median |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, _, _), t) in variants.iter().zip(times.iter_mut()) {
        let m = median(t);
        let p90 = quantile(t, 0.9);
        println!("| {name} | {m:.3} | {p90:.3} | {:+.3} |", m - base);
    }
    drop(watches);

    // Init: spawn to first response, under the Runtime API test server.
    let release = repo_root().join("target/release");
    let release = std::env::var("CARGO_TARGET_DIR")
        .map(|d| std::path::PathBuf::from(d).join("release"))
        .unwrap_or(release);
    let mut init = vec![Vec::new(); variants.len()];
    for _ in 0..15 {
        for (i, (_, bin, env)) in variants.iter().enumerate() {
            let api = LambdaApi::start();
            let start = Instant::now();
            let mut env = env.clone();
            let api_url = api.receiver_url();
            // Push to the test server's receiver instead.
            for (name, value) in &mut env {
                if *name == "EDGEPUSH_URL" {
                    *value = &api_url;
                }
            }
            let function = api.start_function(dir.path(), &release.join(bin), &env);
            let invoked = api.invoke(order.clone(), Duration::from_secs(10));
            let (answered, _) = invoked.response.expect("answered");
            init[i].push((answered - start).as_secs_f64() * 1e3);
            drop(function);
        }
    }
    let base = median(&mut init[0].clone());
    println!("\ncold start, spawn to first response, ms (median of 15):");
    println!("| function | median | added |");
    println!("| --- | ---: | ---: |");
    for ((name, _, _), t) in variants.iter().zip(init.iter_mut()) {
        let m = median(t);
        println!("| {name} | {m:.2} | {:+.2} |", m - base);
    }
    for bin in ["baseline", "lambda-example"] {
        let size = std::fs::metadata(release.join(bin))
            .map(|m| m.len())
            .unwrap_or(0);
        println!("{bin}: {size} bytes");
    }
    let _ = Duration::ZERO;
}
