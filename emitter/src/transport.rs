//! Sending batches: the [`Transport`] trait, what a send and a push
//! report, and [`send_all`]. [`crate::Emitter::push`] flushes and sends;
//! [`crate::HttpTransport`] (feature `http`) is the transport over HTTP.

use std::fmt;
use std::string::String;
use std::vec::Vec;

use crate::payload::Payload;

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
    fn send(&self, batch: &Payload) -> Result<Ack, SendError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, batch: &Payload) -> Result<Ack, SendError> {
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
    pub unsent: Vec<Payload>,
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
pub fn send_all(
    transport: &impl Transport,
    batches: Vec<Payload>,
) -> Result<PushReport, PushError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use edgepush_protocol::wire::Version;
    use std::cell::RefCell;

    /// Answers from a script, recording the ids it was sent.
    struct Scripted {
        answers: RefCell<Vec<Result<Ack, SendError>>>,
        seen: RefCell<Vec<String>>,
    }

    impl Transport for Scripted {
        fn send(&self, batch: &Payload) -> Result<Ack, SendError> {
            self.seen.borrow_mut().push(batch.id().to_string());
            self.answers.borrow_mut().remove(0)
        }
    }

    fn three_batches() -> Vec<Payload> {
        ["a", "b", "c"]
            .map(|id| Payload::new(id.into(), 1, Vec::new(), false, Version::V2))
            .into()
    }

    #[test]
    fn unavailable_receiver_hands_back_every_remaining_batch() {
        let batches = three_batches();
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
        let unsent: Vec<&str> = err.unsent.iter().map(Payload::id).collect();
        assert_eq!(unsent, [ids[1].as_str(), ids[2].as_str()]);
        assert_eq!(t.seen.borrow().len(), 2, "stopped after the outage");
    }

    #[test]
    fn refused_batch_is_set_aside_and_the_rest_still_sent() {
        let batches = three_batches();
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
}
