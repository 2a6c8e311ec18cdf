//! Sending sink requests natively, with bounded retries.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use crate::model::Batch;
use crate::sink::{Outcome, Sink, line_protocol};

/// Sends batches to every sink.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: reqwest::Client,
    sinks: Vec<Sink>,
    attempts: u32,
    backoff: Duration,
}

/// A sink that did not take a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkFailure {
    /// The sink's name.
    pub sink: &'static str,
    /// Whether the client should send the batch again later.
    pub retryable: bool,
    /// What went wrong.
    pub message: String,
}

impl Forwarder {
    /// A forwarder to `sinks`, with a 10 s timeout per request and 3 attempts.
    pub fn new(sinks: Vec<Sink>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Forwarder {
            client,
            sinks,
            attempts: 3,
            backoff: Duration::from_millis(100),
        }
    }

    /// Sets how many times a request is tried and the first wait between tries.
    pub fn retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The sinks.
    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Delivers `batch` to every sink; the failures, if any.
    pub async fn forward(&self, batch: &Batch) -> Vec<SinkFailure> {
        let mut failures = Vec::new();
        if batch.points.is_empty() {
            return failures;
        }
        for sink in &self.sinks {
            if let Err(failure) = self.deliver(sink, batch).await {
                tracing::warn!(sink = failure.sink, batch = %batch.id, retryable = failure.retryable, message = %failure.message, "sink did not take batch");
                failures.push(failure);
            }
        }
        failures
    }

    async fn deliver(&self, sink: &Sink, batch: &Batch) -> Result<(), SinkFailure> {
        let fail = |retryable, message| SinkFailure {
            sink: sink.name(),
            retryable,
            message,
        };
        if let Sink::Stdout = sink {
            let mut text = String::new();
            line_protocol::encode(batch, &mut text);
            let mut out = std::io::stdout().lock();
            return out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| fail(true, format!("cannot write to stdout: {e}")));
        }
        let requests = sink
            .requests(batch, SystemTime::now())
            .map_err(|e| fail(false, e))?;
        for request in requests {
            let mut wait = self.backoff;
            let mut attempt = 1;
            loop {
                let outcome = match self.send(&request).await {
                    Ok((status, body)) => sink.classify(status, &body),
                    Err(e) => Outcome::Retry(e),
                };
                match outcome {
                    Outcome::Delivered => break,
                    Outcome::Fail(message) => return Err(fail(false, message)),
                    Outcome::Retry(message) if attempt >= self.attempts => {
                        return Err(fail(true, message));
                    }
                    Outcome::Retry(message) => {
                        tracing::debug!(sink = sink.name(), attempt, message = %message, "retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                        attempt += 1;
                    }
                }
            }
        }
        Ok(())
    }

    async fn send(&self, request: &http::Request<Vec<u8>>) -> Result<(u16, Vec<u8>), String> {
        let response = self
            .client
            .request(request.method().clone(), request.uri().to_string())
            .headers(request.headers().clone())
            .body(request.body().clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    }
}
