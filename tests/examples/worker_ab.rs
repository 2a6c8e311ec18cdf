//! Two Worker builds side by side in workerd: CPU of the isolate's thread
//! per 1,000-point push (wire v2, or `EDGEPUSH_WIRE=v1`), forwarded to both
//! sinks (stubs that answer at once), the builds taking turns push by push
//! (A B A B ...), less the CPU of a `GET /healthz` on each. For deciding a build trade (size against
//! CPU) on this noisy machine, where two runs minutes apart differ by ±20%.
//!
//! ```text
//! EDGEPUSH_AB="receiver/build-a/index.js receiver/build/index.js" \
//!   cargo run --release -p edgepush-tests --example worker_ab
//! ```
//!
//! Paths are relative to the repository; each is a `.ci/build-worker`
//! output (`EDGEPUSH_WORKER_OUT`). Without `EDGEPUSH_AB`, the shipped build
//! is compared with itself (the two figures then differ by the noise alone).

use std::time::Duration;

use edgepush_tests::{StubSinks, Workerd, edge_batch, edge_format, http_get, post};

fn main() {
    let scripts: Vec<String> = std::env::var("EDGEPUSH_AB")
        .unwrap_or_else(|_| "receiver/build/index.js receiver/build/index.js".into())
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(scripts.len() >= 2, "EDGEPUSH_AB names two builds or more");
    let stub = StubSinks::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = stub.worker_settings();
    // Miniflare's Cache API runs in JavaScript in the same workerd, which
    // Cloudflare's does not (see edge_cpu).
    settings.insert("EDGEPUSH_DEDUPE_SECONDS".into(), "0".into());
    let settings = serde_json::Value::from(settings);
    let workers: Vec<Workerd> = scripts
        .iter()
        .map(|script| Workerd::start_script(dir.path(), script, &settings))
        .collect();
    let headers = [
        ("content-type", edge_format().content_type()),
        ("content-encoding", "gzip"),
    ];
    let bodies: Vec<Vec<u8>> = (0..40).map(|_| edge_batch(edge_format())).collect();
    // Warm up: V8 tiers the wasm up over the first pushes.
    for worker in &workers {
        for body in &bodies[..10] {
            let (status, answer) = post(&format!("{}/v1/metrics", worker.url), &headers, body);
            assert_eq!(status, 202, "{answer}");
        }
    }
    // /proc counts CPU in 10 ms ticks: the figure is a mean over many
    // pushes, taken in turns so that both builds see the same machine.
    // `EDGEPUSH_AB_PASSES`: more for finer differences (40 pushes a pass).
    let passes: usize = std::env::var("EDGEPUSH_AB_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(10);
    let mut push = vec![Duration::ZERO; workers.len()];
    let mut health = vec![Duration::ZERO; workers.len()];
    let mut pushes = 0u32;
    for _ in 0..passes {
        for body in &bodies {
            for (w, worker) in workers.iter().enumerate() {
                let (before, _) = worker.isolate_cpu_time();
                let (status, answer) = post(&format!("{}/v1/metrics", worker.url), &headers, body);
                push[w] += worker.isolate_cpu_time().0 - before;
                assert_eq!(status, 202, "{answer}");
                assert!(answer.get("duplicate").is_none(), "{answer}");
                let (before, _) = worker.isolate_cpu_time();
                assert_eq!(http_get(&format!("{}/healthz", worker.url)), Ok(200));
                health[w] += worker.isolate_cpu_time().0 - before;
            }
            pushes += 1;
        }
    }
    println!(
        "1,000-point {:?} push ({} bytes gzip'd) forwarded to two stub sinks; means of {pushes} pushes per build, in turns",
        edge_format(),
        bodies[0].len()
    );
    println!(
        "| build | isolate CPU per push | per /healthz | push less /healthz | ratio to the first |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    let net: Vec<f64> = (0..workers.len())
        .map(|w| (push[w].saturating_sub(health[w])).as_secs_f64() * 1e3 / f64::from(pushes))
        .collect();
    for (w, script) in scripts.iter().enumerate() {
        println!(
            "| `{script}` | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} |",
            push[w].as_secs_f64() * 1e3 / f64::from(pushes),
            health[w].as_secs_f64() * 1e3 / f64::from(pushes),
            net[w],
            net[w] / net[0],
        );
    }
}
