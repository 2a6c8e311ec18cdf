//! The aggregator's journal: with a spool directory, every push is on disk
//! before it is merged and answered, so a crash (`SIGKILL`, power) loses
//! nothing the receiver acknowledged.
//!
//! The journal is a sequence of generations under `<spool_dir>/aggregation/`,
//! each a directory `<number>` holding spool segments ([`Spool`]): the
//! pushes merged while it was current. A flush that takes periods out of
//! the aggregator starts the next generation, whose first records are what
//! stays open (the merged state, as batches), and whose file `from` says
//! how the flush chose what it took: its emission time, and all periods or
//! those over by a flush interval. The generation before is deleted once
//! every sink has what the flush took, each batch marked as it goes
//! (`done-<sink>-<batch id>`). A generation is built under `<number>.tmp`
//! and renamed, so it appears whole or not at all.
//!
//! At start: each generation that has a successor is read back, merged
//! afresh and taken again by its successor's `from`, which gives the same
//! merged batches with the same ids (line protocol overwrites them with
//! themselves); the batches not marked done go to their sinks again. The
//! newest generation is merged into the live aggregator. The limit is the
//! spool's: a batch a sink took just before a crash, unmarked, is sent
//! again (CloudWatch would count it twice).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::spool::{Spool, SpoolError, segment_path};
use edgepush_receiver::aggregate::{Aggregator, Settings};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::sink::SinkTag;

/// How a flush chose the periods it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Took {
    /// Every period open (when full, at shutdown).
    All,
    /// The periods over by this flush interval, in seconds.
    Closed(u64),
}

/// What a generation's flush took and not every sink had when the receiver
/// stopped.
#[derive(Debug)]
pub struct Unfinished {
    /// The generation.
    pub generation: u64,
    /// Each merged batch, with the sinks it is still for.
    pub batches: Vec<(Batch, Vec<usize>)>,
}

/// The journal: the current generation, appended to.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    generation: u64,
    spool: Spool,
    max_bytes: u64,
    syncer: Arc<Syncer>,
}

/// Where a push ends in the journal; durable once [`Syncer::sync`] of it
/// returns.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    generation: u64,
    segment: u64,
    end: u64,
}

/// Makes what was written to the journal durable, outside the
/// aggregator's lock: one `fdatasync` covers every push written before it
/// (group commit), so pushes that wait together pay for one.
#[derive(Debug)]
pub struct Syncer {
    dir: PathBuf,
    /// The current generation, set once a new one is on disk.
    generation: AtomicU64,
    /// How far the journal is known durable: generation, segment, offset.
    synced: Mutex<(u64, u64, u64)>,
}

impl Syncer {
    /// Returns once what `ticket` ends is on disk.
    pub fn sync(&self, ticket: Ticket) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let at = (ticket.generation, ticket.segment, ticket.end);
        // A newer generation's first records, on disk before it became
        // current, hold everything merged before it, this push included.
        let rotated = || ticket.generation < self.generation.load(Ordering::Acquire);
        if at <= *synced || rotated() {
            return Ok(());
        }
        let path = segment_path(
            &generation_dir(&self.dir, ticket.generation),
            ticket.segment,
        );
        let file = match File::open(&path) {
            Ok(file) => file,
            // Its generation was delivered and deleted meanwhile.
            Err(_) if rotated() => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        file.sync_data()?;
        *synced = (*synced).max((ticket.generation, ticket.segment, len));
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn generation_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:020}"))
}

// The journal's records are envelopes like a spool's; their tag names no
// sink here, and is not read.
const TAG: SinkTag = SinkTag::CloudWatch;

fn read_from(dir: &Path) -> io::Result<(i64, Took)> {
    let text = fs::read_to_string(dir.join("from"))?;
    let bad = || io::Error::other(format!("{}: unreadable `from`: {text:?}", dir.display()));
    let mut words = text.split_whitespace();
    let emitted: i64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let took = match (words.next(), words.next()) {
        (Some("all"), None) => Took::All,
        (Some("closed"), Some(s)) => Took::Closed(s.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((emitted, took))
}

impl Journal {
    /// Opens the journal in `dir` (each generation bounded to `max_bytes`):
    /// the generations to finish, and the batches to merge into the live
    /// aggregator (the newest generation's), read back at `now_ms`.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        sinks: &[usize],
        now_ms: i64,
    ) -> io::Result<(Journal, Vec<Unfinished>, Vec<Batch>)> {
        fs::create_dir_all(dir)?;
        let mut generations = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A generation never finished: its flush did not happen.
                fs::remove_dir_all(entry.path())?;
            } else if let Ok(n) = name.parse::<u64>() {
                generations.push(n);
            }
        }
        generations.sort_unstable();
        if generations.is_empty() {
            fs::create_dir_all(generation_dir(dir, 1))?;
            sync_dir(dir)?;
            generations.push(1);
        }
        let limits = Limits::stored();
        let mut unfinished = Vec::new();
        for pair in generations.windows(2) {
            let (generation, next) = (pair[0], pair[1]);
            let path = generation_dir(dir, generation);
            let (emitted, took) = read_from(&generation_dir(dir, next))?;
            let mut aggregator = Aggregator::new();
            for batch in Spool::open(&path, TAG, max_bytes)?.read_all(now_ms, &limits)? {
                aggregator.add(&batch);
            }
            let taken = match took {
                Took::All => aggregator.take_all(emitted),
                Took::Closed(seconds) => {
                    let settings = Settings {
                        flush_interval_seconds: seconds,
                        ..Settings::default()
                    };
                    aggregator.take(emitted, settings.closed(emitted))
                }
            };
            let batches = taken
                .into_iter()
                .map(|batch| {
                    let todo = sinks
                        .iter()
                        .copied()
                        .filter(|i| !path.join(format!("done-{i}-{}", batch.id)).exists())
                        .collect();
                    (batch, todo)
                })
                .collect();
            unfinished.push(Unfinished {
                generation,
                batches,
            });
        }
        let newest = *generations.last().unwrap_or(&1);
        let spool = Spool::open(&generation_dir(dir, newest), TAG, max_bytes)?;
        let live = spool.read_all(now_ms, &limits)?;
        let syncer = Arc::new(Syncer {
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(newest),
            synced: Mutex::new((0, 0, 0)),
        });
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                generation: newest,
                spool,
                max_bytes,
                syncer,
            },
            unfinished,
            live,
        ))
    }

    /// A batch as the journal writes it ([`Journal::write`]): encoding is
    /// the costly part, done outside the aggregator's lock.
    pub fn encode(batch: &Batch) -> Vec<Vec<u8>> {
        edgepush_receiver::envelope::encode(batch, TAG)
    }

    /// Writes an [`Journal::encode`]d batch to the current generation;
    /// durable once the [`Syncer`] has synced its ticket.
    pub fn write(&self, encoded: &[Vec<u8>]) -> Result<Ticket, SpoolError> {
        let (segment, end) = self.spool.append_unsynced(encoded)?;
        Ok(Ticket {
            generation: self.generation,
            segment,
            end,
        })
    }

    /// What makes its writes durable.
    pub fn syncer(&self) -> Arc<Syncer> {
        self.syncer.clone()
    }

    /// Starts the next generation after a flush at `emitted_ms` that took by
    /// `took`, with `open` (what stays merged) as its first records; the
    /// generation the flush took from.
    pub fn rotate(&mut self, emitted_ms: i64, took: Took, open: &[Batch]) -> io::Result<u64> {
        let next = self.generation + 1;
        let tmp = self.dir.join(format!("{next:020}.tmp"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let from = match took {
            Took::All => format!("{emitted_ms} all\n"),
            Took::Closed(seconds) => format!("{emitted_ms} closed {seconds}\n"),
        };
        let file = tmp.join("from");
        fs::write(&file, from)?;
        File::open(&file)?.sync_all()?;
        {
            let spool = Spool::open(&tmp, TAG, u64::MAX)?;
            for batch in open {
                spool.append(batch).map_err(io::Error::other)?;
            }
        }
        sync_dir(&tmp)?;
        let path = generation_dir(&self.dir, next);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.spool = Spool::open(&path, TAG, self.max_bytes)?;
        let taken_from = self.generation;
        self.generation = next;
        self.syncer.generation.store(next, Ordering::Release);
        Ok(taken_from)
    }

    /// Marks batch `id` of `generation`'s flush as taken by sink `index`.
    pub fn done(&self, generation: u64, index: usize, id: &str) -> io::Result<()> {
        let path = generation_dir(&self.dir, generation);
        File::create(path.join(format!("done-{index}-{id}")))?.sync_all()?;
        sync_dir(&path)
    }

    /// Deletes `generation`: every sink has what its flush took.
    pub fn finish(&self, generation: u64) -> io::Result<()> {
        fs::remove_dir_all(generation_dir(&self.dir, generation))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::tests::counters;

    fn batch(now: i64) -> Batch {
        counters(1, now)
    }

    /// Writes wait for one shared sync; a write whose generation a flush
    /// has since replaced (and deleted, once delivered) is durable through
    /// the new generation's first records, not an error.
    #[test]
    fn syncs_cover_earlier_writes_and_writes_of_replaced_generations() {
        let dir = tempfile::tempdir().expect("dir");
        let now = crate::now_ms();
        let (mut journal, unfinished, live) =
            Journal::open(dir.path(), 1 << 20, &[0], now).expect("open");
        assert!(unfinished.is_empty() && live.is_empty());
        let syncer = journal.syncer();
        let first = journal.write(&Journal::encode(&batch(now))).expect("write");
        let second = journal.write(&Journal::encode(&batch(now))).expect("write");
        syncer.sync(second).expect("sync");
        syncer.sync(first).expect("covered");
        let old = journal.write(&Journal::encode(&batch(now))).expect("write");
        let from = journal.rotate(now, Took::All, &[]).expect("rotate");
        journal.finish(from).expect("delivered");
        syncer
            .sync(old)
            .expect("durable through the new generation");
        let fresh = journal.write(&Journal::encode(&batch(now))).expect("write");
        syncer.sync(fresh).expect("sync");
        drop(journal);
        let (_, unfinished, live) = Journal::open(dir.path(), 1 << 20, &[0], now).expect("open");
        assert!(unfinished.is_empty());
        assert_eq!(live.len(), 1, "the write after the flush");
    }
}
