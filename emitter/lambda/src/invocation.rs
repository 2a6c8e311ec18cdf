//! [`Invocation`]: one invocation's view of the metrics, reached from the
//! handler through [`Invocation::current`].

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use edgepush::limits::MAX_DIMENSIONS;
use edgepush::{Counter, Distribution, Emitter, Gauge, Key, Metric, Statistics};

use crate::error::{Error, Result};
use crate::metrics::LambdaMetrics;

tokio::task_local! {
    /// The invocation the task is handling.
    static CURRENT: Invocation;
}

/// One invocation's view of the metrics. Metrics registered through it
/// carry its dimensions, which stay its own when several invocations share
/// the process.
///
/// Cheap to clone; clones are the same invocation (a dimension added
/// through one applies to all).
#[derive(Clone, Debug)]
pub struct Invocation {
    metrics: LambdaMetrics,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    request_id: String,
    cold: bool,
    dimensions: Mutex<Vec<(String, String)>>,
}

impl Invocation {
    pub(crate) fn new(metrics: LambdaMetrics, request_id: String, cold: bool) -> Self {
        Invocation {
            metrics,
            state: Arc::new(State {
                request_id,
                cold,
                dimensions: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The invocation the calling task is handling: inside a handler run
    /// under [`crate::MetricsLayer`] (as [`crate::run`] runs it) or
    /// [`Invocation::scope`]. [`Error::NoInvocation`] elsewhere, and in
    /// tasks the handler spawns (hand them a clone).
    pub fn current() -> Result<Invocation> {
        CURRENT
            .try_with(Invocation::clone)
            .map_err(|_| Error::NoInvocation)
    }

    /// Runs `future` as this invocation's handler: [`Invocation::current`]
    /// inside it is this invocation. For tests, which call a handler with a
    /// [`LambdaMetrics::invocation`].
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Runs `f` with this invocation as the current one.
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.state.request_id
    }

    /// Whether this is the process's first invocation.
    pub fn cold_start(&self) -> bool {
        self.state.cold
    }

    /// Adds a dimension to the metrics registered through this invocation
    /// from now on.
    pub fn dimension(&self, name: impl Into<String>, value: impl Into<String>) -> &Self {
        self.state
            .dimensions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name.into(), value.into()));
        self
    }

    /// The shared emitter.
    pub fn emitter(&self) -> &Emitter {
        self.metrics.emitter()
    }

    fn with_dimensions(&self, mut metric: Metric) -> Metric {
        let dimensions = self
            .state
            .dimensions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, value) in dimensions.iter() {
            metric = metric.dimension(name.clone(), value.clone());
        }
        metric
    }

    /// Runs `f` with `key` and this invocation's dimensions after its own,
    /// gathered on the stack.
    fn with_key<R>(
        &self,
        key: &Key<'_>,
        f: impl FnOnce(&Key<'_>) -> edgepush::Result<R>,
    ) -> edgepush::Result<R> {
        let own = self
            .state
            .dimensions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if own.is_empty() {
            return f(key);
        }
        let given = key.dimension_pairs();
        let count = given.len() + own.len();
        if count > MAX_DIMENSIONS {
            return Err(edgepush::Error::TooManyDimensions {
                name: key.name().to_string(),
                count,
            });
        }
        let mut all = [("", ""); MAX_DIMENSIONS];
        all[..given.len()].copy_from_slice(given);
        for (slot, (name, value)) in all[given.len()..count].iter_mut().zip(own.iter()) {
            *slot = (name.as_str(), value.as_str());
        }
        f(&key.dimensions(&all[..count]))
    }

    /// Adds `v` to the counter `key` with this invocation's dimensions,
    /// found per call without allocating ([`Emitter::add`]).
    pub fn add(&self, key: &Key<'_>, v: f64) -> edgepush::Result<()> {
        self.with_key(key, |k| self.emitter().add(k, v))
    }

    /// Sets the gauge `key` with this invocation's dimensions
    /// ([`Emitter::set`]).
    pub fn set(&self, key: &Key<'_>, v: f64) -> edgepush::Result<()> {
        self.with_key(key, |k| self.emitter().set(k, v))
    }

    /// Records `v` into the distribution `key` with this invocation's
    /// dimensions ([`Emitter::record`]).
    pub fn record(&self, key: &Key<'_>, v: f64) -> edgepush::Result<()> {
        self.with_key(key, |k| self.emitter().record(k, v))
    }

    /// Merges a statistic set into `key` with this invocation's dimensions
    /// ([`Emitter::record_statistics`]).
    pub fn record_statistics(
        &self,
        key: &Key<'_>,
        count: f64,
        sum: f64,
        min: f64,
        max: f64,
    ) -> edgepush::Result<()> {
        self.with_key(key, |k| {
            self.emitter().record_statistics(k, count, sum, min, max)
        })
    }

    /// A counter with this invocation's dimensions (registered on first
    /// use, then found again).
    pub fn counter(&self, metric: Metric) -> edgepush::Result<Counter> {
        self.emitter().counter(self.with_dimensions(metric))
    }

    /// A gauge with this invocation's dimensions.
    pub fn gauge(&self, metric: Metric) -> edgepush::Result<Gauge> {
        self.emitter().gauge(self.with_dimensions(metric))
    }

    /// A distribution with this invocation's dimensions.
    pub fn distribution(&self, metric: Metric) -> edgepush::Result<Distribution> {
        self.emitter().distribution(self.with_dimensions(metric))
    }

    /// A statistic set with this invocation's dimensions.
    pub fn statistics(&self, metric: Metric) -> edgepush::Result<Statistics> {
        self.emitter().statistics(self.with_dimensions(metric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flush;
    use crate::metrics::tests::metrics_writing_to;
    use lambda_runtime::Context;

    #[test]
    fn concurrent_invocations_keep_their_own_dimensions_and_one_cold_start() {
        let (m, _) = metrics_writing_to(Flush::EndOfInvocation);
        std::thread::scope(|s| {
            for tenant in ["a", "b", "c"] {
                let m = m.clone();
                s.spawn(move || {
                    for i in 0..200 {
                        let inv = m.invocation(&Context::default());
                        inv.dimension("tenant", tenant);
                        inv.counter(Metric::new("orders"))
                            .expect("counter")
                            .increment();
                        inv.distribution(Metric::new("latency"))
                            .expect("distribution")
                            .record(f64::from(i));
                    }
                });
            }
        });
        let batches = m.emitter().flush_at(1_764_000_000_000).expect("flush");
        let json: serde_json::Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("wire");
        let mut seen = Vec::new();
        for p in json["points"].as_array().expect("points") {
            let series = &json["series"][p["s"].as_u64().expect("s") as usize];
            let tenant = series["d"]["tenant"].as_str().unwrap_or("-").to_string();
            // A counter's sum; a distribution's sample count.
            let total = match (p.get("x"), p.get("cs")) {
                (Some(x), _) => x.as_f64().expect("x"),
                (None, Some(cs)) => cs
                    .as_array()
                    .expect("cs")
                    .iter()
                    .filter_map(|c| c.as_f64())
                    .sum(),
                (None, None) => p["vs"].as_array().expect("vs").len() as f64,
            };
            let key = (series["n"].as_str().expect("n").to_string(), tenant);
            match seen.iter_mut().find(|(n, t, _)| (n, t) == (&key.0, &key.1)) {
                Some(entry) => entry.2 += total,
                None => seen.push((key.0, key.1, total)),
            }
        }
        seen.sort_by(|a, b| a.partial_cmp(b).expect("ordered"));
        let mut want = vec![("ColdStart".to_string(), "-".to_string(), 1.0)];
        for t in ["a", "b", "c"] {
            want.push(("latency".into(), t.into(), 200.0));
        }
        for t in ["a", "b", "c"] {
            want.push(("orders".into(), t.into(), 200.0));
        }
        assert_eq!(seen, want);
    }

    #[test]
    fn keys_per_call_carry_the_invocation_s_dimensions_after_their_own() {
        const ORDERS: Key<'static> = Key::new("orders");
        let (m, _) = metrics_writing_to(Flush::EndOfInvocation);
        let plain = m.invocation(&Context::default());
        let tenant = m.invocation(&Context::default());
        tenant.dimension("tenant", "acme");
        for _ in 0..3 {
            plain.add(&ORDERS, 1.0).expect("add");
            tenant
                .add(&ORDERS.dimensions(&[("route", "/a")]), 2.0)
                .expect("add");
        }
        // The same series through a handle.
        tenant
            .counter(Metric::new("orders").dimension("route", "/a"))
            .expect("counter")
            .add(10.0);
        // Past the limit: refused with the count, nothing recorded.
        let many: Vec<(String, String)> = (0..30)
            .map(|i| (format!("d{i}"), "v".to_string()))
            .collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert!(matches!(
            tenant.add(&ORDERS.dimensions(&pairs), 1.0),
            Err(edgepush::Error::TooManyDimensions { count: 31, .. })
        ));
        let batches = m.emitter().flush_at(1_764_000_000_000).expect("flush");
        let json: serde_json::Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("wire");
        let mut got: Vec<(String, f64)> = json["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| {
                let s = &json["series"][p["s"].as_u64().expect("s") as usize];
                (s["d"].to_string(), p["x"].as_f64().unwrap_or(0.0))
            })
            .filter(|(_, x)| *x > 1.0)
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                ("null".to_string(), 3.0),
                (r#"{"route":"/a","tenant":"acme"}"#.to_string(), 16.0),
            ]
        );
    }

    #[tokio::test]
    async fn the_current_invocation_is_the_scope_s_and_its_dimensions_are_shared() {
        assert!(matches!(Invocation::current(), Err(Error::NoInvocation)));
        let (m, _) = metrics_writing_to(Flush::EndOfInvocation);
        let mut context = Context::default();
        context.request_id = "req-7".into();
        let (first, second) = m
            .invocation(&context)
            .scope(async {
                let inv = Invocation::current().expect("inside");
                inv.dimension("tenant", "acme");
                // Elsewhere in the handler, the same invocation.
                let again = Invocation::current().expect("inside");
                let counter = again.counter(Metric::new("orders")).expect("counter");
                counter.increment();
                (inv.request_id().to_string(), again.cold_start())
            })
            .await;
        assert_eq!((first.as_str(), second), ("req-7", true));
        assert!(matches!(Invocation::current(), Err(Error::NoInvocation)));
        let batches = m.emitter().flush_at(1_764_000_000_000).expect("flush");
        let json: serde_json::Value =
            serde_json::from_slice(&batches[0].json().expect("json")).expect("wire");
        let tenants: Vec<&str> = json["series"]
            .as_array()
            .expect("series")
            .iter()
            .filter(|s| s["n"] == "orders")
            .map(|s| s["d"]["tenant"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(tenants, ["acme"]);
    }
}
