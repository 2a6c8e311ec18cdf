//! Wire v1: a batch as one JSON object, written here without serde but for
//! names and dimensions, so that a point costs no more than its digits.

use alloc::borrow::Cow;
use alloc::format;
use alloc::vec::Vec;

use super::{BatchWriter, Body, Fields, MAX_ID_LEN, SeriesDef, fault};
use crate::config::Config;
use crate::error::{Result, not_json};
use edgepush_protocol::wire::{self, Version};

/// The wire v1 writer.
#[derive(Debug)]
pub(super) struct V1;

impl BatchWriter for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn series(&self, s: &SeriesDef<'_>) -> Result<Vec<u8>> {
        let series = wire::Series {
            n: Cow::Borrowed(s.name),
            k: s.kind,
            u: s.unit.map(Cow::Borrowed),
            d: wire::Dimensions(
                s.dimensions
                    .iter()
                    .map(|(n, v)| (Cow::Borrowed(n.as_str()), Cow::Borrowed(v.as_str())))
                    .collect(),
            ),
            r: s.resolution,
        };
        serde_json::to_vec(&series).map_err(|_| not_json())
    }

    /// `,"ns":..,"t":..,"dims":{..}`.
    fn head(&self, config: &Config, now_ms: i64, head: &mut Vec<u8>) -> Result<usize> {
        let ns = serde_json::to_string(&config.namespace).map_err(|_| not_json())?;
        head.extend_from_slice(format!(",\"ns\":{ns},\"t\":{now_ms}").as_bytes());
        if !config.dimensions.is_empty() {
            let d = wire::Dimensions(
                config
                    .dimensions
                    .iter()
                    .map(|(n, v)| (n.as_str().into(), v.as_str().into()))
                    .collect(),
            );
            let json = serde_json::to_string(&d).map_err(|_| not_json())?;
            head.extend_from_slice(format!(",\"dims\":{json}").as_bytes());
        }
        // `{"v":1,"id":""` HEAD `,"series":[],"points":[]}`
        Ok(format!("{{\"v\":{},\"id\":\"\"", wire::v1::VERSION).len()
            + head.len()
            + ",\"series\":[],\"points\":[]}".len()
            + MAX_ID_LEN)
    }

    /// From the `,` after `"s":N` to the closing `}`.
    fn fields(&self, p: &Fields<'_>, out: &mut Vec<u8>) {
        if p.t != 0 {
            out.extend_from_slice(b",\"t\":");
            out.extend_from_slice(itoa::Buffer::new().format(p.t).as_bytes());
        }
        if let Some(x) = p.x {
            field(out, "x", x);
        }
        if let Some(vs) = p.vs {
            list(out, "vs", vs);
        }
        if let Some(cs) = p.cs {
            list(out, "cs", cs);
        }
        if let Some(st) = p.st {
            list(out, "st", st);
        }
        out.push(b'}');
    }

    fn size_with(
        &self,
        empty: usize,
        body: &Body,
        index: u32,
        new_series: Option<&[u8]>,
        fields: usize,
    ) -> usize {
        // `,` before each series and point but the first; `{"s":N`.
        empty
            + body.series.len()
            + body.points.len()
            + new_series.map_or(0, <[u8]>::len)
            + fields
            + usize::from(new_series.is_some())
            + 1
            + 5
            + digits(index)
    }

    fn define(&self, body: &mut Body, def: &[u8]) {
        if body.defined > 0 {
            body.series.push(b',');
        }
        body.series.extend_from_slice(def);
        body.defined += 1;
    }

    fn point(&self, body: &mut Body, index: u32, fields: &[u8]) {
        if body.count > 0 {
            body.points.push(b',');
        }
        body.points.extend_from_slice(b"{\"s\":");
        body.points
            .extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        body.points.extend_from_slice(fields);
        body.previous = Some(index);
        body.count += 1;
    }

    fn close(&self, id: &str, head: &[u8], body: &Body, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{{\"v\":{},\"id\":\"{id}\"", wire::v1::VERSION).as_bytes());
        out.extend_from_slice(head);
        out.extend_from_slice(b",\"series\":[");
        out.extend_from_slice(&body.series);
        out.extend_from_slice(b"],\"points\":[");
        out.extend_from_slice(&body.points);
        out.extend_from_slice(b"]}");
    }

    fn decode<'a>(&self, encoded: &'a [u8]) -> Result<wire::Batch<'a>> {
        serde_json::from_slice(encoded).map_err(|e| fault(&e))
    }

    /// The batch is wire v1 JSON already.
    fn json(&self, encoded: Vec<u8>) -> Result<Vec<u8>> {
        Ok(encoded)
    }
}

/// Writes `,"key":v`.
fn field(out: &mut Vec<u8>, key: &str, v: f64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    number(out, v);
}

/// Writes `,"key":[v,...]`.
fn list(out: &mut Vec<u8>, key: &str, vs: &[f64]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    edgepush_protocol::json_numbers(out, vs);
}

fn number(out: &mut Vec<u8>, v: f64) {
    edgepush_protocol::format_number(v, |text| out.extend_from_slice(text.as_bytes()));
}

/// Decimal digits of `n`.
fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}
