//! The crate's one error type.

use std::fmt;

/// What can go wrong setting the integration up or reaching the current
/// invocation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The emitter refused a setting or a metric: a bad namespace, name or
    /// dimension (the function's own, say).
    Emitter(edgepush::Error),
    /// An environment variable's value could not be read (see
    /// [`crate::Options::from_env`]).
    Setting(String),
    /// The extension could not register with Lambda's Extensions API, or the
    /// signal handlers could not be installed ([`crate::LambdaMetrics::start`]).
    Start(lambda_runtime::Error),
    /// [`crate::Invocation::current`] was called outside an invocation: not
    /// under [`crate::MetricsLayer`] or [`crate::Invocation::scope`].
    NoInvocation,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Emitter(e) => e.fmt(f),
            Error::Setting(message) => write!(f, "bad setting: {message}"),
            Error::Start(e) => write!(f, "cannot start the edgepush integration: {e}"),
            Error::NoInvocation => f.write_str(
                "no invocation here: Invocation::current works inside a handler run under \
                 edgepush_lambda::MetricsLayer (or Invocation::scope)",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Emitter(e) => Some(e),
            Error::Start(e) => Some(&**e),
            Error::Setting(_) | Error::NoInvocation => None,
        }
    }
}

impl From<edgepush::Error> for Error {
    fn from(e: edgepush::Error) -> Self {
        Error::Emitter(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
