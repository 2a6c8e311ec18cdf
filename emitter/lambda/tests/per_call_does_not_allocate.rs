//! Recording per call through an invocation, with the invocation's own
//! dimensions, allocates nothing once its keys were seen: proved with a
//! counting global allocator.

use std::alloc::System;

use edgepush::{Config, Key, Unit};
use edgepush_lambda::{LambdaMetrics, Options};
use lambda_runtime::Context;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ORDERS: Key<'static> = Key::new("orders").unit(Unit::Count);
const LATENCY: Key<'static> = Key::new("latency").unit(Unit::Milliseconds);

#[test]
fn an_invocation_records_per_call_without_allocating() {
    let metrics = LambdaMetrics::with_output(
        Config::new("Alloc").expect("namespace"),
        Options::default(),
        |_: &[String]| {},
    )
    .expect("metrics");
    let invocation = metrics.invocation(&Context::default());
    invocation.dimension("tenant", "acme");
    let record = |i: u32| {
        let route = if i.is_multiple_of(2) { "/a" } else { "/b" };
        invocation
            .add(&ORDERS.dimensions(&[("route", route)]), 1.0)
            .expect("counter");
        invocation
            .record(&LATENCY, f64::from(i % 300))
            .expect("distribution");
    };
    let first = Region::new(GLOBAL);
    record(0);
    record(1);
    assert!(first.change().allocations > 0, "new keys register");

    // The quietest of three runs (the counter is global: a stray allocation
    // by another thread can land in one).
    let mut runs = Vec::new();
    for _ in 0..3 {
        let region = Region::new(GLOBAL);
        for i in 0..100_000 {
            record(i);
        }
        let change = region.change();
        runs.push((change.allocations, change.reallocations));
    }
    assert!(runs.contains(&(0, 0)), "{runs:?}");
}
