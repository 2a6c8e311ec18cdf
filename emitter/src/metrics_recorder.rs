//! A [`metrics::Recorder`]: code instrumented with the `metrics` crate's
//! macros (`counter!`, `gauge!`, `histogram!`) pushes through edgepush
//! unchanged.
//!
//! Labels become dimensions (at most 30 with the emitter's common ones);
//! units given with `describe_*!` before a metric's first use become its
//! CloudWatch unit. Histograms become distributions. A registration edgepush
//! refuses (an invalid name or label) gives a handle that records nothing,
//! and is counted in [`TelemetrySnapshot::invalid_values`](crate::TelemetrySnapshot).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

use metrics::{Key, KeyName, Metadata, SharedString};
use portable_atomic::AtomicU64;

use crate::{Emitter, Metric, Unit};

/// Records `metrics` facade calls into an [`Emitter`].
///
/// ```
/// use edgepush::{Config, Emitter, MetricsRecorder};
///
/// let emitter = Emitter::new(Config::new("Shop")?);
/// let recorder = MetricsRecorder::new(emitter.clone());
/// metrics::with_local_recorder(&recorder, || {
///     metrics::describe_histogram!("latency", metrics::Unit::Milliseconds, "request latency");
///     metrics::counter!("orders", "route" => "/buy").increment(1);
///     metrics::histogram!("latency", "route" => "/buy").record(12.5);
/// });
/// assert_eq!(emitter.flush_at(0)?.iter().map(|b| b.points()).sum::<usize>(), 2);
/// # Ok::<(), edgepush::Error>(())
/// ```
#[derive(Debug)]
pub struct MetricsRecorder {
    emitter: Emitter,
    units: spin::Mutex<BTreeMap<String, Unit>>,
}

impl MetricsRecorder {
    /// A recorder into `emitter`.
    pub fn new(emitter: Emitter) -> Self {
        MetricsRecorder {
            emitter,
            units: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// Installs this recorder as the process-wide `metrics` recorder.
    pub fn install(self) -> Result<(), metrics::SetRecorderError<Self>> {
        metrics::set_global_recorder(self)
    }

    fn describe(&self, key: KeyName, unit: Option<metrics::Unit>) {
        if let Some(unit) = unit.map(cloudwatch_unit) {
            self.units.lock().insert(key.as_str().to_string(), unit);
        }
    }

    fn metric(&self, key: &Key) -> Metric {
        let name = key.name();
        let unit = self.units.lock().get(name).copied().unwrap_or_default();
        key.labels().fold(Metric::new(name).unit(unit), |m, label| {
            m.dimension(label.key(), label.value())
        })
    }

    fn refused(&self) {
        self.emitter
            .shared_telemetry()
            .invalid_values
            .fetch_add(1, Relaxed);
    }
}

/// The CloudWatch unit for a `metrics` unit. Units CloudWatch lacks
/// (nanoseconds) become `None`; binary byte multiples map to CloudWatch's
/// byte multiples, which are binary too.
pub fn cloudwatch_unit(unit: metrics::Unit) -> Unit {
    use metrics::Unit as M;
    match unit {
        M::Count => Unit::Count,
        M::Percent => Unit::Percent,
        M::Seconds => Unit::Seconds,
        M::Milliseconds => Unit::Milliseconds,
        M::Microseconds => Unit::Microseconds,
        M::Nanoseconds => Unit::None,
        M::Tebibytes => Unit::Terabytes,
        M::Gibibytes => Unit::Gigabytes,
        M::Mebibytes => Unit::Megabytes,
        M::Kibibytes => Unit::Kilobytes,
        M::Bytes => Unit::Bytes,
        M::TerabitsPerSecond => Unit::TerabitsPerSecond,
        M::GigabitsPerSecond => Unit::GigabitsPerSecond,
        M::MegabitsPerSecond => Unit::MegabitsPerSecond,
        M::KilobitsPerSecond => Unit::KilobitsPerSecond,
        M::BitsPerSecond => Unit::BitsPerSecond,
        M::CountPerSecond => Unit::CountPerSecond,
    }
}

impl metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<metrics::Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<metrics::Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<metrics::Unit>, _: SharedString) {
        self.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        match self.emitter.counter(self.metric(key)) {
            Ok(counter) => metrics::Counter::from_arc(Arc::new(CounterAdapter {
                counter,
                absolute: AtomicU64::new(0),
            })),
            Err(_) => {
                self.refused();
                metrics::Counter::noop()
            }
        }
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        match self.emitter.gauge(self.metric(key)) {
            Ok(gauge) => metrics::Gauge::from_arc(Arc::new(GaugeAdapter {
                gauge,
                current: AtomicU64::new(0f64.to_bits()),
            })),
            Err(_) => {
                self.refused();
                metrics::Gauge::noop()
            }
        }
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        match self.emitter.distribution(self.metric(key)) {
            Ok(distribution) => metrics::Histogram::from_arc(Arc::new(distribution)),
            Err(_) => {
                self.refused();
                metrics::Histogram::noop()
            }
        }
    }
}

/// `metrics` counters count up in integers, and may report an absolute value.
struct CounterAdapter {
    counter: crate::Counter,
    /// The last absolute value reported through this handle.
    absolute: AtomicU64,
}

impl metrics::CounterFn for CounterAdapter {
    fn increment(&self, value: u64) {
        self.counter.add(value as f64);
    }

    fn absolute(&self, value: u64) {
        let previous = self.absolute.swap(value, AcqRel);
        // A smaller absolute value is a reset: count from zero again.
        let delta = if value >= previous {
            value - previous
        } else {
            value
        };
        if delta > 0 {
            self.counter.add(delta as f64);
        }
    }
}

/// `metrics` gauges keep their value across flushes and move by increments;
/// the adapter keeps the running value and sets the edgepush gauge to it.
struct GaugeAdapter {
    gauge: crate::Gauge,
    current: AtomicU64,
}

impl GaugeAdapter {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut next = 0.0;
        let _ = self.current.fetch_update(AcqRel, Acquire, |bits| {
            next = f(f64::from_bits(bits));
            Some(next.to_bits())
        });
        self.gauge.set(next);
    }
}

impl metrics::GaugeFn for GaugeAdapter {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

impl metrics::HistogramFn for crate::Distribution {
    fn record(&self, value: f64) {
        crate::Distribution::record(self, value);
    }

    fn record_many(&self, value: f64, count: usize) {
        crate::Distribution::record_many(self, value, u32::try_from(count).unwrap_or(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use edgepush_protocol::wire;

    #[test]
    fn facade_calls_become_edgepush_series() {
        let emitter = Emitter::new(Config::new("Facade").expect("ns"));
        let recorder = MetricsRecorder::new(emitter.clone());
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!("orders", metrics::Unit::Count, "orders taken");
            metrics::describe_histogram!("latency", metrics::Unit::Milliseconds, "latency");
            let orders = metrics::counter!("orders", "route" => "/buy", "method" => "POST");
            orders.increment(2);
            orders.increment(3);
            let absolute = metrics::counter!("total");
            absolute.absolute(10);
            absolute.absolute(15);
            let queue = metrics::gauge!("queue");
            queue.increment(5.0);
            queue.decrement(2.0);
            let latency = metrics::histogram!("latency", "route" => "/buy");
            latency.record(10.0);
            latency.record(10.0);
            latency.record(30.0);
            metrics::counter!("_bad").increment(1);
        });
        assert_eq!(
            emitter.telemetry().invalid_values,
            1,
            "the refused name is counted"
        );

        let batch = &emitter.flush_at(0).expect("flush")[0];
        let json = batch.json().expect("json");
        let b: wire::Batch<'_> = serde_json::from_slice(&json).expect("wire");
        let point = |name: &str| {
            let i = b.series.iter().position(|s| s.n == name).expect(name);
            (
                &b.series[i],
                b.points.iter().find(|p| p.s as usize == i).expect("point"),
            )
        };
        let (s, p) = point("orders");
        assert_eq!((s.u.as_deref(), p.x), (Some("Count"), Some(5.0)));
        assert_eq!(
            s.d.0,
            [
                ("method".into(), "POST".into()),
                ("route".into(), "/buy".into())
            ]
        );
        assert_eq!(point("total").1.x, Some(15.0));
        let (_, p) = point("queue");
        assert_eq!((p.x, p.st), (Some(3.0), Some([2.0, 8.0, 3.0, 5.0])));
        let (s, p) = point("latency");
        assert_eq!(s.u.as_deref(), Some("Milliseconds"));
        assert_eq!(
            (p.vs.as_deref(), p.cs.as_deref()),
            (Some(&[10.0, 30.0][..]), Some(&[2.0, 1.0][..]))
        );
    }
}
