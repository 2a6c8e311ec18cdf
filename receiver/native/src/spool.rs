//! The native disk spool: a batch a sink could not take (after its retries)
//! is written to disk, answered as accepted, and sent to that sink again
//! when it recovers, across receiver restarts.
//!
//! Each sink has a directory of its own, `<dir>/<index>-<name>/`, holding
//! append-only segment files `<number>.seg` and a `cursor` (the segment and
//! offset of the oldest record not yet delivered). A segment is a sequence of
//! records: payload length (u32, little-endian), CRC-32 of the payload
//! (u32, little-endian), payload. A payload is a queue message
//! ([`edgepush_receiver::envelope`]: the batch as gzip'd wire v1 JSON), so replay
//! decodes it with the same checks as a push.
//!
//! Durability: every append is written and `fsync`ed (file and, for a new
//! segment, the directory) before the push is answered; the cursor is
//! replaced atomically (write, `fsync`, rename) after each delivery. A crash
//! can therefore lose no acknowledged batch, and can at worst deliver once
//! more the record being replayed when it happened (CloudWatch would count
//! that record twice; line protocol overwrites it with itself). A torn
//! record at the end of the newest segment (a crash mid-append, never
//! acknowledged) is cut off when the spool opens; a record whose checksum
//! does not match is moved aside to `corrupt/` and logged, never replayed.
//!
//! Bound: appends fail with [`SpoolError::Full`] once the segments hold
//! `max_bytes`; the push is then answered 503 and the emitter keeps its
//! batch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use edgepush_receiver::envelope;
use edgepush_receiver::limits::Limits;
use edgepush_receiver::model::Batch;
use edgepush_receiver::sink::SinkTag;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Bytes before each record's payload.
const HEADER: usize = 8;
/// No record is longer (queue messages stay under 128 KB): a longer length
/// is damage, not a record.
const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Why a batch could not be spooled.
#[derive(Debug)]
pub enum SpoolError {
    /// The spool holds its maximum.
    Full {
        /// The bound.
        max_bytes: u64,
    },
    /// The disk said no.
    Io(io::Error),
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpoolError::Full { max_bytes } => write!(f, "spool full ({max_bytes} bytes)"),
            SpoolError::Io(e) => write!(f, "spool write failed: {e}"),
        }
    }
}

impl std::error::Error for SpoolError {}

impl From<io::Error> for SpoolError {
    fn from(e: io::Error) -> Self {
        SpoolError::Io(e)
    }
}

/// Where replay stands: a record's segment and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// One sink's spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    tag: SinkTag,
    max_bytes: u64,
    segment_bytes: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Segment numbers on disk, oldest first (never empty: the last one is
    /// the one appended to).
    segments: Vec<u64>,
    /// Bytes in all segments.
    bytes: u64,
    /// The oldest record not yet delivered.
    cursor: Position,
    /// The end of the newest segment.
    end: Position,
}

impl Spool {
    /// Opens (or creates) the spool in `dir` for messages tagged `tag`,
    /// bounded to `max_bytes`. Cuts off a torn last record.
    pub fn open(dir: &Path, tag: SinkTag, max_bytes: u64) -> io::Result<Self> {
        Self::open_with(dir, tag, max_bytes, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, tag: SinkTag, max_bytes: u64, segment_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut segments: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        segments.sort_unstable();
        if segments.is_empty() {
            segments.push(1);
            File::create(segment_path(dir, 1))?.sync_all()?;
            sync_dir(dir)?;
        }
        let newest = *segments.last().unwrap_or(&1);
        // Cut a torn tail off the newest segment.
        let valid = valid_length(&segment_path(dir, newest))?;
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(dir, newest))?;
        if file.metadata()?.len() != valid {
            // Most likely a crash mid-append (never acknowledged); possibly a
            // damaged length. Either way the bytes are kept aside.
            tracing::warn!(dir = %dir.display(), segment = newest, kept = valid, "spool: cutting off an incomplete last record; moved to corrupt/");
            let tail = fs::read(segment_path(dir, newest))?.split_off(valid as usize);
            set_aside(dir, newest, valid, &tail, "incomplete last record")?;
            file.set_len(valid)?;
            file.sync_all()?;
        }
        let mut bytes = 0;
        for s in &segments {
            bytes += fs::metadata(segment_path(dir, *s))?.len();
        }
        let first = segments[0];
        let cursor = read_cursor(dir)
            .filter(|c| c.segment >= first)
            .unwrap_or(Position {
                segment: first,
                offset: 0,
            });
        Ok(Spool {
            dir: dir.to_path_buf(),
            tag,
            max_bytes,
            segment_bytes,
            state: Mutex::new(State {
                segments,
                bytes,
                cursor,
                end: Position {
                    segment: newest,
                    offset: valid,
                },
            }),
        })
    }

    /// Whether records wait to be delivered.
    pub fn has_backlog(&self) -> bool {
        self.state.lock().map(|s| s.cursor < s.end).unwrap_or(true)
    }

    /// Every batch not yet delivered, oldest first, without moving the
    /// cursor (for a journal read back whole). A record that fails its
    /// checksum or does not decode is moved to `corrupt/` and left out.
    pub fn read_all(&self, now_ms: i64, limits: &Limits) -> io::Result<Vec<Batch>> {
        let (segments, cursor) = {
            let state = self
                .state
                .lock()
                .map_err(|_| io::Error::other("spool lock poisoned"))?;
            (state.segments.clone(), state.cursor)
        };
        let mut batches = Vec::new();
        for segment in segments.into_iter().filter(|s| *s >= cursor.segment) {
            let data = fs::read(segment_path(&self.dir, segment))?;
            let mut at = if segment == cursor.segment {
                cursor.offset as usize
            } else {
                0
            };
            while data.len().saturating_sub(at) >= HEADER {
                let word =
                    |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                let (len, crc) = (word(at) as usize, word(at + 4));
                let Some(payload) = data.get(at + HEADER..at + HEADER + len) else {
                    break;
                };
                let decoded = if crc32fast::hash(payload) == crc {
                    envelope::decode(payload, now_ms, limits)
                        .map(|(_, batch)| batch)
                        .map_err(|e| e.message)
                } else {
                    Err("checksum mismatch".to_string())
                };
                match decoded {
                    Ok(batch) => batches.push(batch),
                    Err(reason) => {
                        tracing::error!(dir = %self.dir.display(), segment, offset = at, %reason, "spool: record cannot be read back; moved to corrupt/");
                        set_aside(&self.dir, segment, at as u64, payload, &reason)?;
                    }
                }
                at += HEADER + len;
            }
        }
        Ok(batches)
    }

    /// Bytes on disk (delivered records included, until their segment goes).
    pub fn bytes(&self) -> u64 {
        self.state.lock().map(|s| s.bytes).unwrap_or(0)
    }

    /// Writes `batch` durably (see the module docs) or says why not.
    pub fn append(&self, batch: &Batch) -> Result<(), SpoolError> {
        self.write(&envelope::encode(batch, self.tag), true)
            .map(|_| ())
    }

    /// Writes a batch's `messages` ([`envelope::encode`]d with this spool's
    /// tag, outside any lock the caller holds) without waiting for the
    /// disk: where they end (the segment and the offset after them).
    /// Syncing the segment's file makes them durable; a segment is synced
    /// before the next one starts.
    pub fn append_unsynced(&self, messages: &[Vec<u8>]) -> Result<(u64, u64), SpoolError> {
        self.write(messages, false)
    }

    fn write(&self, messages: &[Vec<u8>], sync: bool) -> Result<(u64, u64), SpoolError> {
        let size: u64 = messages.iter().map(|m| (m.len() + HEADER) as u64).sum();
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("spool lock poisoned"))?;
        if state.bytes + size > self.max_bytes {
            return Err(SpoolError::Full {
                max_bytes: self.max_bytes,
            });
        }
        if state.end.offset >= self.segment_bytes {
            // What was written unsynced to the full segment is durable
            // before the next one starts.
            File::open(segment_path(&self.dir, state.end.segment))?.sync_data()?;
            let next = state.end.segment + 1;
            File::create(segment_path(&self.dir, next))?.sync_all()?;
            sync_dir(&self.dir)?;
            state.segments.push(next);
            state.end = Position {
                segment: next,
                offset: 0,
            };
        }
        let mut record = Vec::with_capacity(size as usize);
        for m in messages {
            record.extend_from_slice(&(m.len() as u32).to_le_bytes());
            record.extend_from_slice(&crc32fast::hash(m).to_le_bytes());
            record.extend_from_slice(m);
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(segment_path(&self.dir, state.end.segment))?;
        let written = file
            .write_all(&record)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            // Leave no half record behind for a later append to follow.
            let _ = file.set_len(state.end.offset);
            return Err(e.into());
        }
        state.end.offset += size;
        state.bytes += size;
        Ok((state.end.segment, state.end.offset))
    }

    /// The oldest record not yet delivered. A record that fails its
    /// checksum or does not decode is moved to `corrupt/` (logged, with the
    /// reason) and skipped.
    pub fn next(&self, now_ms: i64, limits: &Limits) -> io::Result<Option<Entry>> {
        loop {
            let Some(Raw {
                at,
                len,
                payload,
                intact,
            }) = self.read_at_cursor()?
            else {
                return Ok(None);
            };
            let decoded = if intact {
                envelope::decode(&payload, now_ms, limits)
                    .map(|(_, batch)| batch)
                    .map_err(|e| e.message)
            } else {
                Err("checksum mismatch".to_string())
            };
            match decoded {
                Ok(batch) => return Ok(Some(Entry { at, len, batch })),
                Err(reason) => {
                    tracing::error!(dir = %self.dir.display(), segment = at.segment, offset = at.offset, %reason, "spool: record cannot be replayed; moved to corrupt/");
                    set_aside(&self.dir, at.segment, at.offset, &payload, &reason)?;
                    self.advance(at, len)?;
                }
            }
        }
    }

    /// Marks `entry` delivered: the cursor moves past it, and segments
    /// wholly delivered are deleted.
    pub fn ack(&self, entry: &Entry) -> io::Result<()> {
        self.advance(entry.at, entry.len)
    }

    /// Moves the cursor past the record at `at`, `len` bytes long with its
    /// header (nothing, if the cursor is elsewhere).
    fn advance(&self, at: Position, len: u64) -> io::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| io::Error::other("spool lock poisoned"))?;
        if state.cursor != at {
            return Ok(());
        }
        state.cursor.offset += len;
        // Past the end of an older segment: on to the next, deleting it.
        while state.cursor.segment < state.end.segment {
            let path = segment_path(&self.dir, state.cursor.segment);
            let size = fs::metadata(&path)?.len();
            if state.cursor.offset < size {
                break;
            }
            fs::remove_file(&path)?;
            state.bytes = state.bytes.saturating_sub(size);
            state.segments.remove(0);
            state.cursor = Position {
                segment: state.segments[0],
                offset: 0,
            };
        }
        // All delivered: start the newest segment over.
        if state.cursor == state.end && state.end.offset > 0 {
            let path = segment_path(&self.dir, state.end.segment);
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(0)?;
            file.sync_all()?;
            state.bytes = 0;
            state.end.offset = 0;
            state.cursor.offset = 0;
        }
        write_cursor(&self.dir, state.cursor)
    }

    /// The record at the cursor: position, length with header, payload and
    /// whether its checksum matches; `None` when all are delivered.
    fn read_at_cursor(&self) -> io::Result<Option<Raw>> {
        let at = match self.state.lock() {
            Ok(s) if s.cursor < s.end => s.cursor,
            Ok(_) => return Ok(None),
            Err(_) => return Err(io::Error::other("spool lock poisoned")),
        };
        let mut file = File::open(segment_path(&self.dir, at.segment))?;
        let size = file.metadata()?.len();
        file.seek(SeekFrom::Start(at.offset))?;
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let rest = size - at.offset;
        if len > MAX_RECORD_BYTES || (HEADER + len) as u64 > rest {
            // The length itself is damaged: the rest of this segment cannot
            // be cut into records. All of it is set aside.
            let mut payload = header.to_vec();
            file.read_to_end(&mut payload)?;
            return Ok(Some(Raw {
                at,
                len: rest,
                payload,
                intact: false,
            }));
        }
        let mut payload = vec![0; len];
        file.read_exact(&mut payload)?;
        let intact = crc32fast::hash(&payload) == crc;
        Ok(Some(Raw {
            at,
            len: (HEADER + len) as u64,
            payload,
            intact,
        }))
    }
}

impl Spool {
    /// Copies `entry` to `corrupt/` with `reason`: a batch its sink
    /// refused, kept for a person to look at (then [`Spool::ack`] it).
    pub fn set_aside(&self, entry: &Entry, reason: &str) -> io::Result<()> {
        let bytes = envelope::encode(&entry.batch, self.tag).concat();
        set_aside(&self.dir, entry.at.segment, entry.at.offset, &bytes, reason)
    }
}

/// A record as read: where, how long with its header, its payload, whether
/// its checksum matches.
struct Raw {
    at: Position,
    len: u64,
    payload: Vec<u8>,
    intact: bool,
}

/// A spooled record: where it is, its length, its batch.
#[derive(Debug)]
pub struct Entry {
    at: Position,
    len: u64,
    /// The batch (or, for a batch larger than one message, a part of it,
    /// with the same id).
    pub batch: Batch,
}

/// Keeps `bytes` that cannot be replayed in `corrupt/`, with the reason.
fn set_aside(dir: &Path, segment: u64, offset: u64, bytes: &[u8], reason: &str) -> io::Result<()> {
    let aside = dir.join("corrupt");
    fs::create_dir_all(&aside)?;
    // Segments are reused once emptied: the time keeps names apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("{segment}-{offset}-{nanos}");
    fs::write(aside.join(format!("{name}.bin")), bytes)?;
    fs::write(aside.join(format!("{name}.txt")), reason)
}

/// The file of `segment` in the spool in `dir`.
pub(crate) fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.seg"))
}

/// How much of `path` is whole records (a torn last one left out).
fn valid_length(path: &Path) -> io::Result<u64> {
    let data = fs::read(path)?;
    let mut at = 0usize;
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        if data.len() - at - HEADER < len {
            break;
        }
        at += HEADER + len;
    }
    Ok(at as u64)
}

fn read_cursor(dir: &Path) -> Option<Position> {
    let text = fs::read_to_string(dir.join("cursor")).ok()?;
    let (segment, offset) = text.trim().split_once(' ')?;
    Some(Position {
        segment: segment.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

fn write_cursor(dir: &Path, at: Position) -> io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    let mut file = File::create(&tmp)?;
    writeln!(file, "{} {}", at.segment, at.offset)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join("cursor"))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use edgepush_protocol::wire::Kind;
    use edgepush_protocol::{Resolution, Unit};

    use super::*;
    use edgepush_receiver::model::{Point, Series, Value};

    fn batch(id: &str, value: f64) -> Batch {
        Batch {
            id: id.into(),
            namespace: "Spool".into(),
            series: vec![Series {
                name: "m".into(),
                kind: Kind::Counter,
                unit: Unit::Count,
                dimensions: vec![("d".into(), "v".into())],
                resolution: Resolution::Standard,
            }],
            points: vec![Point {
                series: 0,
                timestamp_ms: NOW,
                value: Value::Counter(value),
            }],
        }
    }

    const NOW: i64 = 1_764_000_000_000;

    /// Every batch waiting, in order, delivering each.
    fn drain(spool: &Spool) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(entry) = spool.next(NOW, &Limits::default()).expect("read") {
            ids.push(entry.batch.id.clone());
            spool.ack(&entry).expect("ack");
        }
        ids
    }

    fn segments(dir: &Path) -> usize {
        fs::read_dir(dir)
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count()
    }

    #[test]
    fn batches_come_back_in_order_across_reopens_and_segments() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open_with(dir.path(), SinkTag::CloudWatch, 1 << 20, 600).expect("open");
        assert!(!spool.has_backlog());
        for i in 0..10 {
            spool
                .append(&batch(&format!("b{i}"), f64::from(i)))
                .expect("append");
        }
        assert!(spool.has_backlog());
        assert!(segments(dir.path()) > 2, "{}", segments(dir.path()));
        // Deliver two, then "restart".
        for want in ["b0", "b1"] {
            let entry = spool
                .next(NOW, &Limits::default())
                .expect("read")
                .expect("entry");
            assert_eq!(entry.batch.id, want);
            assert_eq!(
                entry.batch,
                batch(want, f64::from(want[1..].parse::<u8>().expect("n")))
            );
            spool.ack(&entry).expect("ack");
        }
        // Read but not acknowledged: comes again after the restart.
        let unacked = spool
            .next(NOW, &Limits::default())
            .expect("read")
            .expect("entry");
        assert_eq!(unacked.batch.id, "b2");
        drop(spool);
        let spool =
            Spool::open_with(dir.path(), SinkTag::CloudWatch, 1 << 20, 600).expect("reopen");
        let ids = drain(&spool);
        assert_eq!(ids, (2..10).map(|i| format!("b{i}")).collect::<Vec<_>>());
        assert!(!spool.has_backlog());
        assert_eq!(spool.bytes(), 0);
        assert_eq!(segments(dir.path()), 1, "delivered segments are deleted");
        // And it keeps working after being emptied.
        spool.append(&batch("again", 1.0)).expect("append");
        assert_eq!(drain(&spool), ["again"]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_a_corrupt_one_set_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(dir.path(), SinkTag::Influxdb, 1 << 20).expect("open");
        for id in ["a", "b", "c"] {
            spool.append(&batch(id, 1.0)).expect("append");
        }
        drop(spool);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).expect("read");
        // Flip a byte inside the second record's payload.
        let first = HEADER + u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        data[first + HEADER + 5] ^= 0xff;
        // And a crash in the middle of a fourth append.
        data.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
        fs::write(&path, &data).expect("write");

        let spool = Spool::open(dir.path(), SinkTag::Influxdb, 1 << 20).expect("reopen");
        assert_eq!(drain(&spool), ["a", "c"]);
        let aside: Vec<String> = fs::read_dir(dir.path().join("corrupt"))
            .expect("corrupt/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        // The checksum failure and the incomplete tail, each with its reason.
        assert_eq!(aside.len(), 4, "{aside:?}");
        let name = aside
            .iter()
            .find(|n| n.starts_with(&format!("1-{first}-")) && n.ends_with(".txt"))
            .expect("the checksum failure's reason");
        let reason = fs::read_to_string(dir.path().join("corrupt").join(name)).expect("reason");
        assert_eq!(reason, "checksum mismatch");
        // A damaged length: the rest of the segment is set aside, whole.
        spool.append(&batch("d", 1.0)).expect("append");
        let mut data = fs::read(&path).expect("read");
        data[3] = 0x7f;
        fs::write(&path, &data).expect("write");
        let spool = Spool::open(dir.path(), SinkTag::Influxdb, 1 << 20).expect("reopen");
        assert_eq!(drain(&spool), Vec::<String>::new());
        assert_eq!(
            fs::read_dir(dir.path().join("corrupt"))
                .expect("corrupt/")
                .count(),
            6
        );
    }

    #[test]
    fn a_full_spool_says_so() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(dir.path(), SinkTag::CloudWatch, 600).expect("open");
        let mut stored = 0;
        let err = loop {
            match spool.append(&batch(&format!("b{stored}"), 1.0)) {
                Ok(()) => stored += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, SpoolError::Full { max_bytes: 600 }), "{err}");
        assert!(stored >= 1);
        assert!(spool.bytes() <= 600);
        assert_eq!(drain(&spool).len(), stored);
        spool
            .append(&batch("room again", 1.0))
            .expect("room after delivery");
    }
}
