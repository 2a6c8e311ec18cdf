//! Wire v2: the binary encoding (`edgepush_protocol::wire::v2`), written
//! piece by piece.

use alloc::vec::Vec;

use super::{BatchWriter, Body, Fields, MAX_ID_LEN, SeriesDef, fault};
use crate::config::Config;
use crate::error::Result;
use edgepush_protocol::wire::{self, Version, v2};

/// The wire v2 writer.
#[derive(Debug)]
pub(super) struct V2;

impl BatchWriter for V2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn series(&self, s: &SeriesDef<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        v2::series(
            &mut out,
            s.name,
            s.kind,
            s.unit,
            s.resolution,
            s.dimensions.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        );
        Ok(out)
    }

    /// Namespace, time and dimensions.
    fn head(&self, config: &Config, now_ms: i64, head: &mut Vec<u8>) -> Result<usize> {
        v2::string(head, &config.namespace);
        v2::svarint(head, now_ms);
        v2::dimensions(
            head,
            config
                .dimensions
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        // The id's length takes one byte.
        Ok(1 + MAX_ID_LEN + head.len())
    }

    /// Flags, then the fields they announce.
    fn fields(&self, p: &Fields<'_>, out: &mut Vec<u8>) {
        v2::fields(
            out,
            v2::flags(
                p.t,
                p.x.is_some(),
                p.vs.is_some(),
                p.cs.is_some(),
                p.st.is_some(),
            ),
            p.t,
            p.x,
            p.vs,
            p.cs,
            p.st,
            None,
        );
    }

    fn size_with(
        &self,
        empty: usize,
        body: &Body,
        index: u32,
        new_series: Option<&[u8]>,
        fields: usize,
    ) -> usize {
        let defined = body.defined + u32::from(new_series.is_some());
        empty
            + body.series.len()
            + body.points.len()
            + new_series.map_or(0, <[u8]>::len)
            + fields
            + v2::varint_len(u64::from(defined))
            + v2::varint_len(body.count as u64 + 1)
            + v2::svarint_len(v2::series_delta(index, body.previous))
    }

    fn define(&self, body: &mut Body, def: &[u8]) {
        body.series.extend_from_slice(def);
        body.defined += 1;
    }

    fn point(&self, body: &mut Body, index: u32, fields: &[u8]) {
        v2::svarint(&mut body.points, v2::series_delta(index, body.previous));
        body.points.extend_from_slice(fields);
        body.previous = Some(index);
        body.count += 1;
    }

    fn close(&self, id: &str, head: &[u8], body: &Body, out: &mut Vec<u8>) {
        v2::string(out, id);
        out.extend_from_slice(head);
        v2::varint(out, u64::from(body.defined));
        out.extend_from_slice(&body.series);
        v2::varint(out, body.count as u64);
        out.extend_from_slice(&body.points);
    }

    fn decode<'a>(&self, encoded: &'a [u8]) -> Result<wire::Batch<'a>> {
        v2::decode(encoded).map_err(|e| fault(&e))
    }
}
