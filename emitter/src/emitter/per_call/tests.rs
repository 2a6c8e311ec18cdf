//! Recording by key gives the same batches as recording through handles.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::super::tests::{emitter, points};
use crate::config::{Config, Key, Metric};
use crate::error::{Error, Field};
use crate::{Emitter, OVERFLOW_METRIC};
use edgepush_protocol::Unit;

const ORDERS: Key<'static> = Key::new("orders").unit(Unit::Count);

fn index_len(e: &Emitter) -> usize {
    e.shared.index.table.read().len()
}

#[test]
fn a_key_is_the_series_its_metric_registers_in_any_order() {
    let e = emitter();
    let handle = e
        .counter(
            Metric::new("orders")
                .unit(Unit::Count)
                .dimension("route", "/a")
                .dimension("method", "GET"),
        )
        .expect("counter");
    handle.add(1.0);
    e.add(
        &ORDERS.dimensions(&[("route", "/a"), ("method", "GET")]),
        2.0,
    )
    .expect("add");
    e.add(
        &ORDERS.dimensions(&[("method", "GET"), ("route", "/a")]),
        4.0,
    )
    .expect("add");
    // Another unit is another key, and a conflict with the series' unit.
    assert!(matches!(
        e.add(
            &Key::new("orders").dimensions(&[("route", "/a"), ("method", "GET")]),
            1.0
        ),
        Err(Error::Conflict { .. })
    ));
    let got = points(&e.flush_at(1_000).expect("flush"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2.x, Some(7.0));
    assert_eq!(index_len(&e), 2, "one entry per order given");
}

#[test]
fn each_kind_records_as_its_handle_does() {
    let e = emitter();
    let k = |name| Key::new(name).dimensions(&[("route", "/a")]);
    for i in 0..3 {
        let v = f64::from(i);
        e.add(&k("c"), v).expect("counter");
        e.set(&k("g"), v).expect("gauge");
        e.record(&k("d"), v).expect("distribution");
        e.record_statistics(&k("s"), 2.0, v, 0.0, v)
            .expect("statistics");
    }
    // A name is one kind.
    assert!(matches!(e.set(&k("c"), 1.0), Err(Error::Conflict { .. })));
    let got = points(&e.flush_at(1_000).expect("flush"));
    let by_name = |name: &str| {
        got.iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, d, p)| (d.clone(), p.clone()))
            .expect(name)
    };
    let dims = vec![("route".to_string(), "/a".to_string())];
    assert_eq!(by_name("c").0, dims);
    assert_eq!(by_name("c").1.x, Some(3.0));
    assert_eq!(by_name("g").1.x, Some(2.0));
    assert_eq!(by_name("d").1.vs, Some(vec![0.0, 1.0, 2.0]));
    assert_eq!(by_name("s").1.st, Some([6.0, 3.0, 0.0, 2.0]));
}

#[test]
fn refused_keys_name_the_field_each_time_and_are_not_indexed() {
    let e = emitter();
    for _ in 0..2 {
        match e.add(&Key::new("bad\nname"), 1.0) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, Field::MetricName),
            other => panic!("{other:?}"),
        }
        match e.add(&Key::new("ok").dimensions(&[("", "v")]), 1.0) {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, Field::DimensionName),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            e.add(&Key::new("ok").dimensions(&[("a", "1"), ("a", "2")]), 1.0),
            Err(Error::DuplicateDimension { .. })
        ));
    }
    // Invalid values are counted, not errors.
    e.add(&Key::new("ok"), f64::NAN).expect("a valid key");
    assert_eq!(e.telemetry().invalid_values, 1);
    assert_eq!(index_len(&e), 1);
}

#[test]
fn keys_past_the_cardinality_guard_are_counted_and_not_indexed() {
    let e = Emitter::new(Config::new("Shop").expect("ns").max_series(2));
    let mut names = Vec::new();
    for i in 0..100 {
        names.push(alloc::format!("h{i}"));
    }
    for name in &names {
        e.add(&ORDERS.dimensions(&[("host", name)]), 1.0)
            .expect("not an error");
    }
    assert_eq!(index_len(&e), 2, "only the two real series");
    let got = points(&e.flush_at(1_000).expect("flush"));
    let overflow = got
        .iter()
        .find(|(n, _, _)| n == OVERFLOW_METRIC)
        .expect("overflow");
    assert_eq!(overflow.2.x, Some(98.0));
    assert_eq!(e.telemetry().series_overflowed, 98);
}

/// One recording of the property test: (name, dimension names, v).
fn recording() -> impl Strategy<Value = (usize, Vec<usize>, f64)> {
    (
        0usize..3,
        prop::collection::vec(0usize..3, 0..3),
        (-1.0e6f64..1.0e6).prop_map(|v| (v * 100.0).round() / 100.0),
    )
}

proptest! {
    /// The word-load comparison agrees with `==` at every length, on
    /// strings that differ in one byte anywhere.
    #[test]
    fn same_is_string_equality(a in "[a-c]{0,40}", at in 0usize..40, c in "[a-d]") {
        prop_assert!(super::same(&a, &a.clone()));
        let mut b = a.clone();
        if at < b.len() {
            b.replace_range(at..=at, &c);
        }
        prop_assert_eq!(super::same(&a, &b), a == b);
        prop_assert_eq!(super::same(&a, &b[..b.len() / 2]), a.len() == b.len() / 2 && a == b[..b.len() / 2]);
    }

    /// Any sequence of per-call recordings flushes to exactly the points
    /// the same recordings through registered handles give.
    #[test]
    fn recording_by_key_equals_recording_through_handles(
        recordings in prop::collection::vec(recording(), 1..80),
        kinds in prop::array::uniform3(0u8..4),
    ) {
        const NAMES: [&str; 3] = ["a", "b", "c"];
        const DIMS: [&str; 3] = ["x", "y", "z"];
        const VALUES: [&str; 3] = ["1", "2", "3"];
        let by_key = emitter();
        let by_handle = emitter();
        for (name, dims, v) in &recordings {
            // Dimension names in the order drawn, without repeats; a name
            // is one kind.
            let mut pairs: Vec<(&str, &str)> = Vec::new();
            for (i, d) in dims.iter().enumerate() {
                if !pairs.iter().any(|(n, _)| *n == DIMS[*d]) {
                    pairs.push((DIMS[*d], VALUES[(i + *d) % 3]));
                }
            }
            let key = Key::new(NAMES[*name]).unit(Unit::Seconds).dimensions(&pairs);
            let mut metric = Metric::new(NAMES[*name]).unit(Unit::Seconds);
            for (n, val) in &pairs {
                metric = metric.dimension(*n, *val);
            }
            match kinds[*name] {
                0 => {
                    by_key.add(&key, *v).expect("add");
                    by_handle.counter(metric).expect("counter").add(*v);
                }
                1 => {
                    by_key.set(&key, *v).expect("set");
                    by_handle.gauge(metric).expect("gauge").set(*v);
                }
                2 => {
                    by_key.record(&key, *v).expect("record");
                    by_handle.distribution(metric).expect("distribution").record(*v);
                }
                _ => {
                    let (lo, hi) = (v.min(0.0), v.max(0.0));
                    by_key.record_statistics(&key, 2.0, *v, lo, hi).expect("stats");
                    by_handle
                        .statistics(metric)
                        .expect("statistics")
                        .record(2.0, *v, lo, hi);
                }
            }
        }
        let canonical = |e: &Emitter| {
            let mut got: Vec<(String, String)> = points(&e.flush_at(1_000).expect("flush"))
                .into_iter()
                .map(|(n, d, mut p)| {
                    p.s = 0;
                    (alloc::format!("{n} {d:?}"), alloc::format!("{p:?}"))
                })
                .collect();
            got.sort();
            got
        };
        prop_assert_eq!(canonical(&by_key), canonical(&by_handle));
    }
}

/// The sum of the counter points of `e`'s flush.
fn total(e: &Emitter) -> f64 {
    points(&e.flush_at(1_000).expect("flush"))
        .iter()
        .filter_map(|(_, _, p)| p.x)
        .sum()
}

#[cfg(feature = "std")]
#[test]
fn threads_and_emitters_by_key_lose_nothing() {
    // More emitters than a thread caches, used in turn, one dropped midway.
    let mut emitters: Vec<Emitter> = (0..6).map(|_| emitter()).collect();
    let dropped = emitters.pop().expect("six");
    for i in 0..1_000 {
        for e in &emitters {
            e.add(
                &ORDERS.dimensions(&[("i", if i % 2 == 0 { "0" } else { "1" })]),
                1.0,
            )
            .expect("add");
        }
        if i < 500 {
            dropped.add(&ORDERS, 1.0).expect("add");
        }
    }
    assert_eq!(total(&dropped), 500.0);
    drop(dropped);
    let replacement = emitter();
    replacement.add(&ORDERS, 2.0).expect("add");
    assert_eq!(total(&replacement), 2.0);
    for e in &emitters {
        assert_eq!(total(e), 1_000.0);
    }

    // Four threads on the same keys of one emitter while another flushes:
    // every recording is in exactly one flush.
    let e = &emitters[0];
    let done = core::sync::atomic::AtomicBool::new(false);
    let (sum, count) = std::thread::scope(|s| {
        let flusher = s.spawn(|| {
            let (mut sum, mut count) = (0.0, 0.0);
            loop {
                let last = done.load(core::sync::atomic::Ordering::Acquire);
                for (_, _, p) in points(&e.flush_at(1_000).expect("flush")) {
                    sum += p.x.unwrap_or(0.0);
                    count += match (&p.vs, &p.cs) {
                        (Some(_), Some(cs)) => cs.iter().sum(),
                        (Some(vs), None) => vs.len() as f64,
                        _ => 0.0,
                    };
                }
                if last {
                    return (sum, count);
                }
            }
        });
        let recorders: Vec<_> = (0..4)
            .map(|t| {
                s.spawn(move || {
                    for i in 0..10_000u32 {
                        let v = if (i + t) % 2 == 0 { "a" } else { "b" };
                        e.add(&ORDERS.dimensions(&[("v", v)]), 1.0).expect("add");
                        e.record(
                            &Key::new("latency").dimensions(&[("v", v)]),
                            f64::from(i % 7),
                        )
                        .expect("record");
                    }
                })
            })
            .collect();
        for r in recorders {
            r.join().expect("recorder");
        }
        done.store(true, core::sync::atomic::Ordering::Release);
        flusher.join().expect("flusher")
    });
    assert_eq!((sum, count), (40_000.0, 40_000.0));
}
