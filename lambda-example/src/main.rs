//! The Lambda example function, as a plain binary for now: it records an
//! order's metrics and pushes them to the receiver at `EDGEPUSH_URL`
//! (default `http://127.0.0.1:8787`), the way the handler will at the end of
//! each invocation. The `lambda_runtime` integration replaces this `main`.

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("EDGEPUSH_URL").unwrap_or_else(|_| "http://127.0.0.1:8787".into());
    let emitter = Emitter::new(Config::new("LambdaExample")?.dimension("function", "orders")?);
    emitter
        .counter(Metric::new("orders").unit(Unit::Count))?
        .increment();
    emitter
        .distribution(Metric::new("latency").unit(Unit::Milliseconds))?
        .record(12.5);
    let report = emitter.push(&HttpTransport::new(&url))?;
    println!("{} points accepted", report.accepted);
    Ok(())
}
