//! An AWS Lambda function that records an order's metrics with edgepush.
//!
//! Configured from the environment (see `edgepush_lambda::Options::from_env`):
//! `EDGEPUSH_URL` (the receiver; unset writes EMF to stdout instead),
//! `EDGEPUSH_API_KEY`, `EDGEPUSH_FLUSH` (`end-of-invocation`, the default,
//! `after-response`, `periodic[:seconds[:series]]` or
//! `adaptive[:seconds[:series[:invocations]]]`).

use edgepush::{Config, Key, Unit};
use edgepush_lambda::{Invocation, LambdaMetrics};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The metrics, described once: each call finds its series by key,
/// without allocating.
const ORDERS: Key<'static> = Key::new("orders").unit(Unit::Count);
const ITEMS: Key<'static> = Key::new("items").unit(Unit::Count);
const BASKET_SIZE: Key<'static> = Key::new("basket_size").unit(Unit::Count);
const ORDER_VALUE: Key<'static> = Key::new("order_value");
const PAYMENT_LATENCY: Key<'static> = Key::new("payment_latency").unit(Unit::Milliseconds);

/// An order, as the function is invoked with it.
#[derive(Debug, Deserialize)]
struct Order {
    /// Who ordered: becomes this invocation's `tenant` dimension.
    tenant: String,
    /// Items in the order.
    items: u32,
    /// What it cost, in cents.
    cents: u64,
    /// How long the (pretend) payment took, in milliseconds.
    payment_ms: f64,
}

#[derive(Debug, PartialEq, Serialize)]
struct Receipt {
    accepted: bool,
    request_id: String,
}

async fn handler(event: LambdaEvent<Order>) -> Result<Receipt, Error> {
    let order = event.payload;
    let metrics = Invocation::current()?;
    metrics.dimension("tenant", order.tenant);
    metrics.add(&ORDERS, 1.0)?;
    metrics.add(&ITEMS, f64::from(order.items))?;
    metrics.set(&BASKET_SIZE, f64::from(order.items))?;
    let cents = order.cents as f64;
    metrics.record_statistics(&ORDER_VALUE, 1.0, cents, cents, cents)?;
    metrics.record(&PAYMENT_LATENCY, order.payment_ms)?;
    Ok(Receipt {
        accepted: true,
        request_id: event.context.request_id,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let metrics = LambdaMetrics::from_env(Config::new("LambdaExample")?)?;
    edgepush_lambda::run(metrics, service_fn(handler)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgepush_lambda::Options;
    use lambda_runtime::Context;

    #[tokio::test]
    async fn the_handler_records_one_order_under_its_tenant() {
        let metrics =
            LambdaMetrics::new(Config::new("Test").expect("namespace"), Options::default())
                .expect("metrics");
        let event = LambdaEvent::new(
            Order {
                tenant: "acme".into(),
                items: 3,
                cents: 1250,
                payment_ms: 42.5,
            },
            Context::default(),
        );
        let invocation = metrics.invocation(&event.context);
        let receipt = invocation.scope(handler(event)).await.expect("handled");
        assert!(receipt.accepted);

        let batches = metrics
            .emitter()
            .flush_at(1_764_000_000_000)
            .expect("flush");
        let json: serde_json::Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("wire JSON");
        let mut seen: Vec<(String, String, serde_json::Value)> = json["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                let series = &json["series"][p["s"].as_u64().expect("index") as usize];
                let value = p
                    .get("x")
                    .or(p.get("vs"))
                    .or(p.get("st"))
                    .cloned()
                    .unwrap_or_default();
                let tenant = series["d"]["tenant"].as_str().unwrap_or("-").to_string();
                (
                    series["n"].as_str().expect("name").to_string(),
                    tenant,
                    value,
                )
            })
            .collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen,
            vec![
                ("ColdStart".into(), "-".into(), serde_json::json!(1)),
                ("basket_size".into(), "acme".into(), serde_json::json!(3)),
                ("items".into(), "acme".into(), serde_json::json!(3)),
                (
                    "order_value".into(),
                    "acme".into(),
                    serde_json::json!([1, 1250, 1250, 1250])
                ),
                ("orders".into(), "acme".into(), serde_json::json!(1)),
                (
                    "payment_latency".into(),
                    "acme".into(),
                    serde_json::json!([42.5])
                ),
            ]
        );
    }
}
