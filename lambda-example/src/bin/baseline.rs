//! The example's baseline for the latency benchmark: the same kind of
//! handler with no metrics at all.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(
        json!({"accepted": event.payload.get("tenant").is_some(), "request_id": event.context.request_id}),
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
