//! Recording into registered series allocates nothing, whatever is recorded:
//! proved with a counting global allocator.

use std::alloc::System;

use edgepush::{Config, Emitter, Key, Metric, Unit};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The counter is global: the tests take turns, so that one's allocations
/// never land in the other's regions.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `record(i)` for `i` in 0..100,000, three times, each after a
/// flush of `emitter` (so each run starts an interval: its first
/// recordings list their series for the next flush), and checks the
/// quietest run allocated nothing. The counting allocator is global: a
/// stray allocation by the test harness's own threads can land in a run;
/// recording that allocates does so in every run.
fn assert_allocates_nothing(emitter: &Emitter, record: impl Fn(u32)) {
    let mut runs = Vec::new();
    for _ in 0..3 {
        emitter.flush_at(0).expect("flush");
        let recording = Region::new(GLOBAL);
        for i in 0..100_000u32 {
            record(i);
        }
        let change = recording.change();
        runs.push((
            change.allocations,
            change.reallocations,
            change.bytes_allocated,
        ));
    }
    assert!(runs.contains(&(0, 0, 0)), "{runs:?}");
}

#[test]
fn recording_allocates_nothing_and_registration_does() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let emitter = Emitter::new(
        Config::new("Alloc")
            .expect("ns")
            .dimension("service", "a")
            .expect("dim"),
    );

    let registration = Region::new(GLOBAL);
    let counter = emitter
        .counter(
            Metric::new("requests")
                .unit(Unit::Count)
                .dimension("route", "/a")
                .dimension("method", "GET"),
        )
        .expect("counter");
    let gauge = emitter.gauge(Metric::new("in_flight")).expect("gauge");
    let latency = emitter
        .distribution(
            Metric::new("latency")
                .unit(Unit::Milliseconds)
                .dimension("route", "/a")
                .dimension_set(Vec::<String>::new()),
        )
        .expect("distribution");
    let sizes = emitter.statistics(Metric::new("size")).expect("statistics");
    assert!(
        registration.change().allocations > 0,
        "the counting allocator counts"
    );

    assert_allocates_nothing(&emitter, |i| {
        let v = f64::from(i);
        counter.increment();
        counter.add(v);
        gauge.set(v);
        // Exact values, then rounded ones, then the table's overflow.
        latency.record(1.0001f64.powi(i as i32));
        latency.record_many(v, 2);
        sizes.record(2.0, v, 0.0, v);
        counter.add(f64::NAN); // refused and counted
    });

    // Another thread allocates its staging buffer at its first recording
    // into the emitter, and nothing after that.
    let other = std::thread::scope(|s| {
        s.spawn(|| {
            counter.increment();
            latency.record(1.0);
            let mut runs = Vec::new();
            for _ in 0..3 {
                let recording = Region::new(GLOBAL);
                for i in 0..100_000u32 {
                    counter.increment();
                    latency.record(f64::from(i % 300));
                }
                let change = recording.change();
                runs.push((change.allocations, change.reallocations));
            }
            runs
        })
        .join()
        .expect("recording thread")
    });
    assert!(other.contains(&(0, 0)), "{other:?}");

    // And it was all recorded.
    let batches = emitter.flush_at(0).expect("flush");
    assert!(!batches.is_empty());
    assert_eq!(emitter.telemetry().invalid_values, 300_000);
}

#[test]
fn recording_per_call_by_key_allocates_only_for_new_keys() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    const REQUESTS: Key<'static> = Key::new("requests").unit(Unit::Count);
    const LATENCY: Key<'static> = Key::new("latency").unit(Unit::Milliseconds);
    const IN_FLIGHT: Key<'static> = Key::new("in_flight");
    const SIZES: Key<'static> = Key::new("size").unit(Unit::Bytes);
    let emitter = Emitter::new(
        Config::new("Alloc")
            .expect("ns")
            .dimension("service", "a")
            .expect("dim"),
    );
    // Dimension values as a handler has them: owned strings from a request.
    let routes: Vec<String> = (0..4).map(|i| format!("/route/{i}")).collect();
    let record = |i: u32| {
        let v = f64::from(i);
        let route = routes[(i % 4) as usize].as_str();
        let dims = [("route", route), ("method", "GET")];
        emitter
            .add(&REQUESTS.dimensions(&dims), 1.0)
            .expect("counter");
        emitter
            .record(&LATENCY.dimensions(&dims), 1.0001f64.powi(i as i32))
            .expect("distribution");
        emitter.set(&IN_FLIGHT, v).expect("gauge");
        emitter
            .record_statistics(&SIZES.dimensions(&dims[..1]), 2.0, v, 0.0, v)
            .expect("statistics");
        emitter
            .add(&REQUESTS.dimensions(&dims), f64::NAN)
            .expect("key");
    };

    let first = Region::new(GLOBAL);
    for i in 0..4 {
        record(i);
    }
    assert!(
        first.change().allocations > 0,
        "new keys register, and the counting allocator counts"
    );
    assert_allocates_nothing(&emitter, record);

    let batches = emitter.flush_at(0).expect("flush");
    assert!(!batches.is_empty());
    assert_eq!(emitter.telemetry().invalid_values, 300_004);
}
