//! Wire v3: v2 with each of a batch's dimension sets written once
//! (`edgepush_protocol::wire::v3`), written piece by piece.
//!
//! A series' definition, made at registration, is its v3 head (name, kind,
//! unit, resolution) and its dimensions as v2 writes them, the head's
//! length first: `varint len, head, dims`. Defining it in a batch writes
//! the head and the number of its set, adding the set to the batch's table
//! if the batch does not have it yet.

use alloc::vec::Vec;

use super::{BatchWriter, Body, Fields, SeriesDef, fault, v2::V2};
use crate::config::Config;
use crate::error::Result;
use edgepush_protocol::wire::{self, Version, v2, v3};

/// The wire v3 writer.
#[derive(Debug)]
pub(super) struct V3;

/// A definition's head and dimensions.
fn split(def: &[u8]) -> (&[u8], &[u8]) {
    // The head's length is one varint byte or two (a head under 16 KiB:
    // names, units and resolutions are bounded far below).
    let (len, at) = match def {
        [b, ..] if b & 0x80 == 0 => (usize::from(*b), 1),
        [lo, hi, ..] => (usize::from(lo & 0x7f) | usize::from(*hi) << 7, 2),
        _ => (0, def.len()),
    };
    let end = (at + len).min(def.len());
    (&def[at..end], &def[end..])
}

impl BatchWriter for V3 {
    fn version(&self) -> Version {
        Version::V3
    }

    fn series(&self, s: &SeriesDef<'_>) -> Result<Vec<u8>> {
        let mut head = Vec::new();
        v2::series_head(&mut head, s.name, s.kind, s.unit, s.resolution);
        if head.len() >= 1 << 14 {
            return Err(crate::Error::Encode(alloc::format!(
                "a series head of {} bytes",
                head.len()
            )));
        }
        let mut out = Vec::with_capacity(head.len() + 2 + 16 * s.dimensions.len());
        v2::varint(&mut out, head.len() as u64);
        out.extend_from_slice(&head);
        v2::dimensions(
            &mut out,
            s.dimensions.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        );
        Ok(out)
    }

    /// As v2: namespace, time and dimensions.
    fn head(&self, config: &Config, now_ms: i64, head: &mut Vec<u8>) -> Result<usize> {
        V2.head(config, now_ms, head)
    }

    fn fields(&self, p: &Fields<'_>, out: &mut Vec<u8>) {
        V2.fields(p, out);
    }

    fn size_with(
        &self,
        empty: usize,
        body: &Body,
        index: u32,
        new_series: Option<&[u8]>,
        fields: usize,
    ) -> usize {
        let sets = &body.sets;
        let mut set_count = sets.len();
        let mut set_bytes = sets.bytes.len();
        let mut series = body.series.len();
        if let Some(def) = new_series {
            let (head, dims) = split(def);
            let set = match sets.find(dims) {
                Some(set) => set,
                None => {
                    set_count += 1;
                    set_bytes += dims.len();
                    set_count - 1
                }
            };
            series += head.len() + v2::svarint_len(i64::from(set) - i64::from(sets.previous));
        }
        let defined = body.defined + u32::from(new_series.is_some());
        empty
            + v2::varint_len(u64::from(set_count))
            + set_bytes
            + v2::varint_len(u64::from(defined))
            + series
            + v2::varint_len(body.count as u64 + 1)
            + body.points.len()
            + v2::svarint_len(v2::series_delta(index, body.previous))
            + fields
    }

    fn define(&self, body: &mut Body, def: &[u8]) {
        let (head, dims) = split(def);
        let set = body.sets.add(dims);
        body.series.extend_from_slice(head);
        v2::svarint(
            &mut body.series,
            i64::from(set) - i64::from(body.sets.previous),
        );
        body.sets.previous = set;
        body.defined += 1;
    }

    fn point(&self, body: &mut Body, index: u32, fields: &[u8]) {
        V2.point(body, index, fields);
    }

    fn close(&self, id: &str, head: &[u8], body: &Body, out: &mut Vec<u8>) {
        v2::string(out, id);
        out.extend_from_slice(head);
        v2::varint(out, u64::from(body.sets.len()));
        out.extend_from_slice(&body.sets.bytes);
        v2::varint(out, u64::from(body.defined));
        out.extend_from_slice(&body.series);
        v2::varint(out, body.count as u64);
        out.extend_from_slice(&body.points);
    }

    fn decode<'a>(&self, encoded: &'a [u8]) -> Result<wire::Batch<'a>> {
        v3::decode(encoded).map_err(|e| fault(&e))
    }
}
