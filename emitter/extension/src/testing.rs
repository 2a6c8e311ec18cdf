//! What an emitter holds, read back for the tests through its EMF: per
//! series (`name`, or `name{dim=value,...}` with the dimensions sorted),
//! its values in order.

use std::collections::BTreeMap;

use edgepush::Emitter;
use serde_json::Value;

/// Flushes `emitter`: each series' sum and count of values.
pub fn sums(emitter: &Emitter) -> BTreeMap<String, (f64, f64)> {
    values(emitter)
        .into_iter()
        .map(|(key, v)| (key, (v.iter().sum(), v.len() as f64)))
        .collect()
}

/// Flushes `emitter`: each series' values, in order (a value with a
/// count as often as its count says).
pub fn values(emitter: &Emitter) -> BTreeMap<String, Vec<f64>> {
    let mut sums = BTreeMap::new();
    for batch in emitter.flush().expect("flush") {
        for doc in batch.emf(&[]).expect("emf") {
            let doc: Value = serde_json::from_str(&doc).expect("json");
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            let mut dims: Vec<String> = directive["Dimensions"][0]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|name| {
                            let name = name.as_str().expect("dimension");
                            format!("{name}={}", doc[name].as_str().expect("value"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            dims.sort();
            for m in directive["Metrics"].as_array().expect("metrics") {
                let name = m["Name"].as_str().expect("name").to_string();
                let key = if dims.is_empty() {
                    name.clone()
                } else {
                    format!("{name}{{{}}}", dims.join(","))
                };
                let entry: &mut Vec<f64> = sums.entry(key).or_default();
                let number = |v: &Value| v.as_f64().expect("number");
                match &doc[&name] {
                    Value::Number(_) => entry.push(number(&doc[&name])),
                    Value::Array(values) => entry.extend(values.iter().map(number)),
                    Value::Object(o) => {
                        let values = o["Values"].as_array().expect("values");
                        let counts = o["Counts"].as_array().expect("counts");
                        for (v, c) in values.iter().zip(counts) {
                            for _ in 0..number(c) as usize {
                                entry.push(number(v));
                            }
                        }
                    }
                    other => panic!("{name}: {other}"),
                }
            }
        }
    }
    sums
}
