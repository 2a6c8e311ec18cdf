//! The platform's own metrics, from the Telemetry API's platform events as
//! Lambda reports them (no guesses): per invocation its outcome
//! (`Invocations`; `Errors` for every status but success, `Timeouts` and
//! `OutOfMemory` among them, by the status and error type the runtime
//! reported), `Duration`, `BilledDuration`, `MaxMemoryUsed` and
//! `MemorySize`; per environment `InitDuration`. The function's dimensions
//! (`FunctionName`, `FunctionVersion`) come from the emitter's
//! configuration. Sans-IO: events in, metrics recorded, and what the
//! caller waits for (an invocation done, its report) handed back.

use std::collections::VecDeque;

use edgepush::{Counter, Distribution, Emitter, Gauge, Metric, Unit};
use lambda_extension::{LambdaTelemetry, LambdaTelemetryRecord, Status};
use serde_json::Value;

/// What an event tells the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The runtime is done with this invocation (its response or error is
    /// posted, or it timed out).
    RuntimeDone(String),
    /// The invocation's report: nothing more comes about it.
    Report(String),
    /// Nothing to wait for.
    Other,
}

/// Request ids whose outcome was counted, so that a report after the
/// runtime's own event does not count it again.
const REMEMBERED: usize = 64;

/// The platform metrics' handles.
#[derive(Debug)]
pub struct Platform {
    invocations: Counter,
    errors: Counter,
    timeouts: Counter,
    out_of_memory: Counter,
    init_duration: Distribution,
    duration: Distribution,
    billed_duration: Distribution,
    max_memory_used: Distribution,
    memory_size: Gauge,
    counted: VecDeque<String>,
    record: bool,
}

impl Platform {
    /// The platform metrics of `emitter`; `record` off reads the events
    /// for what they tell the caller and records nothing.
    pub fn new(emitter: &Emitter, record: bool) -> edgepush::Result<Self> {
        let count = |name| emitter.counter(Metric::new(name).unit(Unit::Count));
        let ms = |name| emitter.distribution(Metric::new(name).unit(Unit::Milliseconds));
        Ok(Platform {
            invocations: count("Invocations")?,
            errors: count("Errors")?,
            timeouts: count("Timeouts")?,
            out_of_memory: count("OutOfMemory")?,
            init_duration: ms("InitDuration")?,
            duration: ms("Duration")?,
            billed_duration: ms("BilledDuration")?,
            max_memory_used: emitter
                .distribution(Metric::new("MaxMemoryUsed").unit(Unit::Megabytes))?,
            memory_size: emitter.gauge(Metric::new("MemorySize").unit(Unit::Megabytes))?,
            counted: VecDeque::new(),
            record,
        })
    }

    /// Reads one event as the Telemetry API sends it (`{"time", "type",
    /// "record"}`); events of other types, and those this reader does not
    /// know, are [`Seen::Other`].
    pub fn event(&mut self, event: Value) -> Seen {
        let Ok(event) = serde_json::from_value::<LambdaTelemetry<Value>>(event) else {
            return Seen::Other;
        };
        match event.record {
            LambdaTelemetryRecord::PlatformInitReport { metrics, .. } => {
                if self.record {
                    self.init_duration.record(metrics.duration_ms);
                }
                Seen::Other
            }
            LambdaTelemetryRecord::PlatformRuntimeDone {
                request_id,
                status,
                error_type,
                ..
            } => {
                self.outcome(&request_id, &status, error_type.as_deref());
                Seen::RuntimeDone(request_id)
            }
            LambdaTelemetryRecord::PlatformReport {
                request_id,
                status,
                error_type,
                metrics,
                ..
            } => {
                self.outcome(&request_id, &status, error_type.as_deref());
                if self.record {
                    self.duration.record(metrics.duration_ms);
                    self.billed_duration
                        .record(metrics.billed_duration_ms as f64);
                    self.max_memory_used
                        .record(metrics.max_memory_used_mb as f64);
                    self.memory_size.set(metrics.memory_size_mb as f64);
                }
                Seen::Report(request_id)
            }
            _ => Seen::Other,
        }
    }

    /// Counts the outcome of `request_id` once, from whichever of its
    /// events comes first (the runtime's, or the report when Lambda ended
    /// the runtime before it could say).
    fn outcome(&mut self, request_id: &str, status: &Status, error_type: Option<&str>) {
        if self.counted.iter().any(|id| id == request_id) {
            return;
        }
        if self.counted.len() >= REMEMBERED {
            self.counted.pop_front();
        }
        self.counted.push_back(request_id.to_string());
        if !self.record {
            return;
        }
        self.invocations.increment();
        if *status != Status::Success {
            self.errors.increment();
        }
        if *status == Status::Timeout {
            self.timeouts.increment();
        }
        if error_type.is_some_and(|t| t.ends_with("OutOfMemory")) {
            self.out_of_memory.increment();
        }
    }
}

#[cfg(test)]
mod tests {
    use edgepush::Config;
    use serde_json::json;

    use super::*;
    use crate::testing::sums;

    fn event(kind: &str, record: Value) -> Value {
        json!({"time": "2026-12-05T10:00:00.000Z", "type": kind, "record": record})
    }

    fn report(id: &str, status: &str, error_type: Option<&str>, duration: f64) -> Value {
        let mut record = json!({
            "requestId": id,
            "status": status,
            "metrics": {
                "durationMs": duration,
                "billedDurationMs": duration.ceil() as u64,
                "memorySizeMB": 128,
                "maxMemoryUsedMB": 40,
            },
        });
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        event("platform.report", record)
    }

    fn done(id: &str, status: &str, error_type: Option<&str>) -> Value {
        let mut record = json!({"requestId": id, "status": status});
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        event("platform.runtimeDone", record)
    }

    #[test]
    fn outcomes_come_from_the_reported_status_and_error_type_once_each() {
        let emitter = Emitter::new(Config::new("Test").expect("config"));
        let mut platform = Platform::new(&emitter, true).expect("platform");
        let init = json!({
            "initializationType": "on-demand", "phase": "init",
            "metrics": {"durationMs": 120.5},
        });
        assert_eq!(
            platform.event(event("platform.initReport", init)),
            Seen::Other
        );
        assert_eq!(
            platform.event(done("a", "success", None)),
            Seen::RuntimeDone("a".into())
        );
        assert_eq!(
            platform.event(report("a", "success", None, 10.25)),
            Seen::Report("a".into())
        );
        platform.event(done("b", "error", Some("Runtime.OutOfMemory")));
        platform.event(report("b", "error", Some("Runtime.OutOfMemory"), 20.0));
        platform.event(done("c", "timeout", None));
        platform.event(report("c", "timeout", None, 3000.0));
        // Ended before the runtime could say: the report counts it.
        platform.event(report("d", "error", Some("Runtime.ExitError"), 5.5));
        platform.event(done("e", "failure", Some("Runtime.Unknown")));
        // Unknown and malformed events are read as nothing.
        assert_eq!(
            platform.event(event("platform.restoreStart", json!({}))),
            Seen::Other
        );
        assert_eq!(
            platform.event(json!({"type": "platform.report"})),
            Seen::Other
        );
        let sums = sums(&emitter);
        assert_eq!(sums["Invocations"], (5.0, 1.0));
        assert_eq!(sums["Errors"], (4.0, 1.0));
        assert_eq!(sums["Timeouts"], (1.0, 1.0));
        assert_eq!(sums["OutOfMemory"], (1.0, 1.0));
        assert_eq!(sums["InitDuration"], (120.5, 1.0));
        assert_eq!(sums["Duration"], (10.25 + 20.0 + 3000.0 + 5.5, 4.0));
        assert_eq!(sums["BilledDuration"], (11.0 + 20.0 + 3000.0 + 6.0, 4.0));
        assert_eq!(sums["MaxMemoryUsed"], (160.0, 4.0));
        // A gauge keeps each value set.
        assert_eq!(sums["MemorySize"], (4.0 * 128.0, 4.0));
    }

    #[test]
    fn switched_off_it_records_nothing_and_still_says_what_happened() {
        let emitter = Emitter::new(Config::new("Test").expect("config"));
        let mut platform = Platform::new(&emitter, false).expect("platform");
        assert_eq!(
            platform.event(done("a", "success", None)),
            Seen::RuntimeDone("a".into())
        );
        assert_eq!(
            platform.event(report("a", "success", None, 1.0)),
            Seen::Report("a".into())
        );
        assert!(sums(&emitter).is_empty());
    }
}
