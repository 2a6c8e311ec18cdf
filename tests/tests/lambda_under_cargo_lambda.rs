//! The `lambda-example` function under `cargo lambda watch` (the local
//! Lambda emulator), pushing to the native receiver, which forwards to
//! moto's CloudWatch API: for each flush strategy, five invocations read
//! back exactly, with one cold start.

use std::collections::BTreeMap;
use std::time::Duration;

use edgepush_receiver::limits::Limits;
use edgepush_tests::lambda_api::{CargoLambdaWatch, emf_documents, lambda_example_binary};
use edgepush_tests::{Moto, Receiver, cloudwatch_sink, eventually};
use serde_json::{Value, json};

/// (metric, tenant) -> (sum, sample count; `None` where datums may merge).
type Expected = BTreeMap<(String, String), (f64, Option<f64>)>;

fn orders() -> Vec<Value> {
    (0..5)
        .map(|i| {
            json!({
                "tenant": if i % 2 == 0 { "acme" } else { "globex" },
                "items": i + 1,
                "cents": 100 * (i + 1),
                "payment_ms": 10.0 + f64::from(i) * 2.5,
            })
        })
        .collect()
}

fn expected(orders: &[Value]) -> Expected {
    let mut out = Expected::new();
    out.insert(("ColdStart".into(), "-".into()), (1.0, None));
    for o in orders {
        let tenant = o["tenant"].as_str().unwrap_or_default().to_string();
        let mut add = |name: &str, v: f64, counted: bool| {
            let e = out
                .entry((name.to_string(), tenant.clone()))
                .or_insert((0.0, counted.then_some(0.0)));
            e.0 += v;
            if let Some(c) = e.1.as_mut() {
                *c += 1.0;
            }
        };
        add("orders", 1.0, false);
        add("items", o["items"].as_f64().unwrap_or_default(), false);
        add("basket_size", o["items"].as_f64().unwrap_or_default(), true);
        add("order_value", o["cents"].as_f64().unwrap_or_default(), true);
        add(
            "payment_latency",
            o["payment_ms"].as_f64().unwrap_or_default(),
            true,
        );
    }
    out
}

fn read_back(moto: &mut Moto, expected: &Expected) -> Expected {
    moto.metrics("LambdaExample")
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            assert_eq!(m["dimensions"]["FunctionName"], "lambda-example", "{m}");
            let tenant = m["dimensions"]["tenant"]
                .as_str()
                .unwrap_or("-")
                .to_string();
            let counted = expected
                .get(&(name.clone(), tenant.clone()))
                .is_some_and(|e| e.1.is_some());
            let sum = m["sum"].as_f64().unwrap_or_default();
            let count = counted.then(|| m["count"].as_f64().unwrap_or_default());
            ((name, tenant), (sum, count))
        })
        .collect()
}

#[test]
fn every_flush_strategy_delivers_exactly_under_cargo_lambda_watch() {
    lambda_example_binary(); // built once, so the emulator's `cargo run` starts at once
    let dir = tempfile::tempdir().expect("temp dir");
    // Adaptive, after 2 invocations seen back to back: periodic (an hour,
    // 6 series), so the rest waits for the last push at shutdown.
    for strategy in [
        "end-of-invocation",
        "after-response",
        "periodic:3600:6",
        "adaptive:3600:6:2",
    ] {
        let mut moto = Moto::start(dir.path());
        let receiver = Receiver::start(vec![cloudwatch_sink(&moto)], Limits::default(), vec![]);
        let mut watch = CargoLambdaWatch::start(
            dir.path(),
            &[
                ("EDGEPUSH_URL", &receiver.url),
                ("EDGEPUSH_FLUSH", strategy),
            ],
        );
        let orders = orders();
        for order in &orders {
            assert_eq!(watch.invoke(order)["accepted"], true);
            // The emulator drops an INVOKE event the extension gets while it
            // is still pushing; each push sends everything pending, so only
            // the pace of this test, not what arrives, depends on it.
            std::thread::sleep(Duration::from_millis(100));
        }
        // Stopping the emulator: what periodic (or adaptive) still holds is
        // pushed now.
        watch.process.terminate();
        let log = watch.process.log_text();
        assert!(
            emf_documents(&log).is_empty(),
            "{strategy}: fell back to EMF:\n{log}"
        );
        let want = expected(&orders);
        eventually(Duration::from_secs(10), || {
            assert_eq!(read_back(&mut moto, &want), want, "{strategy}\n{log}");
        });
        moto.stop();
    }
}
