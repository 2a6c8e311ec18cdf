//! `fetch` as the sinks' HTTP client.

use std::time::Duration;

use edgepush_receiver::sink::{Client, Sent, SinkAnswer, parse_retry_after};
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, js_sys};

/// `fetch` as the sinks' [`Client`], JS timers between retries.
pub(crate) struct FetchClient;

impl Client for FetchClient {
    async fn send(&self, request: &http::Request<Vec<u8>>) -> Sent {
        let headers = Headers::new();
        for (name, value) in request.headers() {
            let value = value.to_str().map_err(|e| e.to_string())?;
            headers
                .set(name.as_str(), value)
                .map_err(|e| e.to_string())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method().as_str().to_string()))
            .with_headers(headers)
            .with_body(Some(
                js_sys::Uint8Array::from(request.body().as_slice()).into(),
            ));
        let outgoing =
            Request::new_with_init(&request.uri().to_string(), &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(outgoing)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v));
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(SinkAnswer {
            status: response.status_code(),
            retry_after,
            body,
        })
    }

    async fn sleep(&self, duration: Duration) {
        Delay::from(duration).await;
    }
}
