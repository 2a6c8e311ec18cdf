//! The Worker as the push pipeline's host: replays and dedupe in the
//! Cache API, delivery through `fetch`, or a queue.

use std::rc::Rc;
use std::time::SystemTime;

use edgepush_receiver::aggregate;
use edgepush_receiver::error::Error;
use edgepush_receiver::ingest;
use edgepush_receiver::model::Batch;
use edgepush_receiver::packed;
use edgepush_receiver::pipeline::{Delivery, Dispatch, Host, SeenKey};
use edgepush_receiver::sink::{
    Encoder, Retry, SinkFailure, SinkRefusal, SinkTag, deliver, skipped,
};
use edgepush_receiver::tenant::{self, Caller, RateLimiter};
use worker::{
    Cache, Date, Headers, Method, ObjectNamespace, Queue, QueueContentType, RawMessageBuilder,
    Request, RequestInit, Response, js_sys,
};

use crate::fetch::FetchClient;
use crate::{QUEUE_BINDING, Settings, shard};

/// The Worker as the pipeline's host: the body read by the runtime, the
/// JS clock, replays and dedupe in this data centre's Cache API, delivery
/// inline through `fetch` or, with a queue bound, queued.
pub(crate) struct EdgeHost {
    pub(crate) settings: Rc<Settings>,
    pub(crate) queue: Option<Queue>,
    /// The aggregators (`EDGEPUSH_SHARDS`), when bound.
    pub(crate) shards: Option<ObjectNamespace>,
    /// When the push arrived: requests to the sinks are signed at this time.
    pub(crate) now: SystemTime,
}

impl Host for EdgeHost {
    type Body = Request;
    type Bytes = Vec<u8>;

    fn ingest(&self) -> &ingest::Ingest {
        &self.settings.ingest
    }

    fn rates(&self) -> &RateLimiter {
        &self.settings.rates
    }

    fn now_ms(&self) -> i64 {
        Date::now().as_millis() as i64
    }

    async fn read_body(&self, mut body: Request, _max: usize) -> Result<Vec<u8>, Error> {
        body.bytes().await.map_err(|e| {
            Error::new(400, "unreadable_body", format!("cannot read the body: {e}")).field("body")
        })
    }

    /// A signature is remembered in the Cache API of this data centre until
    /// it would be stale anyway.
    async fn check_replay(&self, caller: &Caller, now_ms: i64) -> Result<(), Error> {
        if let Some((mac, until_ms)) = caller.signature {
            let key = format!("https://edgepush.invalid/signature/{}", hex::encode(mac));
            if seen_value(&key).await.is_some() {
                return Err(tenant::replayed());
            }
            remember(&key, 1, ((until_ms - now_ms) / 1000).max(1) as u64).await;
        }
        Ok(())
    }

    async fn seen(&self, key: SeenKey<'_>) -> Option<usize> {
        if self.settings.dedupe_seconds == 0 {
            return None;
        }
        seen_value(&seen_url(key)).await
    }

    async fn remember(&self, key: SeenKey<'_>, value: usize) {
        remember(&seen_url(key), value, self.settings.dedupe_seconds).await;
    }

    fn dispatch(&self) -> Dispatch {
        if self.queue.is_some() {
            Dispatch::Queued
        } else {
            Dispatch::Inline
        }
    }

    fn sinks(&self) -> usize {
        self.settings.sinks.len()
    }

    fn sink_name(&self, index: usize) -> &'static str {
        self.settings.sinks[index].name()
    }

    fn sink_tag(&self, index: usize) -> Option<SinkTag> {
        Some(self.settings.sinks[index].tag())
    }

    async fn deliver(
        &self,
        index: usize,
        batch: &Batch,
        from: usize,
    ) -> Result<Delivery, SinkFailure> {
        let sink = &self.settings.sinks[index];
        let rest = batch.from_point(from);
        let delivered = deliver(&FetchClient, sink, &rest, self.now, Retry::default()).await;
        skipped(delivered, from).map(|refusals| Delivery {
            refusals,
            spooled: false,
        })
    }

    fn aggregated(&self, index: usize) -> bool {
        self.settings.aggregated[index]
    }

    fn unstorable(&self, index: usize, batch: &Batch) -> Vec<SinkRefusal> {
        self.settings.sinks[index].unstorable(batch)
    }

    /// Hands the batch to the aggregators of its namespace, each the
    /// series that hash to it, and returns once every one has stored its
    /// share. An aggregator that took its share before (the client's retry
    /// after a lost answer, or another aggregator's failure) does not merge
    /// it twice: it remembers the key.
    async fn hold(&self, key: SeenKey<'_>, batch: &Batch) -> Result<(), Error> {
        let unavailable = |message: String| {
            let mut e = Error::new(503, "aggregator_unavailable", message);
            e.retry_after = Some(1);
            e
        };
        let Some(shards) = &self.shards else {
            return Err(unavailable(format!(
                "no aggregators bound as {}",
                shard::BINDING
            )));
        };
        for (index, part) in aggregate::split(batch, self.settings.shards) {
            let name = format!("{}#{index}", batch.namespace);
            let stub = shards
                .id_from_name(&name)
                .and_then(|id| id.get_stub())
                .map_err(|e| unavailable(format!("aggregator {name}: {e}")))?;
            for (n, packed) in packed::split(&part, packed::MAX_PART_BYTES)
                .into_iter()
                .enumerate()
            {
                let headers = Headers::new();
                // Header values must be visible ASCII: both are encoded.
                let encode =
                    |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
                let dedupe_key = format!("{}/{}/{n}", encode(key.tenant), encode(key.id));
                let set = headers
                    .set(shard::SHARD_HEADER, &encode(&name))
                    .and_then(|()| headers.set(shard::KEY_HEADER, &dedupe_key));
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_headers(headers)
                    .with_body(Some(js_sys::Uint8Array::from(packed.as_slice()).into()));
                let request = set
                    .and_then(|()| Request::new_with_init("https://aggregator.invalid/hold", &init))
                    .map_err(|e| unavailable(format!("aggregator {name}: {e}")))?;
                let mut response = stub
                    .fetch_with_request(request)
                    .await
                    .map_err(|e| unavailable(format!("aggregator {name}: {e}")))?;
                if response.status_code() != 200 {
                    let status = response.status_code();
                    let body = response.text().await.unwrap_or_default();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .ok()
                        .flatten()
                        .and_then(|v| v.parse().ok());
                    let mut e = unavailable(format!("aggregator {name} answered {status}: {body}"));
                    if status == 503 {
                        e.retry_after = retry_after.or(e.retry_after);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn enqueue(&self, message: Vec<u8>) -> Result<(), String> {
        let Some(queue) = &self.queue else {
            return Err(format!("no queue bound as {QUEUE_BINDING}"));
        };
        let raw = RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
            .build_with_content_type(QueueContentType::V8);
        queue.send_raw(raw).await.map_err(|e| e.to_string())
    }
}

/// The Cache API key that marks a batch as delivered, or one sink's
/// progress through it (see [`edgepush_receiver::dedupe`]: per data centre, and a
/// no-op on `*.workers.dev`).
fn seen_url(key: SeenKey<'_>) -> String {
    let tenant: String = form_urlencoded::byte_serialize(key.tenant.as_bytes()).collect();
    let namespace: String = form_urlencoded::byte_serialize(key.namespace.as_bytes()).collect();
    let id = key.id;
    match key.sink {
        Some(index) => format!("https://edgepush.invalid/seen/{tenant}/{namespace}/{id}/{index}"),
        None => format!("https://edgepush.invalid/seen/{tenant}/{namespace}/{id}"),
    }
}

/// The value remembered under `key` (how many points a sink took; any
/// number for a batch or signature seen), if any.
async fn seen_value(key: &str) -> Option<usize> {
    let mut response = Cache::default().get(key, true).await.ok()??;
    let text = response.text().await.ok()?;
    Some(text.trim().parse().unwrap_or(usize::MAX))
}

/// Remembers `value` under `key` for `seconds`; a failure to do so only
/// loses the dedupe.
async fn remember(key: &str, value: usize, seconds: u64) {
    if seconds == 0 {
        return;
    }
    let Ok(response) = Response::ok(value.to_string()) else {
        return;
    };
    if response
        .headers()
        .set("cache-control", &format!("max-age={seconds}"))
        .is_ok()
    {
        let _ = Cache::default().put(key, response).await;
    }
}
