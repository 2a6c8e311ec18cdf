//! Bytes on the wire per data point for one 1,000-point batch, raw and gzip.
//!
//! ```text
//! cargo run --release -p edgepush --example wire_size
//! ```
//!
//! The workload: 1,000 series (20 metric names x 50 routes, a common
//! `service` dimension), a quarter each counters, gauges, distributions of 5
//! distinct values, and statistic sets; one point each.

use edgepush::{Config, Emitter, Metric, Unit};

fn main() -> Result<(), edgepush::Error> {
    let emitter = Emitter::new(
        Config::new("Shop")?
            .dimension("service", "checkout")?
            .max_points_per_batch(1000)
            .max_batch_bytes(4 << 20),
    );
    for i in 0..1000u32 {
        let metric = Metric::new(format!("metric_{}", i % 20))
            .unit(Unit::Milliseconds)
            .dimension("route", format!("/api/v1/resource{}", i / 20));
        match i % 4 {
            0 => emitter.counter(metric)?.add(f64::from(i)),
            1 => emitter.gauge(metric)?.set(f64::from(i) * 0.5),
            2 => {
                let d = emitter.distribution(metric)?;
                for v in 0..5 {
                    d.record(f64::from(i + v) * 1.25);
                }
            }
            _ => emitter
                .statistics(metric)?
                .record(4.0, f64::from(i) * 4.0, 1.0, f64::from(i)),
        }
    }
    let batches = emitter.flush_at(1_764_000_000_000)?;
    let points: usize = batches.iter().map(|b| b.points()).sum();
    let raw: usize = batches
        .iter()
        .map(|b| b.json().map_or(0, |j| j.len()))
        .sum();
    let gzip: usize = batches.iter().map(|b| b.body().len()).sum();
    println!("batches: {}, points: {points}", batches.len());
    println!(
        "wire v1 raw JSON: {raw} B ({:.1} B/point)",
        raw as f64 / points as f64
    );
    println!(
        "wire v1 gzip:     {gzip} B ({:.1} B/point)",
        gzip as f64 / points as f64
    );
    Ok(())
}
