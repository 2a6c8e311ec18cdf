//! The receiver's error type: what a client is told when a request is refused.

use std::fmt;

use serde::Serialize;

/// A refused request: an HTTP status and a JSON body naming the field and
/// the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Error {
    /// HTTP status (4xx for the client's faults, 5xx for ours or a sink's).
    #[serde(skip)]
    pub status: u16,
    /// A stable machine-readable code, such as `invalid_json`.
    pub error: &'static str,
    /// The field at fault, as a path into the request (`points[3].x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
    /// When to try again, in seconds (sent as `Retry-After` too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Error {
    /// An error with no field.
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> Self {
        Error {
            status,
            error,
            field: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tells the client when to try again.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The JSON body to answer with.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"error":"internal"}"#))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{} ({}): {field}: {}",
                self.status, self.error, self.message
            ),
            None => write!(f, "{} ({}): {}", self.status, self.error, self.message),
        }
    }
}

impl std::error::Error for Error {}

/// The receiver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
