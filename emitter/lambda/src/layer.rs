//! The tower layers: [`MetricsLayer`] around the handler, where each
//! invocation starts and (end of invocation) is pushed before its
//! response; [`AfterResponseLayer`] on the runtime, which acts once the
//! response is posted.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation};

use crate::metrics::LambdaMetrics;
use crate::policy::Moment;

/// A future the layers return.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Wraps a handler service (`service_fn(handler)`, with any layers of its
/// own): each event starts an [`crate::Invocation`], which the handler
/// reaches with [`crate::Invocation::current`], and under
/// [`crate::Flush::EndOfInvocation`] the metrics are pushed once the handler
/// returns, before its response goes out.
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: LambdaMetrics,
}

impl MetricsLayer {
    /// The layer for `metrics` (also [`LambdaMetrics::layer`]).
    pub fn new(metrics: LambdaMetrics) -> Self {
        MetricsLayer { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: LambdaMetrics,
}

impl<S> fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsService")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<S, A> Service<LambdaEvent<A>> for MetricsService<S>
where
    S: Service<LambdaEvent<A>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<A>) -> Self::Future {
        let invocation = self.metrics.invocation(&event.context);
        let request_id = event.context.request_id.clone();
        let deadline = event.context.deadline;
        let inner = &mut self.inner;
        let handled = invocation.clone().sync_scope(|| inner.call(event));
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = invocation.scope(handled).await;
            metrics.on(Moment::Returned, &request_id, deadline).await;
            result
        })
    }
}

/// A layer on the runtime ([`lambda_runtime::Runtime::layer`]): runs once
/// the runtime has posted a response, before it asks for the next event.
/// Under [`crate::Flush::AfterResponse`] it tells the extension that the
/// response is out; under [`crate::Flush::Periodic`] it pushes when a push
/// is due.
#[derive(Clone, Debug)]
pub struct AfterResponseLayer {
    metrics: LambdaMetrics,
}

impl AfterResponseLayer {
    /// The layer for `metrics` (also [`LambdaMetrics::after_response_layer`]).
    pub fn new(metrics: LambdaMetrics) -> Self {
        AfterResponseLayer { metrics }
    }
}

impl<S> Layer<S> for AfterResponseLayer {
    type Service = AfterResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterResponse {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`AfterResponseLayer`] makes.
#[derive(Clone)]
pub struct AfterResponse<S> {
    inner: S,
    metrics: LambdaMetrics,
}

impl<S> fmt::Debug for AfterResponse<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterResponse")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<S> Service<LambdaInvocation> for AfterResponse<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = BoxFuture<Result<(), lambda_runtime::Error>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let request_id = invocation.context.request_id.clone();
        let deadline = invocation.context.deadline;
        let posted = self.inner.call(invocation);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let result = posted.await;
            metrics
                .on(Moment::ResponsePosted, &request_id, deadline)
                .await;
            result
        })
    }
}

impl LambdaMetrics {
    /// A [`MetricsLayer`] for these metrics, to wrap the handler service.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer::new(self.clone())
    }

    /// An [`AfterResponseLayer`] for these metrics, for
    /// [`lambda_runtime::Runtime::layer`].
    pub fn after_response_layer(&self) -> AfterResponseLayer {
        AfterResponseLayer::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::metrics_writing_to;
    use crate::{Flush, Invocation};
    use edgepush::Metric;
    use lambda_runtime::tower::ServiceExt;
    use lambda_runtime::{Context, service_fn};

    async fn handler(event: LambdaEvent<u32>) -> Result<u32, lambda_runtime::Error> {
        let metrics = Invocation::current()?;
        metrics.dimension("tenant", "acme");
        metrics
            .counter(Metric::new("orders"))?
            .add(f64::from(event.payload));
        Ok(event.payload * 2)
    }

    fn event(id: &str, payload: u32) -> LambdaEvent<u32> {
        let mut context = Context::default();
        context.request_id = id.into();
        LambdaEvent::new(payload, context)
    }

    #[tokio::test]
    async fn end_of_invocation_pushes_before_the_response_and_others_do_not() {
        for (flush, pushed_before_response) in [
            (Flush::EndOfInvocation, true),
            (Flush::AfterResponse, false),
            (
                Flush::Periodic {
                    interval: std::time::Duration::from_secs(60),
                    points: 1,
                },
                false,
            ),
        ] {
            let (m, written) = metrics_writing_to(flush);
            let service = m.layer().layer(service_fn(handler));
            let answer = service.oneshot(event("req-1", 21)).await.expect("handled");
            assert_eq!(answer, 42);
            let docs: Vec<serde_json::Value> = (written.lock().expect("lock").iter())
                .map(|doc| serde_json::from_str(doc).expect("JSON"))
                .collect();
            // One document per dimension set: the tenant's, and ColdStart's.
            let orders = docs.iter().find(|doc| doc["orders"].is_number());
            assert_eq!(orders.is_some(), pushed_before_response, "{flush:?}");
            if let Some(doc) = orders {
                assert_eq!(
                    (doc["orders"].as_f64(), doc["tenant"].as_str()),
                    (Some(21.0), Some("acme"))
                );
                assert_eq!(doc["requestId"], "req-1");
            }
            assert_eq!(
                m.emitter().pending(),
                usize::from(!pushed_before_response) * 2
            );
        }
    }

    #[tokio::test]
    async fn a_handler_error_still_pushes_what_it_recorded() {
        let (m, written) = metrics_writing_to(Flush::EndOfInvocation);
        let failing = service_fn(|_: LambdaEvent<u32>| async {
            Invocation::current()?
                .counter(Metric::new("failures"))?
                .increment();
            Err::<u32, lambda_runtime::Error>("refused".into())
        });
        let err = m
            .layer()
            .layer(failing)
            .oneshot(event("req-1", 1))
            .await
            .expect_err("the handler's error");
        assert_eq!(err.to_string(), "refused");
        assert_eq!(written.lock().expect("lock").len(), 1);
    }
}
