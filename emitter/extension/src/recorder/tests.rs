use std::collections::BTreeMap;

use edgepush::Config;
use proptest::prelude::*;

use super::*;
use crate::testing::{sums, values};

fn recorder(signs: GaugeSigns) -> (Emitter, Recorder) {
    let emitter = Emitter::new(Config::new("Test").expect("config").self_metrics(false));
    (emitter.clone(), Recorder::new(emitter, signs))
}

#[test]
fn each_type_means_what_statsd_says() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    let refused = r.datagram(
        b"orders:1|c\norders:2|c|@0.5\norders:1:2:3|c|#env:prod,canary\n\
          latency:10|ms|@0.25\nlatency:20|ms\nsize:7|h|#env:prod\nsize:3:4|d|#env:prod\n\
          users:alice|s\nusers:bob|s\nusers:alice|s\n",
    );
    assert!(refused.is_empty(), "{refused:?}");
    let sums = sums(&emitter);
    // 1 + 2 / 0.5
    assert_eq!(sums["orders"], (5.0, 1.0));
    assert_eq!(sums["orders{canary=true,env=prod}"], (6.0, 1.0));
    // 10 four times (1 / 0.25) and 20 once.
    assert_eq!(sums["latency"], (60.0, 5.0));
    assert_eq!(sums["size{env=prod}"], (14.0, 3.0));
    // Members not seen before: alice, bob.
    assert_eq!(sums["users"], (2.0, 1.0));
    assert_eq!(
        r.counts(),
        Counts {
            recorded: 10,
            refused: 0
        }
    );
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn signed_gauges_move_in_delta_mode_and_are_values_in_value_mode() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    // Python's statsd: set 10, then +5 and -3 as changes.
    r.datagram(b"queue:10|g\nqueue:+5|g\nqueue:-3|g");
    assert_eq!(
        sorted(values(&emitter)["queue"].clone()),
        [10.0, 12.0, 15.0]
    );
    // Its negative set: 0, then the change.
    r.datagram(b"queue:0|g\nqueue:-4|g");
    // (A gauge's values come back in no particular order.)
    assert_eq!(sorted(values(&emitter)["queue"].clone()), [-4.0, 0.0]);

    let (emitter, mut r) = recorder(GaugeSigns::Value);
    r.datagram(b"queue:10|g\nqueue:+5|g\nqueue:-3|g");
    assert_eq!(sorted(values(&emitter)["queue"].clone()), [-3.0, 5.0, 10.0]);
}

#[test]
fn a_sampled_value_s_fraction_is_carried_to_the_next() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    // 1 / 0.3 = 3.33...: three values stand for ten, not nine.
    r.datagram(b"latency:10|ms|@0.3\nlatency:10|ms|@0.3\nlatency:10|ms|@0.3");
    assert_eq!(sums(&emitter)["latency"], (100.0, 10.0));
}

#[test]
fn sets_count_members_afresh_after_a_push() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    r.datagram(b"users:alice|s\nusers:bob|s|#env:prod\nusers:user:42|s");
    assert_eq!(sums(&emitter)["users"].0, 2.0);
    r.pushed();
    r.datagram(b"users:alice|s\nusers:alice|s");
    let sums = sums(&emitter);
    assert_eq!(sums["users"].0, 1.0);
    assert!(!sums.contains_key("users{env=prod}"));
}

#[test]
fn timestamped_lines_keep_their_time() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    r.datagram(b"jobs:3|c|T1764000000\njobs:1|c");
    let batches = emitter.flush().expect("flush");
    let times: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.emf(&[]).expect("emf"))
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(&d).expect("json")["_aws"]["Timestamp"]
                .as_i64()
                .expect("ts")
        })
        .collect();
    assert!(times.contains(&1_764_000_000_000), "{times:?}");
    assert_eq!(times.len(), 2, "{times:?}");
}

#[test]
fn refused_lines_say_which_and_why_and_the_rest_is_recorded() {
    let (emitter, mut r) = recorder(GaugeSigns::Delta);
    let refused =
        r.datagram(b"good:1|c\nbad|c\nodd:1|x\n_e{1,1}:a|b\ntagged:1|c|#env:\ngood:2|c\ngood:1|ms");
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert!(refused[0].starts_with("line 2: "), "{refused:?}");
    assert!(refused[1].starts_with("line 3: "), "{refused:?}");
    assert!(refused[2].contains("event"), "{refused:?}");
    assert!(refused[3].starts_with("tagged: "), "{refused:?}");
    // One name, two types: one CloudWatch metric cannot have both.
    assert!(
        refused[4].starts_with("good: ") && refused[4].contains("another kind"),
        "{refused:?}"
    );
    assert_eq!(sums(&emitter)["good"], (3.0, 1.0));
    assert_eq!(
        r.counts(),
        Counts {
            recorded: 2,
            refused: 5
        }
    );
}

/// A line a client writes, and what it stands for.
#[derive(Clone, Debug)]
struct Written {
    name: &'static str,
    kind: &'static str,
    value: f64,
    rate: f64,
    tags: Vec<(&'static str, &'static str)>,
}

fn written() -> impl Strategy<Value = Written> {
    (
        // One type per name: a name sent as two types is refused (one
        // CloudWatch metric, one unit), tested apart.
        prop::sample::select(vec![
            ("orders", "c"),
            ("api.latency", "ms"),
            ("queue_depth", "h"),
            ("payload", "d"),
        ]),
        // Whole thousandths: the sum of any order is the same exactly.
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64 / 1000.0),
        prop::sample::select(vec![1.0, 0.5, 0.25, 0.125, 0.3, 0.6]),
        prop::collection::vec(
            (
                prop::sample::select(vec!["env", "region", "route"]),
                prop::sample::select(vec!["a", "b", "c-d", "/x/y"]),
            ),
            0..3,
        ),
    )
        .prop_map(|((name, kind), value, rate, mut tags)| {
            tags.sort();
            tags.dedup_by(|a, b| a.0 == b.0);
            Written {
                name,
                kind,
                value,
                rate,
                tags,
            }
        })
}

proptest! {
    /// Whatever lines clients write, each series holds the sum and count
    /// they stand for, in however many datagrams they came.
    #[test]
    fn every_line_is_recorded_as_it_stands_for(
        lines in prop::collection::vec(written(), 1..60),
        split in 1usize..8,
    ) {
        let (emitter, mut r) = recorder(GaugeSigns::Delta);
        // Per series: sum, count, and whether every weight was whole.
        let mut expected: BTreeMap<String, (f64, f64, bool)> = BTreeMap::new();
        let mut text = Vec::new();
        for w in &lines {
            let mut line = format!("{}:{}|{}", w.name, w.value, w.kind);
            if w.rate < 1.0 {
                line.push_str(&format!("|@{}", w.rate));
            }
            if !w.tags.is_empty() {
                let tags: Vec<String> = w.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                line.push_str(&format!("|#{}", tags.join(",")));
            }
            text.push(line);
            let dims: Vec<String> = w.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let key = if dims.is_empty() { w.name.to_string() } else { format!("{}{{{}}}", w.name, dims.join(",")) };
            // A counter and a distribution of one name are two series of
            // one CloudWatch metric: kept apart here by type.
            let key = format!("{}/{key}", if w.kind == "c" { "c" } else { "d" });
            let e = expected.entry(key).or_insert((0.0, 0.0, true));
            if w.kind == "c" {
                e.0 += w.value / w.rate;
                e.1 = 1.0;
            } else {
                // A sampled value stands for 1 / rate of them.
                e.0 += w.value / w.rate;
                e.1 += 1.0 / w.rate;
                e.2 &= (1.0 / w.rate).fract() == 0.0;
            }
        }
        for chunk in text.chunks(split) {
            let refused = r.datagram(chunk.join("\n").as_bytes());
            prop_assert!(refused.is_empty(), "{:?}", refused);
        }
        let got = sums(&emitter);
        let mut by_key: BTreeMap<String, (f64, f64, bool)> = BTreeMap::new();
        for (key, (sum, count, whole)) in &expected {
            let (_, series) = key.split_once('/').expect("kind");
            let e = by_key.entry(series.to_string()).or_insert((0.0, 0.0, true));
            e.0 += sum;
            e.1 += count;
            e.2 &= whole;
        }
        prop_assert_eq!(got.len(), by_key.len());
        for (key, (sum, count, whole)) in by_key {
            let (got_sum, got_count) = got[&key];
            if whole {
                prop_assert!((got_sum - sum).abs() <= 1e-6 * sum.abs().max(1.0), "{}: {} vs {}", key, got_sum, sum);
                prop_assert!((got_count - count).abs() < 1e-9, "{}: {} vs {}", key, got_count, count);
            } else {
                // Fractions carried, not lost: the count is the whole part
                // of what the values stand for (floating point aside).
                prop_assert!(got_count <= count + 1e-6 && got_count > count - 1.0 - 1e-6, "{}: {} vs {}", key, got_count, count);
            }
        }
    }
}
