//! The receiver's own metrics, served at `GET /metrics` in the
//! OpenMetrics text format for Prometheus to scrape:
//!
//! | metric | labels | meaning |
//! | --- | --- | --- |
//! | `edgepush_requests_total` | `format`, `tenant`, `status` | pushes answered |
//! | `edgepush_points_accepted_total` | `format`, `tenant` | points that passed validation |
//! | `edgepush_points_refused_total` | `format`, `tenant`, `reason` | points refused by validation (reason: `value`, `timestamp`, `dimension`, `name`, `temporality`, `syntax`, `other`) or by a sink (`sink_refused`) |
//! | `edgepush_requests_refused_total` | `format`, `tenant`, `reason` | whole pushes refused (reason: the error code, such as `invalid_json` or `rate_limited`) |
//! | `edgepush_dedupe_hits_total` | `format`, `tenant` | retries recognised and not forwarded again |
//! | `edgepush_sink_requests_total` | `sink`, `outcome` | requests to sinks (`2xx`, `4xx`, `5xx`, `error`) |
//! | `edgepush_sink_request_duration_seconds` | `sink` | their latency |
//! | `edgepush_sink_retries_total` | `sink` | requests tried again |
//! | `edgepush_spool_bytes` | `sink` | bytes waiting in a sink's spool |
//! | `edgepush_aggregation_pushes_total` | | pushes merged into the aggregator |
//! | `edgepush_aggregation_points_merged_total` | | points merged into a series and period already open |
//! | `edgepush_aggregation_late_points_total` | | points for a period already over when they arrived (merged, and emitted again) |
//! | `edgepush_aggregation_open` | | series and periods open |
//! | `edgepush_aggregation_bytes` | | memory the aggregator holds, estimated, with batches waiting for a sink |
//! | `edgepush_aggregation_flushes_total` | `reason` | flushes (`interval`, `full`, `shutdown`) |
//! | `edgepush_aggregation_flush_duration_seconds` | | how long a flush took, its deliveries included |
//! | `edgepush_aggregation_batches_total` | `sink` | merged batches delivered to a sink (each one request or more) |
//! | `edgepush_aggregation_sink_requests_saved_total` | | sink requests not made thanks to merging: per flush, for each aggregated sink, the pushes merged less the batches sent (at least one request each) |
//!
//! Tenants are the configured ones (a bounded set); an unauthenticated
//! request counts under `tenant=""`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use edgepush_receiver::sink::{Client, Sent};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    format: &'static str,
    tenant: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pushed {
    format: &'static str,
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refused {
    format: &'static str,
    tenant: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkOutcome {
    sink: &'static str,
    outcome: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The receiver's own metrics (cheap to clone: shared).
#[derive(Clone, Debug)]
pub struct Telemetry(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: Family<Request, Counter>,
    accepted: Family<Pushed, Counter>,
    refused: Family<Refused, Counter>,
    requests_refused: Family<Refused, Counter>,
    dedupe_hits: Family<Pushed, Counter>,
    sink_requests: Family<SinkOutcome, Counter>,
    sink_duration: Family<SinkLabel, Histogram, fn() -> Histogram>,
    sink_retries: Family<SinkLabel, Counter>,
    spool_bytes: Family<SinkLabel, Gauge>,
    aggregation: Aggregation,
}

/// The aggregator's metrics.
#[derive(Debug)]
struct Aggregation {
    pushes: Counter,
    merged: Counter,
    late: Counter,
    open: Gauge,
    bytes: Gauge,
    flushes: Family<FlushReason, Counter>,
    flush_duration: Histogram,
    batches: Family<SinkLabel, Counter>,
    saved: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlushReason {
    reason: &'static str,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edgepush");
        let requests = Family::<Request, Counter>::default();
        let accepted = Family::<Pushed, Counter>::default();
        let refused = Family::<Refused, Counter>::default();
        let requests_refused = Family::<Refused, Counter>::default();
        let dedupe_hits = Family::<Pushed, Counter>::default();
        let sink_requests = Family::<SinkOutcome, Counter>::default();
        let sink_duration = Family::<SinkLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let sink_retries = Family::<SinkLabel, Counter>::default();
        let spool_bytes = Family::<SinkLabel, Gauge>::default();
        registry.register("requests", "Pushes answered", requests.clone());
        registry.register(
            "points_accepted",
            "Points that passed validation",
            accepted.clone(),
        );
        registry.register(
            "points_refused",
            "Points refused by validation or by a sink",
            refused.clone(),
        );
        registry.register(
            "requests_refused",
            "Whole pushes refused, by error code",
            requests_refused.clone(),
        );
        registry.register(
            "dedupe_hits",
            "Retries recognised and not forwarded again",
            dedupe_hits.clone(),
        );
        registry.register(
            "sink_requests",
            "Requests to sinks, by outcome",
            sink_requests.clone(),
        );
        registry.register(
            "sink_request_duration_seconds",
            "Latency of requests to sinks",
            sink_duration.clone(),
        );
        registry.register(
            "sink_retries",
            "Sink requests tried again",
            sink_retries.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes waiting in a sink's spool",
            spool_bytes.clone(),
        );
        let aggregation = Aggregation {
            pushes: Counter::default(),
            merged: Counter::default(),
            late: Counter::default(),
            open: Gauge::default(),
            bytes: Gauge::default(),
            flushes: Family::default(),
            flush_duration: duration_histogram(),
            batches: Family::default(),
            saved: Counter::default(),
        };
        {
            let a = &aggregation;
            let sub = registry.sub_registry_with_prefix("aggregation");
            sub.register(
                "pushes",
                "Pushes merged into the aggregator",
                a.pushes.clone(),
            );
            sub.register(
                "points_merged",
                "Points merged into a series and period already open",
                a.merged.clone(),
            );
            sub.register(
                "late_points",
                "Points for a period already over when they arrived",
                a.late.clone(),
            );
            sub.register("open", "Series and periods open", a.open.clone());
            sub.register(
                "bytes",
                "Memory the aggregator holds, estimated",
                a.bytes.clone(),
            );
            sub.register("flushes", "Flushes, by reason", a.flushes.clone());
            sub.register(
                "flush_duration_seconds",
                "How long a flush took, deliveries included",
                a.flush_duration.clone(),
            );
            sub.register(
                "batches",
                "Merged batches delivered to a sink",
                a.batches.clone(),
            );
            sub.register(
                "sink_requests_saved",
                "Sink requests not made thanks to merging",
                a.saved.clone(),
            );
        }
        Telemetry(Arc::new(Inner {
            registry,
            requests,
            accepted,
            refused,
            requests_refused,
            dedupe_hits,
            sink_requests,
            sink_duration,
            sink_retries,
            spool_bytes,
            aggregation,
        }))
    }
}

/// The category of a point refusal, from its reason (a bounded label).
pub fn refusal_reason(reason: &str) -> &'static str {
    let has = |s: &str| reason.contains(s);
    if has("cumulative") || has("temporality") {
        "temporality"
    } else if has("timestamp") || has("timeUnixNano") {
        "timestamp"
    } else if has("dimension") || has("attribute") || has("label") {
        "dimension"
    } else if has("metric name") {
        "name"
    } else if has("value") || has("count") || has("bucket") || has("NaN") {
        "value"
    } else if has("invalid line protocol") || has("not a") || has("quoted") || has("closed") {
        "syntax"
    } else {
        "other"
    }
}

impl Telemetry {
    /// Counts a push answered with `status`.
    pub fn request(&self, format: &'static str, tenant: &str, status: u16) {
        self.0
            .requests
            .get_or_create(&Request {
                format,
                tenant: tenant.to_string(),
                status,
            })
            .inc();
    }

    /// Counts a push refused as a whole with the error code `code`.
    pub fn request_refused(&self, format: &'static str, tenant: &str, code: &'static str) {
        self.0
            .requests_refused
            .get_or_create(&Refused {
                format,
                tenant: tenant.to_string(),
                reason: code,
            })
            .inc();
    }

    /// Counts the points of a decoded push: `accepted`, and each refusal's
    /// reason.
    pub fn points<'r>(
        &self,
        format: &'static str,
        tenant: &str,
        accepted: usize,
        refused: impl IntoIterator<Item = &'r str>,
    ) {
        let pushed = Pushed {
            format,
            tenant: tenant.to_string(),
        };
        self.0
            .accepted
            .get_or_create(&pushed)
            .inc_by(accepted as u64);
        for reason in refused {
            self.points_refused(format, tenant, refusal_reason(reason), 1);
        }
    }

    /// Counts `n` points refused for `reason`.
    pub fn points_refused(&self, format: &'static str, tenant: &str, reason: &'static str, n: u64) {
        self.0
            .refused
            .get_or_create(&Refused {
                format,
                tenant: tenant.to_string(),
                reason,
            })
            .inc_by(n);
    }

    /// Counts a retry recognised as such.
    pub fn dedupe_hit(&self, format: &'static str, tenant: &str) {
        self.0
            .dedupe_hits
            .get_or_create(&Pushed {
                format,
                tenant: tenant.to_string(),
            })
            .inc();
    }

    /// Counts a push merged into the aggregator: its points merged into an
    /// open period, and those late.
    pub fn aggregated(&self, merged: usize, late: usize) {
        let a = &self.0.aggregation;
        a.pushes.inc();
        a.merged.inc_by(merged as u64);
        a.late.inc_by(late as u64);
    }

    /// Sets what the aggregator holds: series and periods open, and bytes.
    pub fn aggregator_holds(&self, open: usize, bytes: usize) {
        let a = &self.0.aggregation;
        a.open.set(i64::try_from(open).unwrap_or(i64::MAX));
        a.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a flush for `reason` that took `took`, and the sink requests
    /// it saved.
    pub fn flushed(&self, reason: &'static str, took: Duration, saved: u64) {
        let a = &self.0.aggregation;
        a.flushes.get_or_create(&FlushReason { reason }).inc();
        a.flush_duration.observe(took.as_secs_f64());
        a.saved.inc_by(saved);
    }

    /// Counts a merged batch `sink` took.
    pub fn merged_batch(&self, sink: &'static str) {
        self.0
            .aggregation
            .batches
            .get_or_create(&SinkLabel { sink })
            .inc();
    }

    /// Sets the bytes waiting in `sink`'s spool.
    pub fn spool_bytes(&self, sink: &'static str, bytes: u64) {
        self.0
            .spool_bytes
            .get_or_create(&SinkLabel { sink })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn sink_request(&self, sink: &'static str, outcome: &'static str, took: Duration) {
        self.0
            .sink_requests
            .get_or_create(&SinkOutcome { sink, outcome })
            .inc();
        self.0
            .sink_duration
            .get_or_create(&SinkLabel { sink })
            .observe(took.as_secs_f64());
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }

    /// `client`, counting and timing its requests to `sink`.
    pub fn measure<'a, C: Client>(&'a self, client: &'a C, sink: &'static str) -> Measured<'a, C> {
        Measured {
            client,
            sink,
            telemetry: self,
        }
    }
}

/// A sink [`Client`] whose requests are counted and timed.
#[derive(Debug)]
pub struct Measured<'a, C> {
    client: &'a C,
    sink: &'static str,
    telemetry: &'a Telemetry,
}

impl<C: Client> Client for Measured<'_, C> {
    async fn send(&self, request: &http::Request<Vec<u8>>) -> Sent {
        let start = Instant::now();
        let reply = self.client.send(request).await;
        let outcome = match &reply {
            Ok(a) if (200..300).contains(&a.status) => "2xx",
            Ok(a) if (400..500).contains(&a.status) => "4xx",
            Ok(_) => "5xx",
            Err(_) => "error",
        };
        self.telemetry
            .sink_request(self.sink, outcome, start.elapsed());
        reply
    }

    async fn sleep(&self, duration: Duration) {
        // The sinks' delivery sleeps only before trying a request again.
        self.telemetry
            .0
            .sink_retries
            .get_or_create(&SinkLabel { sink: self.sink })
            .inc();
        self.client.sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_a_bounded_set() {
        for (reason, category) in [
            ("value is NaN or infinite", "value"),
            ("timestamp is more than 14 days old", "timestamp"),
            ("31 dimensions, more than the 30 allowed", "dimension"),
            ("metric name is empty", "name"),
            (
                edgepush_receiver::decode::otlp::CUMULATIVE_REFUSED,
                "temporality",
            ),
            ("invalid line protocol: No fields were provided", "syntax"),
            ("something else", "other"),
        ] {
            assert_eq!(refusal_reason(reason), category, "{reason}");
        }
    }

    #[test]
    fn encodes_what_was_counted() {
        let t = Telemetry::default();
        t.request("otlp", "shop", 200);
        t.points("otlp", "shop", 3, ["value is NaN or infinite"]);
        let text = t.encode();
        assert!(
            text.contains(r#"edgepush_requests_total{format="otlp",tenant="shop",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"edgepush_points_accepted_total{format="otlp",tenant="shop"} 3"#));
        assert!(text.contains(
            r#"edgepush_points_refused_total{format="otlp",tenant="shop",reason="value"} 1"#
        ));
    }

    /// Answers a script of replies, one per request.
    struct Script(std::sync::Mutex<Vec<Sent>>);

    impl Client for Script {
        async fn send(&self, _: &http::Request<Vec<u8>>) -> Sent {
            self.0
                .lock()
                .map(|mut replies| replies.remove(0))
                .unwrap_or_else(|e| Err(e.to_string()))
        }

        async fn sleep(&self, _: Duration) {}
    }

    #[test]
    fn sink_requests_are_counted_by_outcome_with_their_retries() {
        use edgepush_receiver::sink::SinkAnswer;
        let t = Telemetry::default();
        let script = Script(std::sync::Mutex::new(vec![
            Err("connection refused".into()),
            Ok(SinkAnswer::new(503, Vec::new())),
            Ok(SinkAnswer::new(204, Vec::new())),
        ]));
        let client = t.measure(&script, "influxdb");
        let request = http::Request::new(Vec::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            for _ in 0..3 {
                let _ = client.send(&request).await;
                client.sleep(Duration::ZERO).await;
            }
        });
        t.spool_bytes("influxdb", 4096);
        let text = t.encode();
        for line in [
            r#"edgepush_sink_requests_total{sink="influxdb",outcome="error"} 1"#,
            r#"edgepush_sink_requests_total{sink="influxdb",outcome="5xx"} 1"#,
            r#"edgepush_sink_requests_total{sink="influxdb",outcome="2xx"} 1"#,
            r#"edgepush_sink_retries_total{sink="influxdb"} 3"#,
            r#"edgepush_sink_request_duration_seconds_count{sink="influxdb"} 3"#,
            r#"edgepush_spool_bytes{sink="influxdb"} 4096"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
