//! [`HttpTransport`]: a blocking HTTP transport on `ureq` (feature `http`;
//! HTTPS with `https`).

use std::string::String;
use std::{thread, time::Duration};

use crate::payload::Payload;
use crate::transport::{Ack, SendError, Transport};
use edgepush_protocol::answer::Answer;

/// A blocking HTTP transport on `ureq`, for `http://` receivers and, with the
/// `https` feature, `https://` ones.
///
/// Each batch is tried up to `1 + retries` times while the receiver is
/// unavailable, waiting `backoff`, then twice that, and so on, between tries.
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

impl HttpTransport {
    /// A transport to the receiver at `base_url` (for example
    /// `https://metrics.example.com`), posting to `/v1/metrics` with a 5 s
    /// timeout and 2 retries.
    pub fn new(base_url: &str) -> Self {
        let url = edgepush_protocol::wire::push_url(base_url);
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
    pub fn send_within(&self, batch: &Payload, budget: Duration) -> Result<Ack, SendError> {
        self.send_until(batch, Some(std::time::Instant::now() + budget))
    }

    /// Tries `batch` up to `1 + retries` times while the receiver is
    /// unavailable, backing off between tries, and, with a `deadline`, never
    /// past it.
    fn send_until(
        &self,
        batch: &Payload,
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
    fn attempt(&self, batch: &Payload, timeout: Option<Duration>) -> Result<Ack, SendError> {
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

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("edgepush/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

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

impl Transport for HttpTransport {
    fn send(&self, batch: &Payload) -> Result<Ack, SendError> {
        self.send_until(batch, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
