//! Each thread's cache of the per-call index (with `std`): the entries it
//! found, by emitter, so a repeat call neither locks nor writes anything
//! shared.
//!
//! A thread keeps caches for at most [`MAX_EMITTERS`] emitters, the one
//! that last gained an entry first (the one let go past the limit is the
//! last); a cache holds only entries of its emitter's index (so no more
//! than the index), and is let go when its emitter is dropped and the
//! thread next adds an entry.

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::cell::RefCell;

use hashbrown::HashTable;

use super::super::Shared;
use super::super::handles::{Target, UNSTAGED};
use super::Entry;
use crate::staging::Buffer;
use edgepush_protocol::validate;

/// Most emitters a thread keeps a cache for.
const MAX_EMITTERS: usize = 4;

/// One emitter's entries, as this thread found them.
struct Cache {
    owner: u64,
    emitter: Weak<Shared>,
    entries: HashTable<Arc<Entry>>,
    /// The thread's staging buffer for the emitter (the one
    /// [`crate::staging`] gave it), so a counter or distribution found here
    /// is staged without a second thread-local lookup.
    buffer: Option<Arc<Buffer>>,
}

std::thread_local! {
    static LOCAL: RefCell<Vec<Cache>> = const { RefCell::new(Vec::new()) };
}

/// Records into the entry of `shared`'s index that `matches`, if this
/// thread has it: stages `stage` when the series is staged and the value
/// valid, else runs `record`. Hands `record` back when the thread does not
/// have the entry.
#[inline]
pub(super) fn find<R: FnOnce(&Target)>(
    shared: &Shared,
    hash: u64,
    matches: impl Fn(&Arc<Entry>) -> bool,
    stage: Option<f64>,
    record: R,
) -> Result<(), R> {
    let mut record = Some(record);
    let _ = LOCAL.try_with(|local| {
        let Ok(local) = local.try_borrow() else {
            return;
        };
        let Some(cache) = local.iter().find(|c| c.owner == shared.id) else {
            return;
        };
        let Some(entry) = cache.entries.find(hash, matches) else {
            return;
        };
        let staged = entry.target.staged;
        if let (Some(v), Some(buffer)) = (stage, &cache.buffer)
            && staged != UNSTAGED
            && validate::value(v).is_ok()
            && buffer.push(staged, v)
        {
            record.take();
        } else if let Some(record) = record.take() {
            record(&entry.target);
        }
    });
    match record {
        None => Ok(()),
        Some(record) => Err(record),
    }
}

/// Adds `entry` of `shared`'s index to this thread's cache.
#[cold]
pub(super) fn insert(shared: &Arc<Shared>, entry: &Arc<Entry>) {
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        local.retain(|c| c.emitter.strong_count() > 0);
        match local.iter().position(|c| c.owner == shared.id) {
            Some(i) => local[..=i].rotate_right(1),
            None => {
                local.truncate(MAX_EMITTERS - 1);
                local.insert(
                    0,
                    Cache {
                        owner: shared.id,
                        emitter: Arc::downgrade(shared),
                        entries: HashTable::new(),
                        buffer: shared.prepare(),
                    },
                );
            }
        }
        let cache = &mut local[0];
        if cache
            .entries
            .find(entry.hash, |e| Arc::ptr_eq(e, entry))
            .is_none()
        {
            cache
                .entries
                .insert_unique(entry.hash, Arc::clone(entry), |e| e.hash);
        }
    });
}
