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

use crate::spool::{Spool, SpoolError};
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
}

/// Records are checked again when read back, but they were checked on the
/// way in (or merged here): bounds that only a corrupt record exceeds.
fn read_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 1 << 28,
        max_points: 1 << 24,
        max_series: 1 << 24,
        max_values_per_point: 1 << 20,
        ..Limits::default()
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
        let limits = read_limits();
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
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                generation: newest,
                spool,
                max_bytes,
            },
            unfinished,
            live,
        ))
    }

    /// Writes `batch` to the current generation, durably.
    pub fn append(&self, batch: &Batch) -> Result<(), SpoolError> {
        self.spool.append(batch)
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
