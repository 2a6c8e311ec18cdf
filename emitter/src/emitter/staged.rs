//! Applying what threads staged (with `std`): each thread's recordings
//! into counters and distributions wait in its own buffer
//! ([`crate::staging`]) until a flush, or the thread itself when its buffer
//! is full, applies them to the series under the registry lock.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Shared;
use super::registry::Registry;
use super::series::{Cell, State, Touched};
use crate::staging::{self, Buffer};

impl Shared {
    /// A staging buffer for the calling thread, unless
    /// [`staging::MAX_BUFFERS`] threads have one already.
    #[cold]
    pub(super) fn attach(&self) -> Option<Arc<Buffer>> {
        let mut buffers = self.buffers.lock();
        if buffers.len() >= staging::MAX_BUFFERS {
            // Buffers of threads that are gone count until applied.
            if let Some(registry) = self.registry.try_lock() {
                self.apply_staged(&registry, &mut buffers);
            }
            if buffers.len() >= staging::MAX_BUFFERS {
                return None;
            }
        }
        let buffer = Arc::new(Buffer::new());
        buffers.push(Arc::clone(&buffer));
        Some(buffer)
    }

    /// Applies the calling thread's full buffer, if no one holds the
    /// registry (never waits).
    #[cold]
    pub(super) fn apply_own(&self, buffer: &Buffer) -> bool {
        let Some(registry) = self.registry.try_lock() else {
            return false;
        };
        let mut applier = Applier::new(&registry.cells, &self.touched);
        buffer.drain(|id, v| applier.apply(id, v));
        applier.finish();
        true
    }

    /// Applies every thread's staged recordings and lets go of the buffers
    /// of threads that are gone. The registry lock is what makes the caller
    /// the buffers' only consumer.
    pub(super) fn apply_staged(&self, registry: &Registry, buffers: &mut Vec<Arc<Buffer>>) {
        let mut applier = Applier::new(&registry.cells, &self.touched);
        buffers.retain(|buffer| {
            // Whether its thread let it go is read before the drain: a thread
            // that stages and then lets go has staged before this reads its
            // count as gone (the count's decrement releases, the fence
            // acquires), so the drain sees that recording. Read after, a
            // recording staged between the drain and the letting go would be
            // dropped with the buffer.
            let gone = Buffer::orphaned(buffer);
            core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
            buffer.drain(|id, v| applier.apply(id, v));
            !gone
        });
        applier.finish();
    }

    /// Gives the calling thread its buffer now, so that its first
    /// recording does not allocate; returns it.
    pub(super) fn prepare(&self) -> Option<Arc<Buffer>> {
        staging::prepare(self.id, || self.attach())
    }
}

/// Applies staged recordings to their series (counters and distributions:
/// nothing else is staged). A counter's recordings are added up first, so
/// that a counter costs one compare-and-swap per buffer rather than one
/// per recording. The caller holds the registry, so no flush takes a
/// distribution's buffer meanwhile.
struct Applier<'a> {
    cells: &'a [Arc<Cell>],
    /// Where the series applied to are listed for the flush.
    touched: &'a Touched,
    /// Counter sums not yet applied: `(series id, sum)`.
    sums: [(usize, f64); 4],
    len: usize,
}

impl<'a> Applier<'a> {
    fn new(cells: &'a [Arc<Cell>], touched: &'a Touched) -> Self {
        Applier {
            cells,
            touched,
            sums: [(0, 0.0); 4],
            len: 0,
        }
    }

    fn apply(&mut self, id: usize, v: f64) {
        match self.cells.get(id).map(|cell| &cell.state) {
            Some(State::Counter(_)) => {
                if let Some((_, sum)) = self.sums[..self.len].iter_mut().find(|(i, _)| *i == id) {
                    *sum += v;
                    return;
                }
                if self.len == self.sums.len() {
                    self.finish_sums();
                }
                self.sums[self.len] = (id, v);
                self.len += 1;
            }
            Some(State::Distribution(d)) => {
                d.active(|t| t.record(v, 1));
                self.touched.mark_held(&self.cells[id]);
            }
            _ => debug_assert!(false, "only counters and distributions are staged"),
        }
    }

    fn finish_sums(&mut self) {
        for (id, v) in &self.sums[..self.len] {
            if let Some(cell) = self.cells.get(*id)
                && let State::Counter(sum) = &cell.state
            {
                sum.add(*v);
                self.touched.mark_held(cell);
            }
        }
        self.len = 0;
    }

    /// Applies the counter sums still held.
    fn finish(mut self) {
        self.finish_sums();
    }
}
