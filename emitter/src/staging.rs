//! Per-thread staging of recordings (with `std`).
//!
//! Adding to a counter or recording into a distribution through the cells
//! directly costs atomic read-modify-writes (a compare-and-swap for a sum;
//! entering and leaving the double buffer and bumping a count for a
//! distribution). With `std`, a recording is instead written into the
//! recording thread's own [`Buffer`] for that emitter: two plain stores and
//! a release store, which no other thread writes. The buffers are applied
//! to the cells by whoever holds the emitter's registry lock: a flush
//! applies every thread's buffer first, and a thread whose buffer is full
//! applies its own if the lock is free. When it is not (a flush or a
//! registration is running), or the thread has no buffer, the recording
//! goes to the cells directly, as without `std`: a recorder never waits.
//!
//! A buffer is a single-producer, single-consumer ring: its thread is the
//! only producer, and consumers are serialised by the registry lock.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use portable_atomic::{AtomicU64, AtomicUsize};

/// Recordings a buffer holds before it is applied (16 bytes each).
pub(crate) const SLOTS: usize = 256;

/// Most buffers (threads) an emitter stages for at once; threads past it
/// record into the cells directly.
pub(crate) const MAX_BUFFERS: usize = 64;

/// Most emitters a thread keeps a buffer for; the least recently used one
/// is let go (its recordings are applied at the emitter's next flush).
const MAX_PER_THREAD: usize = 8;

/// A new emitter's id (ids are never reused, so a thread's buffer for an
/// emitter that is gone is never taken for another's).
pub(crate) fn next_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Relaxed)
}

/// One thread's staged recordings for one emitter: `(series id, value
/// bits)` pairs.
///
/// Aligned to a cache line pair so that two threads' buffers never share
/// one: the producer writes `tail` on every recording.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Buffer {
    slots: Box<[[AtomicU64; 2]; SLOTS]>,
    /// Next slot to fill; written by the producer only.
    tail: AtomicUsize,
    /// Next slot to apply; written by consumers only, on its own line.
    head: Line<AtomicUsize>,
}

/// A value on a cache line pair of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Line<T>(T);

impl Buffer {
    pub(crate) fn new() -> Self {
        Buffer {
            slots: Box::new(core::array::from_fn(|_| {
                [AtomicU64::new(0), AtomicU64::new(0)]
            })),
            tail: AtomicUsize::new(0),
            head: Line(AtomicUsize::new(0)),
        }
    }

    /// Stages `v` for series `id`; false if the buffer is full. Only the
    /// buffer's own thread calls this.
    #[inline]
    pub(crate) fn push(&self, id: usize, v: f64) -> bool {
        let tail = self.tail.load(Relaxed);
        if tail.wrapping_sub(self.head.0.load(Acquire)) >= SLOTS {
            return false;
        }
        let slot = &self.slots[tail % SLOTS];
        slot[0].store(id as u64, Relaxed);
        slot[1].store(v.to_bits(), Relaxed);
        self.tail.store(tail.wrapping_add(1), Release);
        true
    }

    /// Hands every staged recording to `apply` and empties the buffer.
    /// Callers must hold the emitter's registry lock (one consumer at a
    /// time).
    pub(crate) fn drain(&self, mut apply: impl FnMut(usize, f64)) {
        let tail = self.tail.load(Acquire);
        let mut head = self.head.0.load(Relaxed);
        while head != tail {
            let slot = &self.slots[head % SLOTS];
            apply(
                slot[0].load(Relaxed) as usize,
                f64::from_bits(slot[1].load(Relaxed)),
            );
            head = head.wrapping_add(1);
        }
        self.head.0.store(head, Release);
    }

    /// Whether this buffer's thread has let it go (the emitter holds the
    /// only reference): it can be dropped once drained.
    pub(crate) fn orphaned(this: &Arc<Buffer>) -> bool {
        Arc::strong_count(this) == 1
    }
}

/// A thread's buffers, most recently used first, by emitter id. `None`:
/// the emitter had no buffer to spare; record directly.
type Local = Vec<(u64, Option<Arc<Buffer>>)>;

std::thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Vec::new()) };
}

/// Stages `v` for series `id` of emitter `owner` on this thread's buffer.
///
/// `attach` gives the thread a buffer (the first time it records into this
/// emitter); `apply` empties a full buffer if it can. False when the
/// recording was not staged: the caller records it directly.
#[inline]
pub(crate) fn stage(
    owner: u64,
    id: usize,
    v: f64,
    attach: impl FnOnce() -> Option<Arc<Buffer>>,
    apply: impl FnOnce(&Buffer) -> bool,
) -> bool {
    LOCAL
        .try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return false;
            };
            let Some(buffer) = front(&mut local, owner, attach) else {
                return false;
            };
            buffer.push(id, v) || (apply(buffer) && buffer.push(id, v))
        })
        .unwrap_or(false)
}

/// This thread's buffer for emitter `owner`, brought to the front first
/// (and attached if the thread has none); `None` if the emitter had none
/// to spare.
#[inline]
fn front(
    local: &mut Local,
    owner: u64,
    attach: impl FnOnce() -> Option<Arc<Buffer>>,
) -> Option<&Arc<Buffer>> {
    if local.first().is_none_or(|(o, _)| *o != owner) {
        select(local, owner, attach);
    }
    local.first().and_then(|(_, buffer)| buffer.as_ref())
}

/// Moves `owner`'s buffer to the front, attaching one if the thread has
/// none; forgets buffers of emitters that are gone.
#[cold]
fn select(local: &mut Local, owner: u64, attach: impl FnOnce() -> Option<Arc<Buffer>>) {
    local.retain(|(_, b)| b.as_ref().is_none_or(|b| !Buffer::orphaned(b)));
    if let Some(i) = local.iter().position(|(o, _)| *o == owner) {
        local[..=i].rotate_right(1);
        return;
    }
    local.truncate(MAX_PER_THREAD - 1);
    local.insert(0, (owner, attach()));
}

/// Gives this thread its buffer for emitter `owner` now (at registration),
/// so that its first recording does not allocate; returns it, for callers
/// that keep it at hand (the per-call index's thread cache), pushing into
/// it from this thread only.
pub(crate) fn prepare(
    owner: u64,
    attach: impl FnOnce() -> Option<Arc<Buffer>>,
) -> Option<Arc<Buffer>> {
    LOCAL
        .try_with(|local| {
            let mut local = local.try_borrow_mut().ok()?;
            front(&mut local, owner, attach).cloned()
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_fills_drains_in_order_and_wraps() {
        let b = Buffer::new();
        let mut seen = Vec::new();
        for round in 0..3 {
            for i in 0..SLOTS {
                assert!(b.push(i, (round * SLOTS + i) as f64));
            }
            assert!(!b.push(0, -1.0), "full");
            b.drain(|id, v| seen.push((id, v)));
            assert!(b.push(7, 0.5), "room again");
            b.drain(|id, v| seen.push((id, v)));
        }
        let expected: Vec<(usize, f64)> = (0..3)
            .flat_map(|round| {
                (0..SLOTS)
                    .map(move |i| (i, (round * SLOTS + i) as f64))
                    .chain([(7, 0.5)])
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_thread_keeps_a_bounded_set_of_buffers() {
        let owners: Vec<(u64, Arc<Buffer>)> =
            (0..20).map(|o| (o, Arc::new(Buffer::new()))).collect();
        for (owner, buffer) in &owners {
            assert!(stage(
                *owner,
                1,
                1.0,
                || Some(Arc::clone(buffer)),
                |_| false
            ));
        }
        LOCAL.with(|l| {
            let l = l.borrow();
            assert_eq!(l.len(), MAX_PER_THREAD);
            assert_eq!(l[0].0, 19, "most recent first");
        });
        // Buffers of emitters that are gone (only this thread holds them)
        // are forgotten at the next change.
        drop(owners);
        let next = Arc::new(Buffer::new());
        assert!(stage(100, 1, 1.0, || Some(Arc::clone(&next)), |_| false));
        LOCAL.with(|l| {
            let l = l.borrow();
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].0, 100);
        });
    }
}
