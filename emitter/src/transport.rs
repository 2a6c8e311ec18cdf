//! Sending batches: the [`Transport`] trait and [`Emitter::push`].

use std::fmt;
use std::string::String;
use std::vec::Vec;
#[cfg(feature = "http")]
use std::{thread, time::Duration};

use crate::batch::Batch;
use crate::emitter::Emitter;
#[cfg(feature = "http")]
use edgepush_protocol::answer::Answer;

/// What the receiver said about a batch it took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ack {
    /// Points accepted and forwarded.
    pub accepted: u64,
    /// Points refused as invalid (the receiver's answer names each one).
    pub rejected: u64,
    /// Attempts made beyond the first (retries inside the transport).
    pub retries: u32,
}

/// Why a batch was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The receiver refused the batch (a 4xx other than 408 and 429):
    /// sending it again unchanged will not help.
    Refused {
        /// HTTP status.
        status: u16,
        /// The receiver's explanation.
        message: String,
    },
    /// The receiver could not be reached or asked to try later (network
    /// error, timeout, 408, 429, 5xx): send the batch again later.
    Unavailable {
        /// HTTP status, if a response came back.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
}

impl SendError {
    /// Whether sending the same batch again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Unavailable { .. })
    }

    /// Classifies an HTTP answer that was not a success.
    pub fn from_status(status: u16, message: String) -> Self {
        if status == 408 || status == 429 || status >= 500 {
            SendError::Unavailable {
                status: Some(status),
                message,
            }
        } else {
            SendError::Refused { status, message }
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Refused { status, message } => {
                write!(f, "receiver refused the batch ({status}): {message}")
            }
            SendError::Unavailable {
                status: Some(status),
                message,
            } => write!(f, "receiver unavailable ({status}): {message}"),
            SendError::Unavailable {
                status: None,
                message,
            } => write!(f, "receiver unreachable: {message}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends one batch to a receiver. Implementations must not change the batch:
/// a retry sends the same bytes with the same id.
pub trait Transport {
    /// Sends `batch` and returns the receiver's acknowledgement.
    fn send(&self, batch: &Batch) -> Result<Ack, SendError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        (**self).send(batch)
    }
}

/// What a push delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushReport {
    /// Batches the receiver took.
    pub batches: usize,
    /// Points accepted by the receiver.
    pub accepted: u64,
    /// Points the receiver refused as invalid.
    pub rejected: u64,
    /// Retries transports made.
    pub retries: u64,
}

/// A push that did not deliver everything. Nothing is dropped: every batch
/// not taken is in `unsent`, ready to send again (same id) or to write
/// elsewhere.
#[derive(Debug)]
#[non_exhaustive]
pub struct PushError {
    /// The first error met.
    pub error: SendError,
    /// Batches not taken by the receiver, in order.
    pub unsent: Vec<Batch>,
    /// What was delivered before and besides the failure.
    pub report: PushReport,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} batch(es) not sent: {}",
            self.unsent.len(),
            self.error
        )
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Sends `batches` in order. A refused batch is set aside and the others are
/// still sent; once the receiver is unavailable the rest are not tried.
pub fn send_all(transport: &impl Transport, batches: Vec<Batch>) -> Result<PushReport, PushError> {
    let mut report = PushReport::default();
    let mut unsent = Vec::new();
    let mut first_error = None;
    let mut batches = batches.into_iter();
    while let Some(batch) = batches.next() {
        match transport.send(&batch) {
            Ok(ack) => {
                report.batches += 1;
                report.accepted += ack.accepted;
                report.rejected += ack.rejected;
                report.retries += u64::from(ack.retries);
            }
            Err(error) => {
                let stop = error.is_retryable();
                unsent.push(batch);
                first_error.get_or_insert(error);
                if stop {
                    unsent.extend(batches.by_ref());
                }
            }
        }
    }
    match first_error {
        None => Ok(report),
        Some(error) => Err(PushError {
            error,
            unsent,
            report,
        }),
    }
}

impl Emitter {
    /// Flushes and sends every batch through `transport`.
    ///
    /// Batches that are not taken come back in [`PushError::unsent`].
    pub fn push(&self, transport: &impl Transport) -> Result<PushReport, PushError> {
        let batches = self.flush().map_err(|e| PushError {
            error: SendError::Refused {
                status: 0,
                message: e.to_string(),
            },
            unsent: Vec::new(),
            report: PushReport::default(),
        })?;
        let result = send_all(transport, batches);
        let (report, failed) = match &result {
            Ok(report) => (report, 0),
            Err(e) => (&e.report, e.unsent.len()),
        };
        self.count_sent(report.batches as u64, report.retries, failed as u64);
        result
    }
}

/// A blocking HTTP transport on `ureq`, for `http://` receivers and, with the
/// `https` feature, `https://` ones.
///
/// Each batch is tried up to `1 + retries` times while the receiver is
/// unavailable, waiting `backoff`, then twice that, and so on, between tries.
#[cfg(feature = "http")]
#[derive(Clone, Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    authorization: Option<String>,
    #[cfg(feature = "sign")]
    signing_key: Option<String>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

#[cfg(feature = "http")]
impl HttpTransport {
    /// A transport to the receiver at `base_url` (for example
    /// `https://metrics.example.com`), posting to `/v1/metrics` with a 5 s
    /// timeout and 2 retries.
    pub fn new(base_url: &str) -> Self {
        let url = if base_url.ends_with(edgepush_protocol::wire::PATH) {
            base_url.to_string()
        } else {
            format!(
                "{}{}",
                base_url.trim_end_matches('/'),
                edgepush_protocol::wire::PATH
            )
        };
        HttpTransport {
            agent: agent(Duration::from_secs(5)),
            url,
            authorization: None,
            #[cfg(feature = "sign")]
            signing_key: None,
            timeout: Duration::from_secs(5),
            retries: 2,
            backoff: Duration::from_millis(50),
        }
    }

    /// Sends `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: &str) -> Self {
        self.authorization = Some(format!("Bearer {key}"));
        self
    }

    /// Signs every attempt with `key` (an `Edgepush-Signature` header, see
    /// [`edgepush_protocol::sign`]) instead of sending the key: the receiver checks the
    /// signature and refuses it when it is old or seen before. Replaces
    /// [`HttpTransport::api_key`].
    #[cfg(feature = "sign")]
    pub fn signing_key(mut self, key: &str) -> Self {
        self.authorization = None;
        self.signing_key = Some(key.to_string());
        self
    }

    /// The most time one attempt may take, connection included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self.timeout = timeout;
        self
    }

    /// How often an unavailable receiver is tried again, and the first wait.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `batch` like [`Transport::send`], but gives up once `budget`
    /// is spent: each attempt's timeout is what is left of it, and no retry
    /// starts that could not finish in time. For pushes that must end before
    /// a deadline (an AWS Lambda invocation's).
    pub fn send_within(&self, batch: &Batch, budget: Duration) -> Result<Ack, SendError> {
        self.send_until(batch, Some(std::time::Instant::now() + budget))
    }

    /// Tries `batch` up to `1 + retries` times while the receiver is
    /// unavailable, backing off between tries, and, with a `deadline`, never
    /// past it.
    fn send_until(
        &self,
        batch: &Batch,
        deadline: Option<std::time::Instant>,
    ) -> Result<Ack, SendError> {
        let left = || deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let mut wait = self.backoff;
        let mut retries = 0;
        loop {
            let timeout = left().map(|left| left.min(self.timeout));
            if timeout.is_some_and(|t| t.is_zero()) {
                return Err(SendError::Unavailable {
                    status: None,
                    message: "no time left before the deadline".into(),
                });
            }
            match self.attempt(batch, timeout) {
                Err(e)
                    if e.is_retryable()
                        && retries < self.retries
                        && left().is_none_or(|left| left > wait * 2) =>
                {
                    retries += 1;
                    thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
                Ok(ack) => return Ok(Ack { retries, ..ack }),
                Err(e) => return Err(e),
            }
        }
    }

    /// One try; `timeout` overrides the agent's for this request.
    fn attempt(&self, batch: &Batch, timeout: Option<Duration>) -> Result<Ack, SendError> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", batch.content_type())
            .header(edgepush_protocol::wire::BATCH_ID_HEADER, batch.id());
        if let Some(timeout) = timeout {
            request = request.config().timeout_global(Some(timeout)).build();
        }
        if let Some(encoding) = batch.content_encoding() {
            request = request.header("content-encoding", encoding);
        }
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        // Signed afresh on every attempt: the receiver refuses a signature
        // it has seen.
        #[cfg(feature = "sign")]
        if let Some(key) = &self.signing_key {
            use std::hash::BuildHasher as _;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            // Each RandomState has fresh keys, seeded from the OS.
            let nonce = std::collections::hash_map::RandomState::new().hash_one(now.as_nanos());
            let nonce = format!("{nonce:016x}");
            let header = edgepush_protocol::sign::header(key, now.as_secs(), &nonce, batch.body());
            request = request.header(edgepush_protocol::sign::HEADER, header);
        }
        let mut response = request
            .send(batch.body())
            .map_err(|e| SendError::Unavailable {
                status: None,
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(SendError::from_status(status, body));
        }
        Ok(parse_ack(&body))
    }
}

#[cfg(feature = "http")]
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("edgepush/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

#[cfg(feature = "http")]
/// Reads `accepted` and how many points were refused from a receiver's 2xx
/// answer ([`edgepush_protocol::answer::Answer`]); an answer without them
/// counts as nothing refused.
fn parse_ack(body: &str) -> Ack {
    let answer: Answer<'_> = serde_json::from_str(body).unwrap_or_default();
    Ack {
        retries: 0,
        accepted: answer.accepted as u64,
        rejected: answer.refused() as u64,
    }
}

#[cfg(feature = "http")]
impl Transport for HttpTransport {
    fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        self.send_until(batch, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Metric};
    use std::cell::RefCell;

    /// Answers from a script, recording the ids it was sent.
    struct Scripted {
        answers: RefCell<Vec<Result<Ack, SendError>>>,
        seen: RefCell<Vec<String>>,
    }

    impl Transport for Scripted {
        fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
            self.seen.borrow_mut().push(batch.id().to_string());
            self.answers.borrow_mut().remove(0)
        }
    }

    fn three_batches() -> (Emitter, Vec<Batch>) {
        let e = Emitter::new(Config::new("N").expect("ns").max_points_per_batch(1));
        for name in ["a", "b", "c"] {
            e.counter(Metric::new(name)).expect("counter").increment();
        }
        let batches = e.flush().expect("flush");
        assert_eq!(batches.len(), 3);
        (e, batches)
    }

    #[test]
    fn unavailable_receiver_hands_back_every_remaining_batch() {
        let (_e, batches) = three_batches();
        let ids: Vec<String> = batches.iter().map(|b| b.id().to_string()).collect();
        let t = Scripted {
            answers: RefCell::new(vec![
                Ok(Ack {
                    accepted: 1,
                    rejected: 0,
                    retries: 0,
                }),
                Err(SendError::from_status(503, "down".into())),
            ]),
            seen: RefCell::default(),
        };
        let err = send_all(&t, batches).expect_err("fails");
        assert!(err.error.is_retryable());
        assert_eq!(err.report.batches, 1);
        let unsent: Vec<&str> = err.unsent.iter().map(Batch::id).collect();
        assert_eq!(unsent, [ids[1].as_str(), ids[2].as_str()]);
        assert_eq!(t.seen.borrow().len(), 2, "stopped after the outage");
    }

    #[test]
    fn refused_batch_is_set_aside_and_the_rest_still_sent() {
        let (_e, batches) = three_batches();
        let t = Scripted {
            answers: RefCell::new(vec![
                Err(SendError::from_status(400, "bad".into())),
                Ok(Ack {
                    accepted: 1,
                    rejected: 0,
                    retries: 0,
                }),
                Ok(Ack {
                    accepted: 1,
                    rejected: 0,
                    retries: 0,
                }),
            ]),
            seen: RefCell::default(),
        };
        let err = send_all(&t, batches).expect_err("one refused");
        assert!(!err.error.is_retryable());
        assert_eq!(
            (err.unsent.len(), err.report.batches, err.report.accepted),
            (1, 2, 2)
        );
    }

    #[test]
    fn status_classification() {
        for (status, retry) in [
            (400, false),
            (401, false),
            (413, false),
            (408, true),
            (429, true),
            (500, true),
            (503, true),
        ] {
            assert_eq!(
                SendError::from_status(status, String::new()).is_retryable(),
                retry,
                "{status}"
            );
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn ack_parsing() {
        assert_eq!(
            parse_ack(r#"{"accepted":3,"rejected":[{"point":1},{"point":2}]}"#),
            Ack {
                accepted: 3,
                rejected: 2,
                retries: 0,
            }
        );
        assert_eq!(parse_ack("not json"), Ack::default());
    }
}
