//! What a strategy registers with Lambda before the runtime starts: the
//! extension (named [`EXTENSION_NAME`]), and the last push when the process
//! is told to stop, which resolves [`Shutdown`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::metrics::LambdaMetrics;
use crate::policy::Moment;

/// The name the extension registers under.
pub const EXTENSION_NAME: &str = "edgepush";

/// Resolves once the process has been told to stop (SIGTERM, as Lambda
/// sends before shutting the environment down, or SIGINT) and the last push
/// is done: return from `main` then. [`crate::run`] does.
///
/// Never resolves under [`crate::Flush::EndOfInvocation`], which registers
/// nothing and leaves the signals alone. If it is dropped instead of
/// awaited, the last push still happens on SIGTERM but the process does not
/// end before Lambda stops it.
#[derive(Debug)]
#[must_use = "await it beside the runtime, and return from main once it resolves"]
pub struct Shutdown(Option<oneshot::Receiver<()>>);

impl Future for Shutdown {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        match &mut self.0 {
            None => Poll::Pending,
            // A sender gone without a word (its task dropped as the runtime
            // stops) ends the wait too.
            Some(done) => Pin::new(done).poll(cx).map(|_| ()),
        }
    }
}

impl LambdaMetrics {
    /// Registers what the strategy needs with Lambda
    /// ([`Flush::extension_events`](crate::Flush::extension_events)): the
    /// extension, then the last push on SIGTERM or SIGINT, after which the
    /// returned [`Shutdown`] resolves. Must run before the runtime starts
    /// (Lambda hands out the first invocation only once every extension
    /// has registered), once per process. [`crate::run`] calls it.
    pub async fn start(&self) -> Result<Shutdown> {
        let Some(events) = self.options().policy.flush.extension_events() else {
            return Ok(Shutdown(None));
        };
        let metrics = self.clone();
        let processor = lambda_extension::service_fn(move |event| on_event(metrics.clone(), event));
        let extension = lambda_extension::Extension::new()
            .with_extension_name(EXTENSION_NAME)
            .with_events(events)
            .with_events_processor(processor)
            .register()
            .await
            .map_err(Error::Start)?;
        tokio::spawn(async move {
            if let Err(e) = extension.run().await {
                eprintln!("edgepush: extension stopped: {e}");
            }
        });
        let start = |e: std::io::Error| Error::Start(e.into());
        let mut term = signal(SignalKind::terminate()).map_err(start)?;
        let mut int = signal(SignalKind::interrupt()).map_err(start)?;
        let (done, shutdown) = oneshot::channel();
        let metrics = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            metrics.on(Moment::Shutdown, "shutdown", 0).await;
            let _ = done.send(());
        });
        Ok(Shutdown(Some(shutdown)))
    }
}

/// What the extension does with an event from the Extensions API.
async fn on_event(
    metrics: LambdaMetrics,
    event: lambda_extension::LambdaEvent,
) -> Result<(), lambda_extension::Error> {
    match event.next {
        lambda_extension::NextEvent::Invoke(invoke) => {
            metrics
                .on(Moment::Invoke, &invoke.request_id, invoke.deadline_ms)
                .await;
        }
        // Lambda sends internal extensions no SHUTDOWN; the local emulator
        // does.
        lambda_extension::NextEvent::Shutdown(_) => {
            metrics.on(Moment::Shutdown, "shutdown", 0).await;
        }
    }
    Ok(())
}
