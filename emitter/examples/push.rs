//! A function that records metrics and pushes them at the end of each
//! invocation, the way a serverless handler would.
//!
//! ```text
//! cargo run -p edgepush --example push -- http://127.0.0.1:8787 3
//! ```

use std::time::{Duration, Instant};

use edgepush::{Config, Emitter, HttpTransport, Metric, Unit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let invocations: u32 = args.next().map_or(Ok(3), |n| n.parse())?;
    let key = std::env::var("EDGEPUSH_API_KEY").ok();

    let emitter = Emitter::new(Config::new("Shop")?.dimension("service", "checkout")?);
    let orders = emitter.counter(
        Metric::new("orders")
            .unit(Unit::Count)
            .dimension("route", "/buy"),
    )?;
    let latency = emitter.distribution(
        Metric::new("latency")
            .unit(Unit::Milliseconds)
            .dimension("route", "/buy"),
    )?;
    let basket = emitter.statistics(Metric::new("basket_size").unit(Unit::Count))?;
    let in_flight = emitter.gauge(Metric::new("in_flight"))?;
    let mut transport = HttpTransport::new(&url).timeout(Duration::from_secs(2));
    if let Some(key) = &key {
        transport = transport.api_key(key);
    }

    for invocation in 1..=invocations {
        let start = Instant::now();
        // The handler's work: a few orders of different sizes.
        for order in 0..invocation * 2 {
            orders.increment();
            let items = f64::from(order % 4 + 1);
            basket.record(1.0, items, items, items);
            latency.record(f64::from(10 + order * 3));
        }
        in_flight.set(f64::from(invocation));
        // End of invocation: push everything recorded.
        match emitter.push(&transport) {
            Ok(report) => eprintln!(
                "invocation {invocation}: pushed {} batch(es), {} points accepted in {:.1} ms",
                report.batches,
                report.accepted,
                start.elapsed().as_secs_f64() * 1000.0
            ),
            Err(failed) => {
                // Nothing is lost: the batches are handed back. A real
                // function would retry them or write them to its log.
                eprintln!("invocation {invocation}: {failed}");
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
