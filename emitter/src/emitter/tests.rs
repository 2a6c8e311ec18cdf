//! The emitter's tests: what a flush gives back for what was registered
//! and recorded.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::registry::Dimensions;
use super::{Counter, Distribution, Emitter, OVERFLOW_METRIC};
use crate::config::{Config, Metric};
use crate::error::{Error, Field};
use crate::payload::Payload;
#[cfg(feature = "std")]
use crate::staging;
use edgepush_protocol::Unit;
use edgepush_protocol::wire::{self, Kind};

pub(super) fn decode(batch: &Payload) -> wire::Batch<'static> {
    let json = batch.json().expect("decodes");
    let text = String::from_utf8(json).expect("utf-8");
    // Leaked so the borrowed decode can outlive this function (tests only).
    serde_json::from_str::<wire::Batch<'_>>(alloc::boxed::Box::leak(text.into_boxed_str()))
        .expect("valid wire JSON")
}

pub(super) fn emitter() -> Emitter {
    Emitter::new(
        Config::new("Shop")
            .expect("namespace")
            .dimension("service", "checkout")
            .expect("dimension")
            .instance_id(7),
    )
}

#[test]
fn pending_counts_series_with_data_until_a_flush() {
    let e = emitter();
    let c = e.counter(Metric::new("c")).expect("c");
    let g = e.gauge(Metric::new("g")).expect("g");
    let d = e.distribution(Metric::new("d")).expect("d");
    let s = e.statistics(Metric::new("s")).expect("s");
    assert_eq!(e.pending(), 0);
    c.increment();
    d.record(1.0);
    d.record(2.0);
    assert_eq!(e.pending(), 2);
    g.set(3.0);
    s.record(1.0, 1.0, 1.0, 1.0);
    assert_eq!(c.add_at(1.0, 1_000), Ok(()));
    assert_eq!(e.pending(), 5);
    e.flush_at(2_000).expect("flush");
    assert_eq!(e.pending(), 0);
    d.record(4.0);
    assert_eq!(e.pending(), 1);
}

/// Every point of `batches` as (series name, dimensions, point).
pub(super) fn points(batches: &[Payload]) -> Vec<(String, Dimensions, wire::Point)> {
    let mut out = Vec::new();
    for b in batches {
        let b = decode(b);
        for p in b.points {
            let s = &b.series[p.s as usize];
            let dims =
                s.d.0
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
            out.push((s.n.to_string(), dims, p));
        }
    }
    out
}

#[test]
fn aggregates_each_kind_until_flush() {
    let e = emitter();
    let orders = e
        .counter(
            Metric::new("orders")
                .unit(Unit::Count)
                .dimension("route", "/buy"),
        )
        .expect("counter");
    let temp = e.gauge(Metric::new("temperature")).expect("gauge");
    let once = e.gauge(Metric::new("once")).expect("gauge");
    let latency = e
        .distribution(
            Metric::new("latency")
                .unit(Unit::Milliseconds)
                .high_resolution(),
        )
        .expect("distribution");
    let sizes = e
        .statistics(Metric::new("size").unit(Unit::Bytes))
        .expect("stats");
    orders.increment();
    orders.add(2.5);
    temp.set(3.0);
    temp.set(-4.0);
    temp.set(1.0);
    once.set(5.0);
    for v in [5.0, 1.0, 5.0, 2.0] {
        latency.record(v);
    }
    latency.record_many(2.0, 3);
    sizes.record(2.0, 10.0, 4.0, 6.0);
    sizes.record(1.0, 1.0, 1.0, 1.0);

    let batches = e.flush_at(1_000).expect("flush");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].id(), "0000000000000007-0");
    let b = decode(&batches[0]);
    assert_eq!((b.ns.as_ref(), b.t), ("Shop", 1_000));
    assert_eq!(b.dims.0, [("service".into(), "checkout".into())]);
    let by_name = |n: &str| {
        let i = b.series.iter().position(|s| s.n == n).expect("series") as u32;
        (
            &b.series[i as usize],
            b.points.iter().find(|p| p.s == i).expect("point"),
        )
    };
    let (s, p) = by_name("orders");
    assert_eq!(
        (s.k, s.u.as_deref(), p.x),
        (Kind::Counter, Some("Count"), Some(3.5))
    );
    assert_eq!(s.d.0, [("route".into(), "/buy".into())]);
    let (s, p) = by_name("temperature");
    assert_eq!((s.k, s.u.as_deref(), p.x), (Kind::Gauge, None, Some(1.0)));
    assert_eq!(
        p.st,
        Some([3.0, 0.0, -4.0, 3.0]),
        "count, sum, min, max of every set"
    );
    let (_, p) = by_name("once");
    assert_eq!(
        (p.x, p.st),
        (Some(5.0), None),
        "one set: no statistics needed"
    );
    let (s, p) = by_name("latency");
    assert_eq!((s.k, s.r), (Kind::Distribution, Some(1)));
    assert_eq!(p.vs.as_deref(), Some(&[1.0, 2.0, 5.0][..]));
    assert_eq!(p.cs.as_deref(), Some(&[1.0, 4.0, 2.0][..]));
    let (_, p) = by_name("size");
    assert_eq!(p.st, Some([3.0, 11.0, 1.0, 6.0]));

    // Everything was taken: the next flush has nothing.
    assert!(e.flush_at(2_000).expect("flush").is_empty());
    orders.increment();
    let b = decode(&e.flush_at(3_000).expect("flush")[0]);
    assert_eq!(b.points.len(), 1);
    assert_eq!(b.points[0].x, Some(1.0));
    assert_eq!(e.telemetry().points_flushed, 6);
    assert_eq!(e.telemetry().batches_encoded, 2);
}

#[test]
fn registration_validates_and_deduplicates() {
    let e = emitter();
    let a = e.counter(Metric::new("n").dimension("b", "1").dimension("a", "2"));
    let b = e.counter(Metric::new("n").dimension("a", "2").dimension("b", "1"));
    a.expect("a").add(1.0);
    b.expect("b").add(1.0);
    let batch = decode(&e.flush_at(0).expect("flush")[0]);
    assert_eq!(batch.points[0].x, Some(2.0), "same series, one sum");

    let conflict = e.gauge(Metric::new("n").dimension("a", "2").dimension("b", "1"));
    assert!(matches!(conflict, Err(Error::Conflict { .. })));
    let err = e.counter(Metric::new("")).expect_err("empty");
    assert_eq!(err.to_string(), "metric name \"\" is empty");
    let err = e
        .counter(Metric::new("x").dimension("d", ""))
        .expect_err("empty value");
    assert_eq!(err.to_string(), "dimension value \"\" is empty");
    let err = e
        .counter(Metric::new("x").dimension("service", "v"))
        .expect_err("dup");
    assert!(matches!(err, Error::DuplicateDimension { .. }));
    let err = e
        .counter(Metric::new("x").dimension("d", "v").dimension("d", "w"))
        .expect_err("dup");
    assert!(matches!(err, Error::DuplicateDimension { .. }));
    let err = e
        .counter(Metric::new("x").dimension("d", "v").dimension_set(["e"]))
        .expect_err("set");
    assert_eq!(err, Error::UnknownDimension { name: "e".into() });
    let mut m = Metric::new("wide");
    for i in 0..30 {
        m = m.dimension(format!("d{i}"), "v");
    }
    let err = e.counter(m).expect_err("31 with the common one");
    assert_eq!(
        err,
        Error::TooManyDimensions {
            name: "wide".into(),
            count: 31
        }
    );
    assert!(matches!(
        Config::new("AWS/Lambda"),
        Err(Error::Invalid {
            field: Field::Namespace,
            ..
        })
    ));
}

#[test]
fn invalid_values_are_counted_not_recorded() {
    let e = emitter();
    let c = e.counter(Metric::new("c")).expect("counter");
    let d = e.distribution(Metric::new("d")).expect("dist");
    let s = e.statistics(Metric::new("s")).expect("stats");
    c.add(f64::NAN);
    c.add(f64::INFINITY);
    d.record(1e300);
    d.record_many(1.0, 0);
    s.record(1.0, 1.0, 2.0, 1.0);
    assert_eq!(e.telemetry().invalid_values, 5);
    assert!(e.flush_at(0).expect("flush").is_empty());
}

#[test]
fn distributions_stay_bounded_and_keep_exact_counts() {
    let e = emitter();
    let d = e.distribution(Metric::new("d")).expect("dist");
    for i in 0..10_000 {
        d.record(1.0 + f64::from(i) / 10_000.0);
    }
    let all = points(&e.flush_at(0).expect("flush"));
    assert!(
        all.iter().all(|(_, _, p)| p.st.is_none()),
        "the table did not overflow"
    );
    let mut vs: Vec<f64> = Vec::new();
    let mut total = 0.0;
    for (_, _, p) in &all {
        let values = p.vs.as_ref().expect("values");
        assert!(values.len() <= 150, "one datum per point");
        vs.extend(values);
        total +=
            p.cs.as_ref()
                .map_or(values.len() as f64, |c| c.iter().sum());
    }
    assert_eq!(total, 10_000.0);
    assert!(vs.len() <= 150 + 65, "{}", vs.len());
    assert!(vs.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");

    // Values over many powers of two overflow the table into a statistic
    // set of the same series: counts, sum, min and max stay exact.
    let wide = e.distribution(Metric::new("wide")).expect("dist");
    let mut sum = 0.0;
    for i in 0..5_000 {
        let v = 1.001f64.powi(i * 7);
        wide.record(v);
        sum += v;
    }
    let all = points(&e.flush_at(0).expect("flush"));
    let count: f64 = all
        .iter()
        .map(|(_, _, p)| {
            p.cs.as_ref().map_or(0.0, |c| c.iter().sum::<f64>())
                + p.vs
                    .as_ref()
                    .filter(|_| p.cs.is_none())
                    .map_or(0.0, |v| v.len() as f64)
                + p.st.map_or(0.0, |s| s[0])
        })
        .sum();
    assert_eq!(count, 5_000.0);
    let st = all
        .iter()
        .find_map(|(_, _, p)| p.st)
        .expect("overflow statistics");
    assert!(st[3] >= 1.001f64.powi(4999 * 7) * 0.999);
    let recorded: f64 = all
        .iter()
        .map(|(_, _, p)| match (&p.vs, &p.cs, p.st) {
            (Some(v), Some(c), _) => v.iter().zip(c).map(|(v, c)| v * c).sum(),
            (Some(v), None, _) => v.iter().sum(),
            (_, _, Some(s)) => s[1],
            _ => 0.0,
        })
        .sum();
    assert!(
        ((recorded - sum) / sum).abs() < 0.008,
        "{recorded} vs {sum}"
    );
}

#[test]
fn batches_respect_datums_and_bytes_exactly() {
    // Limits where the bytes bind before the datums do.
    for (format, limit) in [(wire::Version::V1, 300), (wire::Version::V2, 120)] {
        let e = Emitter::new(
            Config::new("N")
                .expect("ns")
                .max_points_per_batch(10)
                .max_batch_bytes(limit)
                .distribution_slots(1024)
                .wire_version(format),
        );
        for i in 0..35 {
            e.counter(Metric::new(format!("metric_{i}")))
                .expect("counter")
                .increment();
        }
        // 400 distinct values: several datums, each a point of at most 150.
        let d = e.distribution(Metric::new("big")).expect("dist");
        for i in 0..400 {
            d.record(f64::from(i) * 10.0);
        }
        let batches = e.flush_at(0).expect("flush");
        let mut ids: Vec<&str> = batches.iter().map(Payload::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), batches.len(), "ids are unique");
        let (mut counters, mut values, mut largest) = (0, 0, 0);
        for b in &batches {
            assert_eq!(b.version(), format);
            let encoded = b.encoded().expect("encoded");
            assert!(
                encoded.len() <= limit || b.points() == 1,
                "{} bytes",
                encoded.len()
            );
            if b.points() > 1 {
                largest = largest.max(encoded.len());
            }
            assert!(b.points() <= 10, "one datum per point, at most 10");
            for p in decode(b).points {
                match (&p.vs, &p.cs) {
                    (Some(vs), cs) => {
                        assert!(vs.len() <= 150, "{} values in a point", vs.len());
                        values += cs
                            .as_ref()
                            .map_or(vs.len(), |c| c.iter().sum::<f64>() as usize);
                    }
                    (None, _) => counters += 1,
                }
            }
        }
        assert_eq!((counters, values), (35, 400), "{format:?}");
        assert!(batches.len() >= 5, "{} batches", batches.len());
        // Filled close to the limit: sizes are measured, not guessed.
        assert!(
            largest > limit * 5 / 6,
            "{format:?}: largest batch {largest} bytes"
        );
    }
}

#[test]
fn dimension_sets_record_into_each_series() {
    let e = emitter();
    let m = Metric::new("latency")
        .dimension("route", "/a")
        .dimension("method", "GET")
        .dimension_set(["route"])
        .dimension_set(Vec::<String>::new());
    let d = e.distribution(m).expect("dist");
    d.record(3.0);
    d.record(4.0);
    let mut got: Vec<(Dimensions, Option<Vec<f64>>)> = points(&e.flush_at(0).expect("flush"))
        .into_iter()
        .map(|(_, dims, p)| (dims, p.vs))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        got,
        [
            (vec![], Some(vec![3.0, 4.0])),
            (
                vec![s("method", "GET"), s("route", "/a")],
                Some(vec![3.0, 4.0])
            ),
            (vec![s("route", "/a")], Some(vec![3.0, 4.0])),
        ]
    );
}

#[test]
fn the_cardinality_guard_counts_into_one_overflow_series() {
    let e = Emitter::new(Config::new("N").expect("ns").max_series(2));
    e.counter(Metric::new("a")).expect("a").increment();
    e.gauge(Metric::new("b")).expect("b").set(1.0);
    let c = e.counter(Metric::new("c")).expect("c is not refused");
    let d = e.distribution(Metric::new("d")).expect("d is not refused");
    c.add(5.0);
    d.record_many(1.0, 3);
    assert_eq!(e.telemetry().series_overflowed, 2);
    let all = points(&e.flush_at(0).expect("flush"));
    let overflow = all
        .iter()
        .find(|(n, _, _)| n == OVERFLOW_METRIC)
        .expect("overflow");
    assert_eq!(
        overflow.2.x,
        Some(4.0),
        "one per recording, three per record_many(3)"
    );
    assert!(!all.iter().any(|(n, _, _)| n == "c" || n == "d"));
    // A metric whose every dimension set is refused still counts one per
    // recording (the overflow series is in its target once).
    let sets = e
        .counter(
            Metric::new("sets")
                .dimension("route", "/a")
                .dimension_set(["route"])
                .dimension_set(core::iter::empty::<&str>()),
        )
        .expect("sets is not refused");
    sets.add(2.0);
    let all = points(&e.flush_at(0).expect("flush"));
    let counted: Vec<(&str, Option<f64>)> = all.iter().map(|(n, _, p)| (n.as_str(), p.x)).collect();
    assert_eq!(counted, [(OVERFLOW_METRIC, Some(1.0))]);
}

#[test]
fn explicit_timestamps_make_their_own_points() {
    let e = Emitter::new(Config::new("N").expect("ns").max_timestamped(2));
    let c = e.counter(Metric::new("c")).expect("c");
    let d = e.distribution(Metric::new("d")).expect("d");
    c.increment();
    c.add_at(2.0, 500).expect("room");
    c.add_at(3.0, 500).expect("same point");
    d.record_at(7.0, 900).expect("room");
    assert_eq!(
        d.record_at(8.0, 901),
        Err(8.0),
        "full: the value comes back"
    );
    assert_eq!(e.telemetry().timestamped_refused, 1);
    let b = decode(&e.flush_at(1_000).expect("flush")[0]);
    assert_eq!(
        b.series.len(),
        2,
        "c's two points share one series definition"
    );
    let mut got: Vec<(i64, Option<f64>, Option<Vec<f64>>)> = b
        .points
        .iter()
        .map(|p| (b.t + p.t, p.x, p.vs.clone()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        [
            (500, Some(5.0), None),
            (900, None, Some(vec![7.0])),
            (1_000, Some(1.0), None)
        ]
    );
}

#[test]
fn self_metrics_report_the_previous_interval() {
    let e = Emitter::new(Config::new("N").expect("ns").self_metrics(true));
    e.counter(Metric::new("c")).expect("c").increment();
    e.counter(Metric::new("c")).expect("c").add(f64::NAN);
    assert_eq!(
        points(&e.flush_at(0).expect("flush")).len(),
        2,
        "c and the invalid value"
    );
    let all = points(&e.flush_at(1).expect("flush"));
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["edgepush_points"]);
    assert_eq!(all[0].2.x, Some(2.0));
}

#[test]
fn concurrent_recording_and_flushing_lose_nothing() {
    let e = emitter();
    let c = e.counter(Metric::new("c")).expect("c");
    let d = e.distribution(Metric::new("d")).expect("d");
    let g = e.gauge(Metric::new("g")).expect("g");
    // Recorded into their cells directly, not staged: a counter with a
    // second dimension set, statistic sets, a distribution's repeated
    // values. Each is listed for the flush by its recorder while flushes
    // unlist and take.
    let direct = e
        .counter(
            Metric::new("direct")
                .dimension("route", "/a")
                .dimension_set(core::iter::empty::<&str>()),
        )
        .expect("direct");
    let st = e.statistics(Metric::new("st")).expect("st");
    let per_thread = 20_000u32;
    let mut counted = 0.0;
    let mut values = 0.0;
    let mut sets = 0.0;
    let mut direct_counted = 0.0;
    let mut statistics = 0.0;
    let mut collect = |batches: Vec<Payload>| {
        for (name, dims, p) in points(&batches) {
            match name.as_str() {
                "c" => counted += p.x.unwrap_or(0.0),
                "d" => {
                    values += p
                        .cs
                        .map_or_else(|| p.vs.map_or(0.0, |v| v.len() as f64), |c| c.iter().sum())
                        + p.st.map_or(0.0, |s| s[0])
                }
                "g" => sets += p.st.map_or(1.0, |s| s[0]),
                // The full set's series; the empty set's adds the same.
                "direct" if !dims.is_empty() => direct_counted += p.x.unwrap_or(0.0),
                "st" => statistics += p.st.map_or(0.0, |s| s[0]),
                _ => {}
            }
        }
    };
    // Flushes run until both recorders are done, so that they overlap.
    let done = core::sync::atomic::AtomicUsize::new(0);
    let mut flushes = 0;
    std::thread::scope(|s| {
        for t in 0..2 {
            let (c, d, g) = (c.clone(), d.clone(), g.clone());
            let (direct, st, done) = (direct.clone(), st.clone(), &done);
            s.spawn(move || {
                for i in 0..per_thread {
                    c.increment();
                    if i % 2 == 0 {
                        d.record(f64::from(i % 97 + t));
                    } else {
                        d.record_many(f64::from(i % 89), 2);
                    }
                    g.set(f64::from(i));
                    direct.increment();
                    st.record(1.0, 2.0, 2.0, 2.0);
                }
                done.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
            });
        }
        while done.load(core::sync::atomic::Ordering::SeqCst) < 2 {
            collect(e.flush_at(0).expect("flush"));
            flushes += 1;
        }
    });
    collect(e.flush_at(0).expect("flush"));
    assert!(flushes > 1, "flushes ran while the threads recorded");
    let total = f64::from(2 * per_thread);
    // Half the distribution's recordings are of one value, half of two.
    let recorded = f64::from(2 * (per_thread / 2 + per_thread / 2 * 2));
    assert_eq!(
        (counted, values, sets, direct_counted, statistics),
        (total, recorded, total, total, total)
    );
}

#[test]
fn a_flush_visits_only_the_series_recorded_since_the_last() {
    let e = emitter();
    let counters: Vec<Counter> = (0..1_000)
        .map(|i| e.counter(Metric::new(format!("c{i}"))).expect("c"))
        .collect();
    let g = e.gauge(Metric::new("g")).expect("g");
    let st = e.statistics(Metric::new("st")).expect("st");
    let d = e.distribution(Metric::new("d")).expect("d");
    let listed = |e: &Emitter| {
        let registry = e.shared.registry.lock();
        registry.listed(e.shared.touched.top()).count()
    };
    assert_eq!(listed(&e), 0);
    for round in 0..3u8 {
        let v = f64::from(round);
        counters[7].increment();
        counters[7].add(2.0);
        counters[500].add(v);
        g.set(v);
        g.set(v + 1.0);
        st.record(1.0, v, v, v);
        d.record(v);
        d.record_many(v + 0.5, 2);
        // Staged recordings are listed when applied (a flush, `pending`).
        assert_eq!(e.pending(), 5);
        assert_eq!(listed(&e), 5, "each series once, however often recorded");
        let mut names: Vec<String> = points(&e.flush_at(0).expect("flush"))
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["c500", "c7", "d", "g", "st"], "round {round}");
        assert_eq!(listed(&e), 0, "the flush took the list");
        assert!(e.flush_at(0).expect("flush").is_empty());
    }
    // Registration alone lists nothing.
    let more = e.counter(Metric::new("more")).expect("more");
    assert_eq!(listed(&e), 0);
    more.increment();
    assert_eq!(points(&e.flush_at(0).expect("flush")).len(), 1);
}

#[test]
fn the_overflow_series_is_listed_again_after_each_flush() {
    let e = Emitter::new(Config::new("N").expect("ns").max_series(1));
    e.counter(Metric::new("kept")).expect("kept").increment();
    e.flush_at(0).expect("flush");
    let over = e.counter(Metric::new("over")).expect("into the overflow");
    for round in 1..=3 {
        for _ in 0..round {
            over.increment();
        }
        let all = points(&e.flush_at(0).expect("flush"));
        let counted: Vec<(&str, Option<f64>)> =
            all.iter().map(|(n, _, p)| (n.as_str(), p.x)).collect();
        assert_eq!(counted, [(OVERFLOW_METRIC, Some(f64::from(round)))]);
    }
    // Explicitly timestamped recordings count there too, one each.
    let late = e
        .distribution(Metric::new("late"))
        .expect("into the overflow");
    assert_eq!(late.record_at(5.0, 500), Ok(()));
    assert_eq!(over.add_at(7.0, 500), Ok(()));
    let all = points(&e.flush_at(1_000).expect("flush"));
    let counted: Vec<(&str, i64, Option<f64>)> =
        all.iter().map(|(n, _, p)| (n.as_str(), p.t, p.x)).collect();
    assert_eq!(counted, [(OVERFLOW_METRIC, -500, Some(2.0))]);
}

/// Sum of a counter's points and count of a distribution's values.
fn totals(batches: &[Payload]) -> (f64, f64) {
    let (mut counted, mut values) = (0.0, 0.0);
    for (_, _, p) in points(batches) {
        counted += p.x.unwrap_or(0.0);
        values +=
            p.cs.map_or_else(|| p.vs.map_or(0.0, |v| v.len() as f64), |c| c.iter().sum())
                + p.st.map_or(0.0, |s| s[0]);
    }
    (counted, values)
}

#[cfg(feature = "std")]
#[test]
fn recordings_staged_by_threads_that_are_gone_are_flushed() {
    let e = emitter();
    let c = e.counter(Metric::new("c")).expect("c");
    let d = e.distribution(Metric::new("d")).expect("d");
    // More threads than the emitter stages for, each recording less or
    // more than a buffer holds, all gone before the flush.
    let threads = staging::MAX_BUFFERS + 16;
    let per = |t: usize| t * 37 % (3 * staging::SLOTS);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, d) = (&c, &d);
            s.spawn(move || {
                for i in 0..per(t) {
                    c.increment();
                    d.record(i as f64);
                }
            });
        }
    });
    let expected = (0..threads).map(per).sum::<usize>() as f64;
    assert_eq!(totals(&e.flush_at(0).expect("flush")), (expected, expected));
    // A thread lets go of its buffer in its exit hooks, which may run
    // after `scope` returns: a later flush drops what is left.
    let start = std::time::Instant::now();
    while e.shared.buffers.lock().len() > 1 && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_eq!(totals(&e.flush_at(0).expect("flush")), (0.0, 0.0));
    }
    assert_eq!(
        e.shared.buffers.lock().len(),
        1,
        "the buffers of threads that are gone are let go; this thread's stays"
    );
}

#[test]
fn a_thread_recording_into_many_emitters_loses_nothing() {
    // More emitters than a thread keeps buffers for, in turns.
    let emitters: Vec<Emitter> = (0..12).map(|_| emitter()).collect();
    let handles: Vec<(Counter, Distribution)> = emitters
        .iter()
        .map(|e| {
            (
                e.counter(Metric::new("c")).expect("c"),
                e.distribution(Metric::new("d")).expect("d"),
            )
        })
        .collect();
    for i in 0..1000 {
        for (c, d) in &handles {
            c.increment();
            d.record(f64::from(i % 10));
        }
    }
    for e in &emitters {
        assert_eq!(totals(&e.flush_at(0).expect("flush")), (1000.0, 1000.0));
    }
}

/// Takes the first batch, refuses the second, and is down for the rest.
#[cfg(feature = "std")]
struct Flaky(core::cell::Cell<usize>);

#[cfg(feature = "std")]
impl crate::Transport for Flaky {
    fn send(&self, _: &Payload) -> Result<crate::Ack, crate::SendError> {
        let n = self.0.get();
        self.0.set(n + 1);
        match n {
            0 => Ok(crate::Ack {
                accepted: 1,
                rejected: 0,
                retries: 2,
            }),
            1 => Err(crate::SendError::from_status(400, "bad".into())),
            _ => Err(crate::SendError::from_status(503, "down".into())),
        }
    }
}

#[cfg(feature = "std")]
#[test]
fn push_sends_a_batch_per_datum_limit_and_counts_what_came_back() {
    let e = Emitter::new(Config::new("N").expect("ns").max_points_per_batch(1));
    for name in ["a", "b", "c", "d"] {
        e.counter(Metric::new(name)).expect("counter").increment();
    }
    let err = e.push(&Flaky(core::cell::Cell::new(0))).expect_err("fails");
    let ids: Vec<&str> = err.unsent.iter().map(Payload::id).collect();
    assert_eq!(ids.len(), 3, "refused, then the two not tried");
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "{ids:?}");
    let t = e.telemetry();
    assert_eq!(
        (
            t.batches_encoded,
            t.batches_sent,
            t.batches_retried,
            t.batches_failed
        ),
        (4, 1, 2, 3)
    );
    // Sending them again through `send` counts again.
    let err = e
        .send(&Flaky(core::cell::Cell::new(2)), err.unsent)
        .expect_err("down");
    assert_eq!(err.unsent.len(), 3);
    assert_eq!(e.telemetry().batches_failed, 6);
}

/// A new user's case: 400 values, 250 distinct, past the 150 kept exactly.
/// The count, sum, minimum and maximum CloudWatch computes from what is
/// sent, as `PutMetricData` and as EMF, are those recorded (the sum but for
/// the rounding of a compacted value's mean).
#[test]
fn past_the_exact_values_count_sum_and_extremes_stay_exact() {
    let e = emitter();
    let d = e.distribution(Metric::new("latency")).expect("d");
    let recorded: Vec<f64> = (0..400).map(|i| f64::from(i % 250) * 0.5 + 1.0).collect();
    for v in &recorded {
        d.record(*v);
    }
    let exact_sum: f64 = recorded.iter().sum();
    assert_eq!(exact_sum, 21_550.0);
    let batches = e.flush_at(60_000).expect("flush");
    let (mut count, mut sum, mut low, mut high) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
    let mut distinct = 0;
    for (_, _, p) in points(&batches) {
        if let Some(vs) = p.vs.as_deref() {
            let ones = vec![1.0; vs.len()];
            let cs = p.cs.as_deref().unwrap_or(&ones);
            distinct += vs.len();
            for (v, c) in vs.iter().zip(cs) {
                count += c;
                sum += v * c;
                low = low.min(*v);
                high = high.max(*v);
            }
        }
        if let Some([c, s, lo, hi]) = p.st {
            (count, sum, low, high) = (count + c, sum + s, low.min(lo), high.max(hi));
        }
    }
    assert!(distinct < 250, "compacted: {distinct} values");
    assert_eq!((count, low, high), (400.0, 1.0, 125.5));
    assert!((sum - exact_sum).abs() <= exact_sum * 1e-12, "{sum}");

    #[cfg(feature = "std")]
    {
        let (mut count, mut sum, mut low, mut high) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for batch in &batches {
            for doc in batch.emf(&[]).expect("emf") {
                let doc: serde_json::Value = serde_json::from_str(&doc).expect("json");
                let values = match &doc["latency"] {
                    serde_json::Value::Array(vs) => vs.iter().filter_map(|v| v.as_f64()).collect(),
                    v => vec![v.as_f64().expect("a number")],
                };
                for v in values {
                    (count, sum, low, high) = (count + 1.0, sum + v, low.min(v), high.max(v));
                }
            }
        }
        assert_eq!((count, low, high), (400.0, 1.0, 125.5), "EMF");
        assert!((sum - exact_sum).abs() <= exact_sum * 1e-12, "EMF {sum}");
    }
}
