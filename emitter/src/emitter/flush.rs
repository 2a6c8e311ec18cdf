//! Flushing: the aggregates of the series recorded into since the last
//! flush taken under the registry lock, then encoded as batches outside
//! it.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use super::Emitter;
use super::series::Cell;
use crate::encode::{self, Item};
use crate::error::Result;
use crate::payload::Payload;

impl Emitter {
    /// Takes everything recorded since the last flush and encodes it as
    /// batches stamped with `now_ms` (milliseconds since the Unix epoch).
    /// Each batch holds at most
    /// [`Config::max_points_per_batch`](crate::Config::max_points_per_batch)
    /// CloudWatch datums and
    /// [`Config::max_batch_bytes`](crate::Config::max_batch_bytes) of JSON.
    /// Series with nothing recorded are left out; no batch is made when
    /// nothing was recorded.
    pub fn flush_at(&self, now_ms: i64) -> Result<Vec<Payload>> {
        let mut items: Vec<Item<Arc<Cell>>> = Vec::new();
        {
            let mut registry = self.shared.registry.lock();
            #[cfg(feature = "std")]
            self.shared
                .apply_staged(&registry, &mut self.shared.buffers.lock());
            self.report_self_metrics(&mut registry);
            // The series recorded into, not every series: idle ones cost
            // nothing here.
            let top = self.shared.touched.take();
            for cell in registry.listed(top) {
                if let Some(taken) = cell.take_listed() {
                    items.push(Item {
                        series: Arc::clone(cell),
                        ts: now_ms,
                        taken,
                    });
                }
            }
            let timestamped = core::mem::take(&mut *self.shared.timestamped.lock());
            for ((id, ts), taken) in timestamped {
                if let Some(cell) = registry.cell(id) {
                    items.push(Item {
                        series: Arc::clone(cell),
                        ts,
                        taken,
                    });
                }
            }
        }
        // Series with like names and dimensions side by side compress best.
        items.sort_by(|a, b| a.series.def.cmp(&b.series.def).then(a.ts.cmp(&b.ts)));
        let shared = &self.shared;
        let batches = encode::batches(
            &shared.config,
            &shared.writer,
            &shared.sequence,
            now_ms,
            &items,
            &shared.compressor,
        )?;
        let t = &shared.telemetry;
        let points: usize = batches.iter().map(Payload::points).sum();
        t.points_flushed.fetch_add(points as u64, Relaxed);
        t.batches_encoded.fetch_add(batches.len() as u64, Relaxed);
        Ok(batches)
    }

    /// How many series hold data not yet flushed (each becomes at least one
    /// data point at the next flush), plus explicitly timestamped values
    /// waiting. Applies what threads staged: for deciding when to flush,
    /// not for a hot path.
    pub fn pending(&self) -> usize {
        let registry = self.shared.registry.lock();
        #[cfg(feature = "std")]
        self.shared
            .apply_staged(&registry, &mut self.shared.buffers.lock());
        let top = self.shared.touched.top();
        let series = registry.listed(top).filter(|cell| cell.has_data()).count();
        series + self.shared.timestamped.lock().len()
    }

    /// [`Emitter::flush_at`] with the system clock.
    #[cfg(feature = "std")]
    pub fn flush(&self) -> Result<Vec<Payload>> {
        self.flush_at(crate::now_ms())
    }
}
