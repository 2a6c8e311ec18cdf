//! A series: its identity, its definition in the wire format (written
//! once) and its aggregate state.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::SeqCst;

use portable_atomic::AtomicBool;

use crate::cell::{Double, Drained, GaugeBuffer, Stats, Sum, Table};
use crate::encode::{self, Taken};
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};

/// What a series aggregates.
#[derive(Debug)]
pub(super) enum State {
    Counter(Sum),
    Gauge(Double<GaugeBuffer>),
    Distribution(Double<Table>),
    Statistics(Double<Stats>),
    /// The cardinality guard's counter: every recording adds one.
    Overflow(Sum),
}

impl State {
    /// Empty state for a series of `kind`; distributions get tables of
    /// `slots` values.
    pub(super) fn new(kind: Kind, slots: usize) -> Self {
        match kind {
            Kind::Counter => State::Counter(Sum::new()),
            Kind::Gauge => {
                State::Gauge(Double::new(GaugeBuffer::default(), GaugeBuffer::default()))
            }
            Kind::Distribution => {
                State::Distribution(Double::new(Table::new(slots), Table::new(slots)))
            }
            Kind::Statistics => State::Statistics(Double::new(Stats::default(), Stats::default())),
        }
    }
}

/// One series: identity, its wire encoding (made once) and its state.
#[derive(Debug)]
pub(super) struct Cell {
    pub(super) id: usize,
    pub(super) kind: Kind,
    pub(super) unit: Unit,
    pub(super) resolution: Resolution,
    /// The series' definition in the configured wire format, written at
    /// registration.
    pub(super) def: Vec<u8>,
    pub(super) state: State,
    /// Whether the series is on the emitter's [`Touched`] list.
    pub(super) listed: AtomicBool,
}

impl Cell {
    /// Takes the aggregate, leaving it empty; `None` if nothing was
    /// recorded.
    pub(super) fn take(&self) -> Option<Taken> {
        match &self.state {
            State::Counter(sum) | State::Overflow(sum) => sum.take().map(Taken::Sum),
            State::Gauge(g) => g
                .take(GaugeBuffer::take)
                .map(|(last, stats)| Taken::Gauge { last, stats }),
            State::Distribution(d) => {
                let Drained {
                    values,
                    counts,
                    overflow,
                } = d.take(Table::drain);
                if values.is_empty() && overflow.is_none() {
                    return None;
                }
                Some(Taken::Distribution {
                    values,
                    counts,
                    overflow,
                })
            }
            State::Statistics(s) => s.take(Stats::take).map(Taken::Statistics),
        }
    }

    /// Whether anything was recorded since the last flush.
    pub(super) fn has_data(&self) -> bool {
        match &self.state {
            State::Counter(sum) | State::Overflow(sum) => sum.has_data(),
            State::Gauge(double) => double.active(GaugeBuffer::has_data),
            State::Distribution(double) => double.active(Table::has_data),
            State::Statistics(double) => double.active(Stats::has_data),
        }
    }
}

/// The ids of the series recorded into since the last flush: a flush
/// takes these, not every series (an emitter with thousands of idle
/// series flushes the few that changed).
///
/// A recorder lists its series after recording into it; a flush unlists
/// a series before taking its state. Both the recording's
/// read-modify-write and the flush's take are sequentially consistent,
/// as are the flag's reads and writes here, so a recorder that finds its
/// series still listed recorded before the flush unlisted it, hence
/// before the flush took it: nothing recorded is left behind unlisted.
#[derive(Debug, Default)]
pub(super) struct Touched(spin::Mutex<Lists>);

/// The list, and the one the last flush took, kept for its capacity: both
/// are reserved for every series at registration, so listing never
/// allocates.
#[derive(Debug, Default)]
struct Lists {
    listed: Vec<usize>,
    spare: Vec<usize>,
}

impl Touched {
    /// Lists `cell` for the next flush unless it is listed; call after
    /// recording into it. A load when it is (every recording but an
    /// interval's first).
    #[inline]
    pub(super) fn mark(&self, cell: &Cell) {
        if !cell.listed.load(SeqCst) {
            self.list(cell);
        }
    }

    #[cold]
    fn list(&self, cell: &Cell) {
        if self.claim(cell) {
            self.0.lock().listed.push(cell.id);
        }
    }

    /// Whether `cell` was unlisted and is now claimed for the list: the
    /// caller then lists it with [`Touched::list_all`] (the staged
    /// recordings' applier lists what it applied under one lock).
    #[inline]
    pub(super) fn claim(&self, cell: &Cell) -> bool {
        !cell.listed.load(SeqCst) && !cell.listed.swap(true, SeqCst)
    }

    /// Lists the ids of series claimed with [`Touched::claim`].
    #[cfg(feature = "std")]
    pub(super) fn list_all(&self, ids: &[usize]) {
        self.0.lock().listed.extend_from_slice(ids);
    }

    /// Room for `series` ids in both lists (a series is listed at most
    /// once until a flush takes the list).
    pub(super) fn reserve(&self, series: usize) {
        let lists = &mut *self.0.lock();
        for list in [&mut lists.listed, &mut lists.spare] {
            list.reserve(series.saturating_sub(list.len()));
        }
    }

    /// The listed ids; the list starts again empty. Hand the ids back with
    /// [`Touched::give_back`].
    pub(super) fn take(&self) -> Vec<usize> {
        let lists = &mut *self.0.lock();
        let spare = core::mem::take(&mut lists.spare);
        core::mem::replace(&mut lists.listed, spare)
    }

    /// Keeps `ids` (from [`Touched::take`]) as the next list's room.
    pub(super) fn give_back(&self, mut ids: Vec<usize>) {
        ids.clear();
        let lists = &mut *self.0.lock();
        if ids.capacity() > lists.spare.capacity() {
            lists.spare = ids;
        }
    }

    /// How many listed ids pass `f`.
    pub(super) fn count(&self, f: impl Fn(usize) -> bool) -> usize {
        self.0.lock().listed.iter().filter(|id| f(**id)).count()
    }
}

impl Cell {
    /// Takes the aggregate of a listed series, unlisting it first (see
    /// [`Touched`]); `None` if nothing was recorded.
    pub(super) fn take_listed(&self) -> Option<Taken> {
        self.listed.store(false, SeqCst);
        self.take()
    }
}

impl encode::Registered for Arc<Cell> {
    fn id(&self) -> usize {
        self.id
    }

    fn def(&self) -> &[u8] {
        &self.def
    }
}
