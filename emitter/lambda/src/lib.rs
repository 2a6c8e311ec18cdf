//! # edgepush-lambda
//!
//! edgepush in AWS Lambda: metrics recorded by a `lambda_runtime` handler
//! are pushed to an edgepush receiver when the chosen [`Flush`] strategy
//! says, and nothing is lost when the receiver cannot take them.
//!
//! ```no_run
//! use edgepush::{Config, Metric, Unit};
//! use edgepush_lambda::{Invocation, LambdaMetrics};
//! use lambda_runtime::{Error, LambdaEvent, service_fn};
//! use serde_json::Value;
//!
//! async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
//!     let metrics = Invocation::current()?;
//!     metrics.dimension("tenant", "acme"); // this invocation's own dimension
//!     metrics.counter(Metric::new("orders").unit(Unit::Count))?.increment();
//!     Ok(event.payload)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     // EDGEPUSH_URL, EDGEPUSH_API_KEY, EDGEPUSH_FLUSH, ... (see `Options::from_env`)
//!     let metrics = LambdaMetrics::from_env(Config::new("Shop")?)?;
//!     edgepush_lambda::run(metrics, service_fn(handler)).await
//! }
//! ```
//!
//! The handler stays a plain `service_fn`: [`MetricsLayer`] wraps it (with
//! any layers of its own), [`AfterResponseLayer`] goes on the runtime, and
//! [`LambdaMetrics::start`] registers what the strategy needs. [`run`] is
//! those three in one call; by hand:
//!
//! ```no_run
//! # use edgepush::Config;
//! # use edgepush_lambda::LambdaMetrics;
//! # use lambda_runtime::{Error, LambdaEvent, service_fn};
//! # use serde_json::Value;
//! # async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> { Ok(event.payload) }
//! use lambda_runtime::Runtime;
//! use lambda_runtime::tower::Layer;
//!
//! # async fn run() -> Result<(), Error> {
//! let metrics = LambdaMetrics::from_env(Config::new("Shop")?)?;
//! let shutdown = metrics.start().await?;
//! let service = metrics.layer().layer(service_fn(handler));
//! let runtime = Runtime::new(service).layer(metrics.after_response_layer());
//! tokio::select! {
//!     result = runtime.run_concurrent() => result,
//!     () = shutdown => Ok(()), // told to stop; the last push is done
//! }
//! # }
//! ```
//!
//! A test calls the handler itself, under an invocation:
//! `metrics.invocation(&Context::default()).scope(handler(event)).await`.
//!
//! What it adds:
//! - the dimensions `FunctionName` and `FunctionVersion` on every metric
//!   (from the Lambda environment; [`Options::function_dimensions`]);
//! - `ColdStart` (Count), 1 on the first invocation of the process only;
//! - the request id, as the property `requestId` of EMF documents (wire v1
//!   and CloudWatch's PutMetricData have no place for it: a dimension per
//!   request would make a series per request).
//!
//! # Flush strategies
//! - [`Flush::EndOfInvocation`] (default): the handler's metrics are pushed
//!   before its response is returned, within the invocation's deadline less
//!   [`Policy::margin`]. Costs the push's latency on every response; needs
//!   nothing else.
//! - [`Flush::AfterResponse`]: an internal extension (same process,
//!   registered for INVOKE) pushes once the response has been posted. Lambda
//!   freezes the environment only after every extension has asked for its
//!   next event, so the push happens before the freeze and adds no latency
//!   to the response (it is billed as duration). Each wake pushes everything
//!   pending, so an INVOKE event the extension did not see loses nothing.
//! - [`Flush::Periodic`]: metrics aggregate across warm invocations and are
//!   pushed after a response once `interval` has passed or `points` series
//!   are waiting; fewest requests, one push per many invocations. Because an
//!   extension is registered, Lambda sends SIGTERM before shutting the
//!   environment down: what is still buffered is pushed then (Lambda leaves
//!   300-500 ms), and [`Shutdown`] resolves.
//! - [`Flush::Adaptive`]: after each response while too few invocations
//!   were seen to know (`learn`) or while the function is called rarely or
//!   in bursts (at least a fifth of the recent gaps between invocations as
//!   long as `interval`), so little waits in a frozen environment; periodic,
//!   as above, while invocations come steadily. Also the last push at
//!   SIGTERM. `EDGEPUSH_FLUSH=adaptive`.
//!
//! When each strategy pushes is one pure function, [`policy::decide`]
//! (with [`policy::budget`] for how long a push may take), apart from the
//! pushing.
//!
//! # Nothing lost
//! A batch that cannot be pushed in time (receiver down, refusing, slow, or
//! no time left) is written to stdout as CloudWatch EMF documents instead
//! ([`edgepush::emf`]), which CloudWatch Logs turns into the same metrics.
//! Each batch goes out one way: pushed, or written as EMF. The one overlap
//! left is a push whose answer does not arrive before the deadline although
//! the receiver took it: that batch is written as EMF too (at least once,
//! never lost).

use std::fmt::Debug;

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;

mod error;
mod invocation;
mod layer;
mod lifecycle;
mod metrics;
mod options;
pub mod policy;

pub use error::{Error, Result};
pub use invocation::Invocation;
pub use layer::{AfterResponse, AfterResponseLayer, MetricsLayer, MetricsService};
pub use lifecycle::{EXTENSION_NAME, Shutdown};
pub use metrics::{Flushed, LambdaMetrics};
pub use options::Options;
pub use policy::{Flush, Policy};

/// Runs `handler` (a `service_fn`, or any service of `LambdaEvent`s) under
/// `lambda_runtime` (concurrently where Lambda asks for it,
/// `AWS_LAMBDA_MAX_CONCURRENCY`), wrapped in [`MetricsLayer`], with
/// [`AfterResponseLayer`] on the runtime, after [`LambdaMetrics::start`].
/// Returns when the runtime does, or once [`Shutdown`] resolves (the
/// process was told to stop and the last push is done).
pub async fn run<S, A, R>(metrics: LambdaMetrics, handler: S) -> Result<(), lambda_runtime::Error>
where
    S: Service<LambdaEvent<A>, Response = R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Diagnostic> + Debug + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    let shutdown = metrics.start().await?;
    let service = metrics.layer().layer(handler);
    let runtime = Runtime::new(service).layer(metrics.after_response_layer());
    tokio::select! {
        result = runtime.run_concurrent() => result,
        () = shutdown => Ok(()),
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
