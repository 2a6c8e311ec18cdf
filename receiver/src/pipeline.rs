//! One push, from request to answer, for every host: route, bound the
//! body, authenticate, check for a replay, decode and validate, dedupe,
//! deliver to every sink (or enqueue), and answer in the push's format.
//!
//! What differs between the native server and the Worker sits behind
//! [`Host`]: reading the body, the clock, the replay and dedupe stores,
//! delivering to one sink (natively with a spool), the queue, telemetry.
//! Both hosts call [`push`] and only adapt requests and responses.

use std::future::Future;

use crate::decode::{Decoded, Format, Rejection};
use crate::envelope;
use crate::error::Error;
use crate::ingest::{self, Answer, Headers, Ingest, Reply};
use crate::model::Batch;
use crate::sink::{SinkFailure, SinkRefusal, SinkTag};
use crate::tenant::{Caller, RateLimiter};

/// What the pipeline reads of a request before its body.
#[derive(Clone, Copy, Debug, Default)]
pub struct Head<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// `Content-Length`, when declared and a number.
    pub content_length: Option<usize>,
    /// The headers ingest looks at.
    pub headers: Headers<'a>,
}

/// A key of the dedupe store: a batch, or one sink's progress through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenKey<'a> {
    /// The tenant that pushed.
    pub tenant: &'a str,
    /// The batch's namespace.
    pub namespace: &'a str,
    /// The batch id.
    pub id: &'a str,
    /// The sink's index, for its progress; `None` for the batch.
    pub sink: Option<usize>,
}

/// What one sink did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Points it refused for good (indices into the whole batch).
    pub refusals: Vec<SinkRefusal>,
    /// Whether what it did not take waits in its spool.
    pub spooled: bool,
}

/// How a host hands accepted batches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Delivered to every sink before the push is answered.
    Inline,
    /// One queue message per sink; a consumer delivers later.
    Queued,
}

/// What the pipeline tells a host's telemetry, with the tenant (`""`
/// before the caller is known).
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// The push was refused with `error`.
    Refused {
        /// The tenant.
        tenant: &'a str,
        /// Why.
        error: &'a Error,
    },
    /// The push decoded: `accepted` points, and the refused ones.
    Points {
        /// The tenant.
        tenant: &'a str,
        /// Points accepted.
        accepted: usize,
        /// Points refused, with their reasons.
        rejected: &'a [Rejection],
    },
    /// The batch was delivered before and is not forwarded again.
    DedupeHit {
        /// The tenant.
        tenant: &'a str,
    },
    /// Sinks refused `points` accepted points for good.
    SinkRefused {
        /// The tenant.
        tenant: &'a str,
        /// How many.
        points: usize,
    },
    /// The push was answered with `status` (refusals are [`Event::Refused`]).
    Answered {
        /// The tenant.
        tenant: &'a str,
        /// The status.
        status: u16,
    },
}

/// What a host provides to the pipeline. Futures carry no `Send` bound: the
/// Worker's are not `Send`; natively, the concrete host's futures are.
pub trait Host {
    /// A request body before it is read.
    type Body;
    /// A body read whole.
    type Bytes: AsRef<[u8]>;

    /// Checks and decodes pushes.
    fn ingest(&self) -> &Ingest;

    /// Per-tenant request and point rates.
    fn rates(&self) -> &RateLimiter;

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Reads `body`, at most `max` bytes ([`ingest::body_too_large`] past
    /// it), or says why it could not.
    fn read_body(
        &self,
        body: Self::Body,
        max: usize,
    ) -> impl Future<Output = Result<Self::Bytes, Error>>;

    /// Refuses a signed request seen before ([`crate::tenant::replayed`])
    /// and remembers this one.
    fn check_replay(&self, caller: &Caller, now_ms: i64)
    -> impl Future<Output = Result<(), Error>>;

    /// The value remembered under `key` (how many points a sink took;
    /// `usize::MAX` for all, or for a batch delivered), if any.
    fn seen(&self, key: SeenKey<'_>) -> impl Future<Output = Option<usize>>;

    /// Remembers `value` under `key` for the dedupe window.
    fn remember(&self, key: SeenKey<'_>, value: usize) -> impl Future<Output = ()>;

    /// How accepted batches are handed on.
    fn dispatch(&self) -> Dispatch;

    /// How many sinks there are.
    fn sinks(&self) -> usize;

    /// The name of sink `index`, for answers and logs.
    fn sink_name(&self, index: usize) -> &'static str;

    /// The tag of sink `index`'s queue messages (`None`: not queued).
    fn sink_tag(&self, index: usize) -> Option<SinkTag>;

    /// Delivers the points of `batch` from `from` on to sink `index`
    /// ([`Dispatch::Inline`]); indices in the result are the whole batch's.
    fn deliver(
        &self,
        index: usize,
        batch: &Batch,
        from: usize,
    ) -> impl Future<Output = Result<Delivery, SinkFailure>>;

    /// Whether sink `index` takes merged points from the host's aggregator
    /// ([`crate::aggregate`]) rather than each push; none does by default.
    fn aggregated(&self, _index: usize) -> bool {
        false
    }

    /// The points of `batch` that sink `index` cannot store, whatever it
    /// would answer: for an aggregated sink they are named in the push's
    /// answer, since its delivery comes later.
    fn unstorable(&self, _index: usize, _batch: &Batch) -> Vec<SinkRefusal> {
        Vec::new()
    }

    /// Merges `batch` (pushed under `key`, whose `sink` is `None`) into the
    /// host's aggregator for the aggregated sinks, or says why it cannot
    /// (`503` while it is full).
    fn hold(&self, _key: SeenKey<'_>, _batch: &Batch) -> impl Future<Output = Result<(), Error>> {
        std::future::ready(Err(Error::new(
            503,
            "no_aggregator",
            "this receiver has no aggregator",
        )))
    }

    /// Sends one queue message ([`Dispatch::Queued`]).
    fn enqueue(&self, message: Vec<u8>) -> impl Future<Output = Result<(), String>>;

    /// Counts what happened; a no-op by default.
    fn record(&self, _format: &Format, _event: Event<'_>) {}
}

/// The format a request pushes in, or the answer to a request that is not
/// a push (`404`, or a refused content type).
pub fn route(head: &Head<'_>) -> Result<Format, Reply> {
    match Format::route(
        head.method,
        head.path,
        head.query,
        head.headers.content_type,
    ) {
        Ok(Some(format)) => Ok(format),
        Ok(None) => Err(ingest::refusal(None, &not_found())),
        Err(e) => Err(ingest::refusal(None, &e)),
    }
}

/// The `404` of a path that takes no pushes.
pub fn not_found() -> Error {
    Error::new(
        404,
        "not_found",
        format!(
            "no such path; push to POST {} (edgepush or OTLP), POST /write or /api/v2/write \
             (line protocol), or PUT/POST /metrics/job/<job> (Prometheus text)",
            edgepush_protocol::wire::PATH
        ),
    )
}

/// Routes and handles one request: [`route`], then [`push`].
pub async fn handle<H: Host>(head: &Head<'_>, body: H::Body, host: &H) -> Reply {
    match route(head) {
        Ok(format) => push(&format, head, body, host).await,
        Err(reply) => reply,
    }
}

/// Handles one push in `format`: everything from its body to its answer.
pub async fn push<H: Host>(format: &Format, head: &Head<'_>, body: H::Body, host: &H) -> Reply {
    let refuse = |tenant: &str, e: &Error| {
        tracing::info!(tenant, format = format.name(), status = e.status, error = e.error, field = ?e.field, message = %e.message, "push refused");
        host.record(format, Event::Refused { tenant, error: e });
        ingest::refusal(Some(format), e)
    };
    let ingest = host.ingest();
    let max = ingest.limits.max_body_bytes;
    if head.content_length.is_some_and(|n| n > max) {
        return refuse("", &ingest::body_too_large(max));
    }
    let body = match host.read_body(body, max).await {
        Ok(body) => body,
        Err(e) => return refuse("", &e),
    };
    let body = body.as_ref();
    let now_ms = host.now_ms();
    let caller = match ingest.authenticate_push(format, head.headers, body, now_ms) {
        Ok(caller) => caller,
        Err(e) => return refuse("", &e),
    };
    let tenant = ingest.tenants.name(&caller);
    if let Err(e) = host.check_replay(&caller, now_ms).await {
        return refuse(tenant, &e);
    }
    let decoded =
        match ingest.decode_within(host.rates(), &caller, format, head.headers, body, now_ms) {
            Ok(d) => d,
            Err(e) => return refuse(tenant, &e),
        };
    let batch = &decoded.batch;
    let mut answer = ingest::answer_for(&decoded);
    host.record(
        format,
        Event::Points {
            tenant,
            accepted: batch.points.len(),
            rejected: &decoded.rejected,
        },
    );
    let key = SeenKey {
        tenant,
        namespace: &batch.namespace,
        id: &batch.id,
        sink: None,
    };
    if host.seen(key).await.is_some() {
        answer.duplicate = true;
        host.record(format, Event::DedupeHit { tenant });
    } else if !answer.all_refused() {
        let failures = match host.dispatch() {
            Dispatch::Queued => match hold(host, &decoded, key, &mut answer).await {
                Ok(()) => match enqueue(host, batch).await {
                    Ok(()) => Vec::new(),
                    Err(e) => return refuse(tenant, &e),
                },
                Err(e) => return refuse(tenant, &e),
            },
            Dispatch::Inline => match deliver(host, &decoded, key, &mut answer).await {
                Ok(failures) => failures,
                Err(e) => return refuse(tenant, &e),
            },
        };
        if let Some(e) = ingest::sink_failure(&failures) {
            return refuse(tenant, &e);
        }
        host.remember(key, usize::MAX).await;
    }
    tracing::debug!(format = format.name(), batch = %batch.id, accepted = answer.accepted, rejected = answer.rejected_count, "push handled");
    let sink_refused = answer.refused_by_sinks();
    if sink_refused > 0 {
        host.record(
            format,
            Event::SinkRefused {
                tenant,
                points: sink_refused,
            },
        );
    }
    let reply = ingest::reply(format, &answer);
    host.record(
        format,
        Event::Answered {
            tenant,
            status: reply.status,
        },
    );
    reply
}

/// Merges `decoded`'s batch once for every sink that aggregates and has
/// not merged it on an earlier try, and names in `answer` what those sinks
/// can never store; refuses the push when the aggregator cannot take it.
async fn hold<H: Host>(
    host: &H,
    decoded: &Decoded,
    key: SeenKey<'_>,
    answer: &mut Answer<'_>,
) -> Result<(), Error> {
    let batch = &decoded.batch;
    if batch.points.is_empty() {
        return Ok(());
    }
    let sink_key = |index| SeenKey {
        sink: Some(index),
        ..key
    };
    let mut held = Vec::new();
    for index in (0..host.sinks()).filter(|&i| host.aggregated(i)) {
        // Merged on an earlier try of this batch: not again.
        if host.seen(sink_key(index)).await.unwrap_or(0) < batch.points.len() {
            held.push(index);
        }
    }
    if !held.is_empty() {
        host.hold(key, batch).await?;
        for index in held {
            host.remember(sink_key(index), usize::MAX).await;
            ingest::sink_refused(answer, decoded, host.unstorable(index, batch));
        }
    }
    Ok(())
}

/// Delivers `decoded`'s batch to every sink, each from the point it
/// reached on an earlier try of the same batch, and adds what sinks refused
/// to `answer`; the failures of the sinks that did not take it. The
/// aggregated sinks' share is merged first ([`hold`]): when the
/// aggregator cannot take it, nothing is delivered and the push is refused.
async fn deliver<H: Host>(
    host: &H,
    decoded: &Decoded,
    key: SeenKey<'_>,
    answer: &mut Answer<'_>,
) -> Result<Vec<SinkFailure>, Error> {
    let batch = &decoded.batch;
    let mut failures = Vec::new();
    if batch.points.is_empty() {
        return Ok(failures);
    }
    hold(host, decoded, key, answer).await?;
    let sink_key = |index| SeenKey {
        sink: Some(index),
        ..key
    };
    for index in (0..host.sinks()).filter(|&i| !host.aggregated(i)) {
        let sink_key = sink_key(index);
        // A sink that took this batch, or part of it, on an earlier try is
        // sent only what it did not take.
        let done = host.seen(sink_key).await.unwrap_or(0);
        if done >= batch.points.len() {
            continue;
        }
        match host.deliver(index, batch, done).await {
            Ok(taken) => {
                host.remember(sink_key, usize::MAX).await;
                if taken.spooled {
                    answer.spooled.push(host.sink_name(index).into());
                }
                ingest::sink_refused(answer, decoded, taken.refusals);
            }
            Err(f) => {
                if f.retryable && f.done > 0 {
                    host.remember(sink_key, f.done).await;
                }
                failures.push(f);
            }
        }
    }
    Ok(failures)
}

/// Enqueues `batch` as messages for every queued sink that does not
/// aggregate (those took it in [`hold`]); a message the queue
/// does not take refuses the push with `503` (messages already sent are
/// delivered, and the client's retry of the batch may repeat them).
async fn enqueue<H: Host>(host: &H, batch: &Batch) -> Result<(), Error> {
    if batch.points.is_empty() {
        return Ok(());
    }
    for index in (0..host.sinks()).filter(|&i| !host.aggregated(i)) {
        let Some(tag) = host.sink_tag(index) else {
            continue;
        };
        for message in envelope::encode(batch, tag) {
            if let Err(e) = host.enqueue(message).await {
                return Err(Error::new(
                    503,
                    "queue_unavailable",
                    format!("cannot enqueue the batch: {e}"),
                ));
            }
        }
    }
    Ok(())
}
