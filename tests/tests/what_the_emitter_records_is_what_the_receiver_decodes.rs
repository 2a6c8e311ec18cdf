//! Property: whatever the real emitter records, the receiver decodes to
//! exactly the aggregates that were recorded, in wire v1, v2 and v3.

use std::collections::BTreeMap;

use edgepush::{Config, Emitter, Metric};
use proptest::prelude::*;

use edgepush::wire;
use edgepush_protocol::validate;
use edgepush_receiver::decode::wire::{decode_v1, decode_v2, decode_v3};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::{StatisticSet, Value};

#[derive(Clone, Debug)]
enum Recorded {
    Counter(Vec<f64>),
    Gauge(Vec<f64>),
    Distribution(Vec<(f64, u8)>),
    Statistics(Vec<(u8, f64, f64, f64)>),
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e9..1e9f64,
        Just(0.0),
        (-1000i32..1000).prop_map(f64::from),
        -1e-9..1e-9f64
    ]
}

fn recorded() -> impl Strategy<Value = Recorded> {
    prop_oneof![
        prop::collection::vec(value(), 1..20).prop_map(Recorded::Counter),
        prop::collection::vec(value(), 1..5).prop_map(Recorded::Gauge),
        prop::collection::vec((value(), 1u8..5), 1..40).prop_map(Recorded::Distribution),
        prop::collection::vec((1u8..10, value(), value(), value()), 1..5)
            .prop_map(Recorded::Statistics),
    ]
}

fn text() -> impl Strategy<Value = String> {
    // Printable, including line protocol's and JSON's special characters;
    // backslashes only where line protocol can store them.
    "[a-zA-Z0-9][a-zA-Z0-9 ,=\"\\\\/.:é\u{1F600}-]{0,20}"
        .prop_filter("valid name", |s| validate::metric_name(s).is_ok())
}

/// A metric name, its dimensions and what was recorded into it.
type Generated = (String, Vec<(String, String)>, Recorded);

fn series() -> impl Strategy<Value = Vec<Generated>> {
    prop::collection::vec(
        (
            text(),
            prop::collection::btree_map(text(), text(), 0..4),
            recorded(),
        ),
        1..25,
    )
    .prop_map(|v| {
        let mut seen = std::collections::BTreeSet::new();
        v.into_iter()
            .filter(|(n, _, _)| seen.insert(n.clone()))
            .map(|(n, d, r)| (n, d.into_iter().collect(), r))
            .collect()
    })
}

proptest! {
    #[test]
    fn what_the_emitter_records_is_what_the_receiver_decodes(
        mut all in series(),
        max_points in 1usize..10,
        version in prop::sample::select(&[wire::Version::V1, wire::Version::V2, wire::Version::V3][..]),
        shared in 0usize..4,
    ) {
        // Series sharing dimension sets (what v3 writes once): series i
        // takes the dimensions of series i % shared.
        if shared > 0 {
            for i in 0..all.len() {
                all[i].1 = all[i % shared].1.clone();
            }
        }
        let emitter = Emitter::new(
            Config::new("Prop")
                .expect("ns")
                .max_points_per_batch(max_points)
                .wire_version(version),
        );
        let mut want: BTreeMap<String, Value> = BTreeMap::new();
        for (name, dims, rec) in &all {
            let mut m = Metric::new(name.clone());
            for (k, v) in dims {
                m = m.dimension(k.clone(), v.clone());
            }
            let expected = match rec {
                Recorded::Counter(vs) => {
                    let c = emitter.counter(m).expect("counter");
                    let mut sum: Option<f64> = None;
                    for v in vs {
                        c.add(*v);
                        sum = Some(sum.map_or(*v, |s| s + v));
                    }
                    Value::Counter(sum.expect("non-empty"))
                }
                Recorded::Gauge(vs) => {
                    let g = emitter.gauge(m).expect("gauge");
                    vs.iter().for_each(|v| g.set(*v));
                    let stats = (vs.len() > 1).then(|| StatisticSet {
                        count: vs.len() as f64,
                        sum: vs.iter().fold(None, |s: Option<f64>, v| Some(s.map_or(*v + 0.0, |s| s + v))).unwrap_or(0.0),
                        min: vs.iter().copied().fold(f64::INFINITY, f64::min),
                        max: vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    });
                    Value::Gauge { last: *vs.last().expect("non-empty") + 0.0, stats }
                }
                Recorded::Distribution(vs) => {
                    let d = emitter.distribution(m).expect("distribution");
                    let mut counts: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
                    for (v, c) in vs {
                        d.record_many(*v, u32::from(*c));
                        let v = *v + 0.0;
                        counts.entry(v.to_bits()).or_insert((v, 0.0)).1 += f64::from(*c);
                    }
                    let mut pairs: Vec<(f64, f64)> = counts.into_values().collect();
                    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Value::Distribution {
                        values: pairs.iter().map(|p| p.0).collect(),
                        counts: pairs.iter().map(|p| p.1).collect(),
                    }
                }
                Recorded::Statistics(sets) => {
                    let s = emitter.statistics(m).expect("statistics");
                    let mut acc: Option<StatisticSet> = None;
                    for (c, a, b, sum) in sets {
                        let (lo, hi) = (a.min(*b), a.max(*b));
                        s.record(f64::from(*c), *sum, lo, hi);
                        acc = Some(match acc {
                            None => StatisticSet { count: f64::from(*c), sum: *sum, min: lo, max: hi },
                            Some(x) => StatisticSet { count: x.count + f64::from(*c), sum: x.sum + sum, min: x.min.min(lo), max: x.max.max(hi) },
                        });
                    }
                    Value::Statistics(acc.expect("non-empty"))
                }
            };
            want.insert(name.clone(), expected);
        }

        let mut got: BTreeMap<String, Value> = BTreeMap::new();
        let batches = emitter.flush_at(NOW).expect("flush");
        for b in &batches {
            prop_assert!(b.points() <= max_points);
            let encoded = b.encoded().expect("encoded");
            let d = match b.version() {
                wire::Version::V1 => decode_v1(&encoded, NOW, &Limits::default()),
                wire::Version::V2 => decode_v2(&encoded, NOW, &Limits::default()),
                wire::Version::V3 => decode_v3(&encoded, NOW, &Limits::default()),
            }
            .expect("decodes");
            prop_assert!(d.rejected.is_empty(), "{:?}", d.rejected);
            for p in d.batch.points {
                let s = &d.batch.series[p.series];
                let (_, dims, _) = all.iter().find(|(n, _, _)| *n == s.name).expect("known");
                let mut sorted = dims.clone();
                sorted.sort();
                prop_assert_eq!(&s.dimensions, &sorted);
                prop_assert_eq!(p.timestamp_ms, NOW);
                prop_assert!(got.insert(s.name.clone(), p.value).is_none(), "one point per series");
            }
        }
        prop_assert_eq!(got, want);
    }
}

const NOW: i64 = 1_700_000_000_000;
