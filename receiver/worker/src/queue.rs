//! Queued delivery: the queue consumer, requeueing what a sink took only
//! part of, and the dead letters (kept in KV, listed over HTTP).

use std::time::Duration;

use edgepush_receiver::aggregate::Aggregator;
use edgepush_receiver::envelope;
use edgepush_receiver::error::Error;
use edgepush_receiver::ingest;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::sink::SinkTag;
use edgepush_receiver::sink::{Encoder, Retry, deliver};
use worker::{
    Context, Date, Env, MessageBatch, MessageExt, QueueContentType, QueueRetryOptionsBuilder,
    RawMessage, RawMessageBuilder, Request, Response, event, js_sys,
};

use crate::fetch::FetchClient;
use crate::{
    DEAD_LETTER_TTL_SECONDS, DEAD_LETTERS_BINDING, MAX_RETRY_DELAY_SECONDS, QUEUE_BINDING,
    Settings, error, json, now, setting, settings,
};

/// Lists the dead letters' keys (`<namespace>/<time>-<batch id>-<sink>`), by
/// namespace and then oldest first, a page at a time (`?limit=` at most 1,000, `?cursor=` from the previous
/// page's `cursor`; `null` on the last page): only those of namespaces the
/// caller's tenant may write.
pub(crate) async fn dead_letters(req: &Request, env: &Env) -> worker::Result<Response> {
    let config = match settings(env) {
        Ok(config) => config,
        Err(message) => return error(&Error::new(500, "misconfigured", message)),
    };
    let ingest = &config.ingest;
    let authorization = req.headers().get("authorization")?;
    let signature = req.headers().get(edgepush_protocol::sign::HEADER)?;
    let headers = ingest::Headers {
        authorization: authorization.as_deref(),
        signature: signature.as_deref(),
        ..ingest::Headers::default()
    };
    let caller = match ingest.authenticate(headers, b"", Date::now().as_millis() as i64) {
        Ok(caller) => caller,
        Err(e) => return error(&e),
    };
    let Ok(kv) = env.kv(DEAD_LETTERS_BINDING) else {
        return error(&Error::new(
            404,
            "not_found",
            format!("no KV namespace bound as {DEAD_LETTERS_BINDING}"),
        ));
    };
    let (mut limit, mut cursor) = (1_000, None);
    // From the URL string as the runtime serialised it (the `url` crate's
    // parser would add its weight to the wasm).
    let url = req.inner().url();
    let query = edgepush_receiver::decode::url_query(&url).unwrap_or("");
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "limit" => match value.parse::<u64>() {
                Ok(n @ 1..=1_000) => limit = n,
                _ => {
                    return error(
                        &Error::new(400, "invalid_field", "limit must be 1 to 1000").field("limit"),
                    );
                }
            },
            "cursor" => cursor = Some(value.into_owned()),
            _ => {}
        }
    }
    let mut list = kv.list().limit(limit);
    if let Some(cursor) = cursor {
        list = list.cursor(cursor);
    }
    let page = list
        .execute()
        .await
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    // Keys are `<namespace>/<time>-<batch id>-<sink>` (the part after the
    // namespace holds no `/`); an undecodable message's namespace is empty,
    // listed only to a tenant that may write every namespace.
    let names: Vec<String> = page
        .keys
        .into_iter()
        .filter(|k| {
            let namespace = k.name.rsplit_once('/').map_or("", |(ns, _)| ns);
            match caller.tenant.and_then(|i| ingest.tenants.get(i)) {
                Some(tenant) => tenant.allows(namespace),
                None => true,
            }
        })
        .map(|k| k.name)
        .collect();
    let next = (!page.list_complete).then_some(page.cursor).flatten();
    // Serialising strings cannot fail; `to_string` rather than `Value`'s
    // Display keeps the pretty printer out of the wasm.
    let body = serde_json::to_string(&serde_json::json!({ "dead_letters": names, "cursor": next }));
    json(200, body.unwrap_or_default())
}

/// Queue consumer: forwards queued batches, or keeps dead letters.
#[event(queue)]
async fn consume(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    let dead_letter_queue = setting(&env, "EDGEPUSH_DEAD_LETTER_QUEUE")
        .unwrap_or_else(|| "edgepush-dead-letters".into());
    if batch.queue() == dead_letter_queue {
        return keep_dead_letters(batch, &env).await;
    }
    let config = match settings(&env) {
        Ok(config) => config,
        Err(message) => {
            // Nothing can be delivered until the settings are fixed: keep
            // every message in the queue.
            worker::console_error!("edgepush: {message}");
            batch.retry_all();
            return Ok(());
        }
    };
    let base_delay = setting(&env, "EDGEPUSH_RETRY_DELAY_SECONDS")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30);
    let retry_later = |message: &RawMessage, reason: &str| {
        worker::console_warn!("edgepush: message {} not delivered: {reason}", message.id());
        // Exponential backoff without an attempt counter (the runtime does
        // not expose it): wait as long as the message has already waited,
        // at least the base delay.
        let age = Date::now()
            .as_millis()
            .saturating_sub(message.timestamp().as_millis())
            / 1000;
        let delay = age.clamp(base_delay, MAX_RETRY_DELAY_SECONDS.max(base_delay));
        let retry = QueueRetryOptionsBuilder::new()
            .with_delay_seconds(u32::try_from(delay).unwrap_or(u32::MAX))
            .build();
        message.retry_with_options(&retry);
    };
    // Messages for CloudWatch, when it takes merged points, are merged per
    // namespace: one request for the lot, whose outcome is each message's.
    // Line-protocol messages go one by one: a merged point's timestamp comes
    // from its emission's id (aggregate::emission_offset_ns), which merging
    // them again here would change, so a redelivered message would no
    // longer overwrite itself, and two consumers could stamp alike.
    let merges = config
        .sinks
        .iter()
        .zip(&config.aggregated)
        .any(|(s, on)| *on && s.tag() == SinkTag::CloudWatch);
    let mut merging: Vec<(String, Vec<RawMessage>, Aggregator)> = Vec::new();
    for message in batch.raw_iter() {
        let bytes = js_sys::Uint8Array::new(&message.body()).to_vec();
        let now_ms = Date::now().as_millis() as i64;
        let outcome = match envelope::decode(&bytes, now_ms, &Limits::stored()) {
            Err(e) => Err(e.to_string()),
            Ok((SinkTag::CloudWatch, points)) if merges => {
                let group = match merging
                    .iter()
                    .position(|(ns, _, _)| *ns == points.namespace)
                {
                    Some(group) => group,
                    None => {
                        merging.push((points.namespace.clone(), Vec::new(), Aggregator::new()));
                        merging.len() - 1
                    }
                };
                merging[group].2.add(&points);
                merging[group].1.push(message);
                continue;
            }
            Ok((tag, points)) => forward(&env, &config, tag, &points).await,
        };
        match outcome {
            Ok(()) => message.ack(),
            Err(reason) => retry_later(&message, &reason),
        }
    }
    for (_, messages, mut merger) in merging {
        // One namespace: one batch.
        let merged = merger.take_all(Date::now().as_millis() as i64);
        let mut outcome = Ok(());
        for points in &merged {
            outcome = outcome.and(forward(&env, &config, SinkTag::CloudWatch, points).await);
        }
        for message in &messages {
            match &outcome {
                Ok(()) => message.ack(),
                Err(reason) => retry_later(message, reason),
            }
        }
    }
    Ok(())
}

/// Delivers one batch to the sink tagged `tag`. When the sink took part
/// of it, the rest goes back to the queue as a new message, so the part is
/// not sent again.
async fn forward(env: &Env, config: &Settings, tag: SinkTag, points: &Batch) -> Result<(), String> {
    let Some(sink) = config.sinks.iter().find(|s| s.tag() == tag) else {
        return Err(format!("no {tag:?} sink is configured"));
    };
    let quick = Retry {
        attempts: 2,
        backoff: Duration::from_millis(200),
        ..Retry::default()
    };
    match deliver(&FetchClient, sink, points, now(), quick).await {
        Ok(refusals) => {
            if points.id.starts_with("merged-") {
                crate::shard::report_refusals(sink, points, &refusals);
            } else {
                for r in refusals {
                    worker::console_error!(
                        "edgepush: {} refused {} points of batch {}: {}",
                        r.sink,
                        r.points.len(),
                        points.id,
                        r.message
                    );
                }
            }
            Ok(())
        }
        Err(f) if f.retryable && f.done > 0 => {
            worker::console_warn!(
                "edgepush: {} took {} points of batch {}, then: {}; requeueing the rest",
                f.sink,
                f.done,
                points.id,
                f.message
            );
            requeue(env, &points.from_point(f.done), tag)
                .await
                .map_err(|e| format!("{}: {}; cannot requeue the rest: {e}", f.sink, f.message))
        }
        Err(f) => Err(format!("{}: {}", f.sink, f.message)),
    }
}

/// Sends `batch` to the queue again, for the sink `tag` names.
async fn requeue(env: &Env, batch: &Batch, tag: SinkTag) -> Result<(), String> {
    let queue = env.queue(QUEUE_BINDING).map_err(|e| e.to_string())?;
    for message in envelope::encode(batch, tag) {
        let raw = RawMessageBuilder::new(js_sys::Uint8Array::from(message.as_slice()).into())
            .build_with_content_type(QueueContentType::V8);
        queue.send_raw(raw).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn keep_dead_letters(
    batch: MessageBatch<serde_json::Value>,
    env: &Env,
) -> worker::Result<()> {
    let Ok(kv) = env.kv(DEAD_LETTERS_BINDING) else {
        worker::console_error!(
            "edgepush: dead letters arrive but no KV namespace is bound as {DEAD_LETTERS_BINDING}"
        );
        batch.retry_all();
        return Ok(());
    };
    for message in batch.raw_iter() {
        let bytes = js_sys::Uint8Array::new(&message.body()).to_vec();
        let now = Date::now().as_millis();
        // Read without checking the batch: a dead letter may be older than
        // CloudWatch accepts.
        let (id, sink, namespace) = match envelope::peek(&bytes) {
            Some((tag, id, namespace)) => (id, format!("{tag:?}"), namespace),
            None => (message.id(), "undecodable".to_string(), String::new()),
        };
        // The namespace leads the key: the list shows each tenant its own.
        let key = format!("{namespace}/{now}-{id}-{sink}");
        let stored = match kv.put_bytes(&key, &bytes) {
            Ok(put) => put
                .expiration_ttl(DEAD_LETTER_TTL_SECONDS)
                .execute()
                .await
                .is_ok(),
            Err(_) => false,
        };
        if stored {
            message.ack();
        } else {
            message.retry();
        }
    }
    Ok(())
}
