//! Forwarding natively: reqwest as the sinks' [`Client`], tokio's timer
//! between retries, and the stdout sink.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use crate::model::Batch;
use crate::sink::{
    Client, Reply, Retry, Sink, SinkAnswer, SinkFailure, deliver, line_protocol, parse_retry_after,
};

/// reqwest as a sink [`Client`].
#[derive(Clone, Debug, Default)]
pub struct Reqwest(reqwest::Client);

impl Client for Reqwest {
    async fn send(&self, request: &http::Request<Vec<u8>>) -> Reply {
        let response = self
            .0
            .request(request.method().clone(), request.uri().to_string())
            .headers(request.headers().clone())
            .body(request.body().clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(SinkAnswer {
            status,
            retry_after,
            body: body.to_vec(),
        })
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// What a forward did: the sinks (by index) that took the batch, and the
/// failures of the others.
#[derive(Clone, Debug, Default)]
pub struct Forwarded {
    /// Indices of the sinks that took the batch.
    pub delivered: Vec<usize>,
    /// Why the others did not.
    pub failures: Vec<SinkFailure>,
}

/// Sends batches to every sink.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Reqwest,
    sinks: Vec<Sink>,
    retry: Retry,
}

impl Forwarder {
    /// A forwarder to `sinks`, with a 10 s timeout per request and the
    /// default [`Retry`].
    pub fn new(sinks: Vec<Sink>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Forwarder {
            client: Reqwest(client),
            sinks,
            retry: Retry::default(),
        }
    }

    /// Sets how many times a request is tried and the first wait between tries.
    pub fn retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retry = Retry {
            attempts,
            backoff,
            ..Retry::default()
        };
        self
    }

    /// Delivers `batch` to every sink but those `skip` names (by index:
    /// sinks that took this batch before); the failures, if any.
    pub async fn forward(&self, batch: &Batch, skip: impl Fn(usize) -> bool) -> Forwarded {
        let mut forwarded = Forwarded::default();
        if batch.points.is_empty() {
            return forwarded;
        }
        for (index, sink) in self.sinks.iter().enumerate() {
            if skip(index) {
                continue;
            }
            let result = match sink {
                Sink::Stdout => write_stdout(batch),
                Sink::Aws(aws) => aws.deliver(&self.client, batch, self.retry).await,
                _ => deliver(&self.client, sink, batch, SystemTime::now(), self.retry).await,
            };
            match result {
                Ok(()) => forwarded.delivered.push(index),
                Err(failure) => {
                    tracing::warn!(sink = failure.sink, batch = %batch.id, retryable = failure.retryable, message = %failure.message, "sink did not take batch");
                    forwarded.failures.push(failure);
                }
            }
        }
        forwarded
    }
}

fn write_stdout(batch: &Batch) -> Result<(), SinkFailure> {
    let mut text = String::new();
    line_protocol::encode(batch, &mut text);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| SinkFailure {
            sink: "stdout",
            retryable: true,
            message: format!("cannot write to stdout: {e}"),
        })
}
