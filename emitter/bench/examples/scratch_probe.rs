//! Temporary probe (to be deleted).
use std::hint::black_box;
use std::time::Instant;
use edgepush::{Config, Emitter, Metric, Unit};
fn main() {
    let e = Emitter::new(Config::new("B").expect("ns").dimension("service", "api").expect("d"));
    let c = e.counter(Metric::new("requests").unit(Unit::Count).dimension("route", "/a").dimension("method", "GET")).expect("c");
    let d = e.distribution(Metric::new("latency").unit(Unit::Milliseconds).dimension("route", "/a").dimension("method", "GET")).expect("d");
    let vals = edgepush_bench::latencies(1024, 7);
    let n = 2_000_000u64;
    for round in 0..2 {
        let t = Instant::now();
        for _ in 0..n { c.increment(); }
        println!("{round} counter: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for _ in 0..n { d.record(black_box(12.5)); }
        println!("{round} dist same value: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for i in 0..n { d.record(black_box(vals[(i & 1023) as usize])); }
        println!("{round} dist 1024 values: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for i in 0..n { d.record(black_box(vals[(i & 63) as usize])); }
        println!("{round} dist 64 values: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
        let b = e.flush_at(0).expect("f");
        println!("batches {}", b.len());
    }
}
