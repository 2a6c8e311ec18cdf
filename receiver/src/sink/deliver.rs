//! Delivering a batch to one sink through a small [`Client`] trait, with
//! bounded retries. The same code runs natively (reqwest, tokio's timer) and
//! at the edge (`fetch`, a JS timer): only the client differs.

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::{Encoder, Outcome};
use crate::model::{Batch, Value};

/// A sink's answer to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkAnswer {
    /// HTTP status.
    pub status: u16,
    /// The `Retry-After` the sink asked for, in seconds form.
    pub retry_after: Option<Duration>,
    /// The body (for error messages).
    pub body: Vec<u8>,
}

impl SinkAnswer {
    /// An answer without `Retry-After`.
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        SinkAnswer {
            status,
            retry_after: None,
            body,
        }
    }
}

/// Reads a `Retry-After` header value in its seconds form (the HTTP-date
/// form is not used by the sinks edgepush talks to, and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// What sending a request to a sink came to: its answer, or why none came.
pub type Sent = Result<SinkAnswer, String>;

/// Sends HTTP requests and waits between tries.
pub trait Client {
    /// Sends `request`; the answer, or why none came.
    fn send(&self, request: &http::Request<Vec<u8>>) -> impl Future<Output = Sent>;

    /// Waits `duration` before the next try.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;
}

/// How often a request is tried and how long to wait between tries: the
/// wait doubles after each try, with jitter (each wait is between half and
/// all of its nominal value, so emitters that failed together do not retry
/// together), and a sink's `Retry-After` is honoured up to `max_wait`. A
/// sink that asks for a longer wait is not retried now: the failure is
/// reported as retryable, and the batch is sent again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, at least 1.
    pub attempts: u32,
    /// Nominal wait before the second try.
    pub backoff: Duration,
    /// The longest single wait.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// Between half and all of `nominal`, chosen from `seed` and `attempt`
/// (FNV-1a; deterministic, so tests can predict it, and spread over batches).
fn jittered(nominal: Duration, seed: &str, attempt: u32) -> Duration {
    let hash = seed
        .bytes()
        .chain(attempt.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let fraction = (hash >> 11) as f64 / (1u64 << 53) as f64;
    nominal.mul_f64(0.5 + 0.5 * fraction)
}

/// A sink that did not take a batch, or not all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkFailure {
    /// The sink's name.
    pub sink: &'static str,
    /// Whether the client should send the batch again later.
    pub retryable: bool,
    /// What went wrong.
    pub message: String,
    /// How many of the batch's points (from the first) the sink took or
    /// refused for good before it failed: a retry sends only the rest, so
    /// nothing is stored twice.
    pub done: usize,
}

/// Points a sink refused for good while it took the rest of their batch
/// (a request CloudWatch refused, InfluxDB's partial writes).
pub use edgepush_protocol::answer::SinkRefusal;

/// Sends every request that delivers `batch` to `sink` (signed at `now`),
/// retrying what is worth retrying. A request the sink refuses for good
/// does not stop the others: its points are reported as refused. When a
/// request still fails after the retries, the failure says how many points
/// were done before it, so that a retry does not send them again. Every
/// point refused: a failure that is not retryable.
pub async fn deliver<C: Client, E: Encoder + ?Sized>(
    client: &C,
    sink: &E,
    batch: &Batch,
    now: SystemTime,
    retry: Retry,
) -> Result<Vec<SinkRefusal>, SinkFailure> {
    let fail = |retryable, message, done| SinkFailure {
        sink: sink.name(),
        retryable,
        message,
        done,
    };
    let unstorable = sink.unstorable(batch);
    if covers(&unstorable, batch) {
        return Ok(unstorable);
    }
    let parts = sink.parts(batch, now).map_err(|e| fail(false, e, 0))?;
    let mut refusals: Vec<SinkRefusal> = Vec::new();
    for part in &parts {
        let request = &part.request;
        let mut nominal = retry.backoff;
        let mut attempt = 1;
        loop {
            let (outcome, retry_after) = match client.send(request).await {
                Ok(answer) => (
                    sink.classify(answer.status, &answer.body),
                    answer.retry_after,
                ),
                Err(e) => (Outcome::Retry(e), None),
            };
            match outcome {
                Outcome::Delivered => break,
                Outcome::Fail(message) => {
                    let points = sink.refused_points(batch, part.points.clone(), &message);
                    refusals.push(refusal(sink.name(), batch, points, message));
                    break;
                }
                Outcome::Retry(message) if attempt >= retry.attempts.max(1) => {
                    return Err(fail(true, message, part.points.start));
                }
                Outcome::Retry(message) => {
                    let wait = match retry_after {
                        Some(asked) if asked > retry.max_wait => {
                            return Err(fail(
                                true,
                                format!("{message} (asked to wait {asked:?})"),
                                part.points.start,
                            ));
                        }
                        Some(asked) => asked,
                        None => jittered(nominal, &batch.id, attempt).min(retry.max_wait),
                    };
                    tracing::debug!(sink = sink.name(), attempt, ?wait, message = %message, "retrying");
                    client.sleep(wait).await;
                    nominal = nominal.saturating_mul(2);
                    attempt += 1;
                }
            }
        }
    }
    refusals.extend(unstorable);
    settle(sink.name(), batch, refusals)
}

/// Whether `refusals` name every point of `batch` (refused before any
/// request: there is nothing to send, and nothing failed).
pub fn covers(refusals: &[SinkRefusal], batch: &Batch) -> bool {
    !refusals.is_empty()
        && refusals.iter().map(|r| r.points.len()).sum::<usize>() >= batch.points.len()
}

/// The points of `batch` whose values `sink` cannot store (`refused`),
/// one refusal per kind of value (`string value: <why>`, `boolean value:
/// <why>`), made before any request.
pub fn refuse_values(
    sink: &'static str,
    batch: &Batch,
    refused: impl Fn(&Value) -> bool,
    why: &str,
) -> Vec<SinkRefusal> {
    let mut by_kind: Vec<(&'static str, Vec<usize>)> = Vec::new();
    for (i, point) in batch.points.iter().enumerate() {
        let Some(what) = point.value.non_numeric().filter(|_| refused(&point.value)) else {
            continue;
        };
        match by_kind.iter_mut().find(|(w, _)| *w == what) {
            Some((_, points)) => points.push(i),
            None => by_kind.push((what, vec![i])),
        }
    }
    by_kind
        .into_iter()
        .map(|(what, points)| refusal(sink, batch, points, format!("{what} value: {why}")))
        .collect()
}

/// What `refusals` of a merged batch's delivery refused beyond the points
/// of `unstorable` (what the sink can never store: the pushes' answers
/// named those already): each refusal with how many such points it has.
pub fn beyond_unstorable<'a>(
    unstorable: &[SinkRefusal],
    refusals: &'a [SinkRefusal],
) -> Vec<(&'a SinkRefusal, usize)> {
    let named: std::collections::BTreeSet<usize> = unstorable
        .iter()
        .flat_map(|r| r.points.iter().copied())
        .collect();
    refusals
        .iter()
        .map(|r| (r, r.points.iter().filter(|p| !named.contains(p)).count()))
        .filter(|(_, points)| *points > 0)
        .collect()
}

/// `points` of `batch` that `sink` refused, logged.
pub fn refusal(
    sink: &'static str,
    batch: &Batch,
    points: Vec<usize>,
    message: String,
) -> SinkRefusal {
    tracing::warn!(sink, batch = %batch.id, points = points.len(), message = %message, "sink refused points");
    SinkRefusal {
        sink: sink.into(),
        points,
        message,
    }
}

/// The end of a delivery in which `sink` took every request but those it
/// refused: the refusals, or, when they cover every point, a failure that
/// is not retryable (the sink took nothing).
pub fn settle(
    sink: &'static str,
    batch: &Batch,
    mut refusals: Vec<SinkRefusal>,
) -> Result<Vec<SinkRefusal>, SinkFailure> {
    let mut refused: Vec<usize> = refusals
        .iter()
        .flat_map(|r| r.points.iter().copied())
        .collect();
    refused.sort_unstable();
    refused.dedup();
    if refusals.is_empty() || refused.len() < batch.points.len() {
        return Ok(refusals);
    }
    Err(SinkFailure {
        sink,
        retryable: false,
        message: refusals.swap_remove(0).message,
        done: batch.points.len(),
    })
}

/// The result of delivering a batch from its point `skipped` on (see
/// [`Batch::from_point`]), with point indices made the whole batch's.
pub fn skipped(
    result: Result<Vec<SinkRefusal>, SinkFailure>,
    skipped: usize,
) -> Result<Vec<SinkRefusal>, SinkFailure> {
    match result {
        Ok(mut refusals) => {
            for r in &mut refusals {
                r.points.iter_mut().for_each(|p| *p += skipped);
            }
            Ok(refusals)
        }
        Err(f) => Err(SinkFailure {
            done: f.done + skipped,
            ..f
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::ready;

    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

    use super::*;
    use crate::model::{Point, Series, Value};
    use crate::sink::Sink;
    use crate::sink::influxdb::Target;

    /// A merged batch's refusals count only what the answers did not name.
    #[test]
    fn refusals_beyond_the_unstorable_points_are_counted() {
        let refusal = |points: &[usize], message: &str| SinkRefusal {
            sink: "cloudwatch".into(),
            points: points.to_vec(),
            message: message.into(),
        };
        let unstorable = [refusal(&[1, 4], "string value")];
        let refusals = [
            refusal(&[1, 4], "string value"),
            refusal(&[0, 1, 2], "a request refused"),
        ];
        let beyond = beyond_unstorable(&unstorable, &refusals);
        assert_eq!(beyond.len(), 1);
        assert_eq!(
            (beyond[0].0.message.as_str(), beyond[0].1),
            ("a request refused", 2)
        );
        assert!(beyond_unstorable(&unstorable, &refusals[..1]).is_empty());
    }

    /// Answers from a script and records what it was asked.
    #[derive(Default)]
    struct Scripted {
        answers: RefCell<Vec<Sent>>,
        sent: RefCell<usize>,
        slept: RefCell<Vec<Duration>>,
        bodies: RefCell<Vec<Vec<u8>>>,
    }

    impl Client for Scripted {
        fn send(&self, request: &http::Request<Vec<u8>>) -> impl Future<Output = Sent> {
            *self.sent.borrow_mut() += 1;
            self.bodies.borrow_mut().push(request.body().clone());
            ready(self.answers.borrow_mut().remove(0))
        }

        fn sleep(&self, duration: Duration) -> impl Future<Output = ()> {
            self.slept.borrow_mut().push(duration);
            ready(())
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        // The scripted client never waits, so one poll finishes the future.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("scripted delivery never waits"),
        }
    }

    fn batch() -> Batch {
        Batch {
            id: "b".into(),
            namespace: "N".into(),
            series: vec![Series {
                name: "m".into(),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![],
                resolution: Resolution::Standard,
            }],
            points: vec![Point {
                series: 0,
                timestamp_ms: 0,
                value: Value::Counter(1.0),
            }],
        }
    }

    fn influx() -> Sink {
        Sink::Influxdb(Target::V2 {
            url: "http://h".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
            store_strings: true,
            quantiles: Default::default(),
        })
    }

    type Run = (Result<Vec<SinkRefusal>, SinkFailure>, usize, Vec<Duration>);

    fn run(answers: Vec<Sent>) -> Run {
        run_with(&influx(), &batch(), answers)
    }

    fn run_with(sink: &Sink, batch: &Batch, answers: Vec<Sent>) -> Run {
        let client = Scripted {
            answers: RefCell::new(answers),
            ..Scripted::default()
        };
        let retry = Retry {
            attempts: 3,
            backoff: Duration::from_millis(10),
            max_wait: Duration::from_secs(2),
        };
        let result = block_on(deliver(&client, sink, batch, SystemTime::UNIX_EPOCH, retry));
        (result, client.sent.into_inner(), client.slept.into_inner())
    }

    #[test]
    fn retries_unavailable_sinks_with_backoff_then_delivers() {
        let (result, sent, slept) = run(vec![
            Ok(SinkAnswer::new(503, vec![])),
            Err("connection refused".into()),
            Ok(SinkAnswer::new(204, vec![])),
        ]);
        assert_eq!(result, Ok(vec![]));
        assert_eq!(sent, 3);
        // Doubling, each wait jittered to between half and all of it.
        assert_eq!(slept.len(), 2);
        assert!((5..=10).contains(&slept[0].as_millis()), "{slept:?}");
        assert!((10..=20).contains(&slept[1].as_millis()), "{slept:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let asked = |secs| {
            Ok(SinkAnswer {
                status: 429,
                retry_after: Some(Duration::from_secs(secs)),
                body: vec![],
            })
        };
        let (result, sent, slept) = run(vec![asked(1), Ok(SinkAnswer::new(204, vec![]))]);
        assert_eq!((result, sent), (Ok(vec![]), 2));
        assert_eq!(slept, [Duration::from_secs(1)]);

        // Asked to wait longer than the cap: give up now, retryable.
        let (result, sent, slept) = run(vec![asked(60)]);
        let failure = result.expect_err("gave up");
        assert!(
            failure.retryable && failure.message.contains("asked to wait 60s"),
            "{failure:?}"
        );
        assert_eq!((sent, slept.len()), (1, 0));
    }

    #[test]
    fn jitter_stays_within_half_and_all_and_varies_by_batch() {
        let nominal = Duration::from_millis(1000);
        let waits: Vec<Duration> = (0..200)
            .map(|i| jittered(nominal, &format!("b{i}"), 1))
            .collect();
        assert!(waits.iter().all(|w| *w >= nominal / 2 && *w <= nominal));
        let mut distinct = waits.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }

    #[test]
    fn gives_up_after_the_attempts_and_says_retryable() {
        let (result, sent, _) = run(vec![
            Ok(SinkAnswer::new(429, vec![])),
            Ok(SinkAnswer::new(503, vec![])),
            Ok(SinkAnswer::new(500, b"boom".to_vec())),
        ]);
        let failure = result.expect_err("gave up");
        assert!(failure.retryable);
        assert_eq!(
            (failure.sink, failure.message.as_str()),
            ("influxdb", "500: boom")
        );
        assert_eq!(sent, 3);
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let (result, sent, slept) = run(vec![Ok(SinkAnswer::new(
            400,
            b"field type conflict".to_vec(),
        ))]);
        let failure = result.expect_err("refused");
        assert!(!failure.retryable);
        assert!(failure.message.contains("field type conflict"));
        assert_eq!((sent, slept.len()), (1, 0));
    }

    /// 2,500 points: three CloudWatch requests of 1,000, 1,000 and 500.
    fn cloudwatch_and_big_batch() -> (Sink, Batch) {
        let sink = Sink::CloudWatch(
            crate::sink::cloudwatch::Config::new("us-east-1"),
            crate::sink::cloudwatch::Keys {
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                session_token: None,
            },
        );
        let mut big = batch();
        big.points = (0..2500)
            .map(|i| Point {
                series: 0,
                timestamp_ms: i,
                value: Value::Counter(1.0),
            })
            .collect();
        (sink, big)
    }

    /// A counter, a string, a boolean and a counter again.
    fn mixed_batch() -> Batch {
        let mut b = batch();
        b.series.push(Series {
            name: "state".into(),
            kind: Kind::Gauge,
            unit: Unit::None,
            dimensions: vec![],
            resolution: Resolution::Standard,
        });
        b.points = [
            (0, Value::Counter(1.0)),
            (1, Value::Text("ok".into())),
            (1, Value::Boolean(true)),
            (0, Value::Counter(2.0)),
        ]
        .into_iter()
        .map(|(series, value)| Point {
            series,
            timestamp_ms: 0,
            value,
        })
        .collect();
        b
    }

    fn gunzip(body: &[u8]) -> String {
        use std::io::Read as _;
        let mut text = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .expect("gzip");
        text
    }

    #[test]
    fn cloudwatch_refuses_strings_and_booleans_and_takes_the_numbers() {
        let (sink, _) = cloudwatch_and_big_batch();
        let client = Scripted {
            answers: RefCell::new(vec![Ok(SinkAnswer::new(200, vec![]))]),
            ..Scripted::default()
        };
        let result = block_on(deliver(
            &client,
            &sink,
            &mixed_batch(),
            SystemTime::UNIX_EPOCH,
            Retry::default(),
        ));
        let refusals = result.expect("the numbers were taken");
        let got: Vec<(&[usize], &str)> = refusals
            .iter()
            .map(|r| (r.points.as_slice(), r.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    &[1][..],
                    "string value: CloudWatch stores numbers only (line-protocol sinks store it)"
                ),
                (
                    &[2][..],
                    "boolean value: CloudWatch stores numbers only (line-protocol sinks store it)"
                ),
            ]
        );
        let bodies = client.bodies.into_inner();
        assert_eq!(bodies.len(), 1);
        let sent: serde_json::Value = serde_json::from_str(&gunzip(&bodies[0])).expect("json");
        let values: Vec<&serde_json::Value> = sent["MetricData"]
            .as_array()
            .expect("datums")
            .iter()
            .map(|d| &d["Value"])
            .collect();
        assert_eq!(values, [1.0, 2.0]);

        // Only strings and booleans: no request, every point refused by
        // name (a client error, not a sink failure).
        let mut text_only = mixed_batch();
        text_only.points.retain(|p| p.value.non_numeric().is_some());
        let (result, sent, _) = run_with(&sink, &text_only, vec![]);
        let refusals = result.expect("refusals, not a failure");
        assert_eq!(sent, 0);
        assert_eq!(
            refusals
                .iter()
                .map(|r| r.points.clone())
                .collect::<Vec<_>>(),
            [vec![0], vec![1]]
        );
    }

    #[test]
    fn line_protocol_sinks_store_strings_and_booleans() {
        let client = Scripted {
            answers: RefCell::new(vec![Ok(SinkAnswer::new(204, vec![]))]),
            ..Scripted::default()
        };
        let result = block_on(deliver(
            &client,
            &influx(),
            &mixed_batch(),
            SystemTime::UNIX_EPOCH,
            Retry::default(),
        ));
        assert_eq!(result, Ok(vec![]));
        let text = gunzip(&client.bodies.into_inner()[0]);
        let fields: Vec<&str> = text
            .lines()
            .map(|l| l.split(' ').nth(1).expect("fields"))
            .collect();
        assert_eq!(fields, ["value=1", "value=\"ok\"", "value=true", "value=2"]);
    }

    #[test]
    fn a_line_protocol_sink_that_stores_no_strings_refuses_them_by_name() {
        let numbers_only = Sink::Influxdb(Target::V2 {
            url: "http://h".into(),
            org: "o".into(),
            bucket: "b".into(),
            token: None,
            store_strings: false,
            quantiles: Default::default(),
        });
        let client = Scripted {
            answers: RefCell::new(vec![Ok(SinkAnswer::new(204, vec![]))]),
            ..Scripted::default()
        };
        let result = block_on(deliver(
            &client,
            &numbers_only,
            &mixed_batch(),
            SystemTime::UNIX_EPOCH,
            Retry::default(),
        ));
        let refusals = result.expect("the rest was taken");
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].points, [1]);
        assert!(refusals[0].message.contains("store_strings = false"));
        let text = gunzip(&client.bodies.into_inner()[0]);
        let fields: Vec<&str> = text
            .lines()
            .map(|l| l.split(' ').nth(1).expect("fields"))
            .collect();
        assert_eq!(fields, ["value=1", "value=true", "value=2"]);
    }

    #[test]
    fn a_refused_request_does_not_stop_the_others_and_names_its_points() {
        let (sink, big) = cloudwatch_and_big_batch();
        let refused = br#"{"__type":"InvalidParameterValue","message":"bad datum"}"#.to_vec();
        let (result, sent, _) = run_with(
            &sink,
            &big,
            vec![
                Ok(SinkAnswer::new(200, vec![])),
                Ok(SinkAnswer::new(400, refused.clone())),
                Ok(SinkAnswer::new(200, vec![])),
            ],
        );
        let refusals = result.expect("the rest was taken");
        assert_eq!(sent, 3);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].points, (1000..2000).collect::<Vec<_>>());
        assert!(refusals[0].message.contains("InvalidParameterValue"));

        // Every request refused: the batch was refused.
        let (result, _, _) = run_with(
            &sink,
            &big,
            vec![Ok(SinkAnswer::new(400, refused.clone())); 3],
        );
        let failure = result.expect_err("nothing taken");
        assert_eq!((failure.retryable, failure.done), (false, 2500));
    }

    #[test]
    fn a_failure_after_some_requests_says_how_far_it_got() {
        let (sink, big) = cloudwatch_and_big_batch();
        let (result, sent, _) = run_with(
            &sink,
            &big,
            vec![
                Ok(SinkAnswer::new(200, vec![])),
                Ok(SinkAnswer::new(503, vec![])),
                Ok(SinkAnswer::new(503, vec![])),
                Ok(SinkAnswer::new(503, vec![])),
            ],
        );
        let failure = result.expect_err("gave up");
        assert_eq!((failure.retryable, failure.done, sent), (true, 1000, 4));
        // What a retry sends: the points from there on.
        let rest = big.from_point(failure.done);
        assert_eq!(rest.points.len(), 1500);
        assert_eq!(rest.points[0].timestamp_ms, 1000);
    }
}
