//! Delivering a batch to one sink through a small [`Client`] trait, with
//! bounded retries. The same code runs natively (reqwest, tokio's timer) and
//! at the edge (`fetch`, a JS timer): only the client differs.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::{Outcome, Sink};
use crate::model::Batch;

/// An answer's status and body, or why no answer came.
pub type Reply = Result<(u16, Vec<u8>), String>;

/// Sends HTTP requests and waits between tries.
pub trait Client {
    /// Sends `request`; the answer's status and body, or why none came.
    fn send(
        &self,
        request: &http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<(u16, Vec<u8>), String>>;

    /// Waits `duration` before the next try.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;
}

/// How often a request is tried, and the first wait between tries (doubled
/// after each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, at least 1.
    pub attempts: u32,
    /// Wait before the second try.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(100),
        }
    }
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

/// Sends every request that delivers `batch` to `sink` (signed at `now`),
/// retrying what is worth retrying. Requests already delivered are not sent
/// again when a later one fails.
pub async fn deliver<C: Client>(
    client: &C,
    sink: &Sink,
    batch: &Batch,
    now: SystemTime,
    retry: Retry,
) -> Result<(), SinkFailure> {
    let fail = |retryable, message| SinkFailure {
        sink: sink.name(),
        retryable,
        message,
    };
    let requests = sink.requests(batch, now).map_err(|e| fail(false, e))?;
    for request in &requests {
        let mut wait = retry.backoff;
        let mut attempt = 1;
        loop {
            let outcome = match client.send(request).await {
                Ok((status, body)) => sink.classify(status, &body),
                Err(e) => Outcome::Retry(e),
            };
            match outcome {
                Outcome::Delivered => break,
                Outcome::Fail(message) => return Err(fail(false, message)),
                Outcome::Retry(message) if attempt >= retry.attempts.max(1) => {
                    return Err(fail(true, message));
                }
                Outcome::Retry(message) => {
                    tracing::debug!(sink = sink.name(), attempt, message = %message, "retrying");
                    client.sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::ready;

    use edgepush::wire::Kind;
    use edgepush::{Resolution, Unit};

    use super::*;
    use crate::model::{Point, Series, Value};
    use crate::sink::line_protocol::Target;

    /// Answers from a script and records what it was asked.
    #[derive(Default)]
    struct Scripted {
        answers: RefCell<Vec<Reply>>,
        sent: RefCell<usize>,
        slept: RefCell<Vec<Duration>>,
    }

    impl Client for Scripted {
        fn send(
            &self,
            _: &http::Request<Vec<u8>>,
        ) -> impl Future<Output = Result<(u16, Vec<u8>), String>> {
            *self.sent.borrow_mut() += 1;
            ready(self.answers.borrow_mut().remove(0))
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
            self.slept.borrow_mut().push(duration);
            ready(())
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The scripted client never waits, so one poll finishes the future.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("scripted delivery never waits"),
        }
    }

    fn batch() -> Batch {
        Batch {
            id: "b".into(),
            namespace: "N".into(),
            series: vec![Series {
                name: "m".into(),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![],
                resolution: Resolution::Standard,
            }],
            points: vec![Point {
                series: 0,
                timestamp_ms: 0,
                value: Value::Counter(1.0),
            }],
        }
    }

    fn influx() -> Sink {
        Sink::LineProtocol(Target::V2 {
            url: "http://h".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
        })
    }

    fn run(
        answers: Vec<Result<(u16, Vec<u8>), String>>,
    ) -> (Result<(), SinkFailure>, usize, Vec<Duration>) {
        let client = Scripted {
            answers: RefCell::new(answers),
            ..Scripted::default()
        };
        let retry = Retry {
            attempts: 3,
            backoff: Duration::from_millis(10),
        };
        let result = block_on(deliver(
            &client,
            &influx(),
            &batch(),
            SystemTime::UNIX_EPOCH,
            retry,
        ));
        (result, client.sent.into_inner(), client.slept.into_inner())
    }

    #[test]
    fn retries_unavailable_sinks_with_backoff_then_delivers() {
        let (result, sent, slept) = run(vec![
            Ok((503, vec![])),
            Err("connection refused".into()),
            Ok((204, vec![])),
        ]);
        assert_eq!(result, Ok(()));
        assert_eq!(sent, 3);
        assert_eq!(
            slept,
            [Duration::from_millis(10), Duration::from_millis(20)]
        );
    }

    #[test]
    fn gives_up_after_the_attempts_and_says_retryable() {
        let (result, sent, _) = run(vec![
            Ok((429, vec![])),
            Ok((503, vec![])),
            Ok((500, b"boom".to_vec())),
        ]);
        let failure = result.expect_err("gave up");
        assert!(failure.retryable);
        assert_eq!(
            (failure.sink, failure.message.as_str()),
            ("influxdb", "500: boom")
        );
        assert_eq!(sent, 3);
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let (result, sent, slept) = run(vec![Ok((400, b"field type conflict".to_vec()))]);
        let failure = result.expect_err("refused");
        assert!(!failure.retryable);
        assert!(failure.message.contains("field type conflict"));
        assert_eq!((sent, slept.len()), (1, 0));
    }
}
