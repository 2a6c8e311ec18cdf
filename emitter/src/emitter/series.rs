//! A series: its identity, its definition in the wire format (written
//! once) and its aggregate state.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use portable_atomic::{AtomicBool, AtomicUsize};

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
    /// Whether the series is on the emitter's [`Touched`] stack.
    listed: AtomicBool,
    /// The series listed before this one ([`NONE`] at the bottom).
    next: AtomicUsize,
}

impl Cell {
    /// A series with nothing recorded, not listed.
    pub(super) fn new(
        id: usize,
        (kind, unit, resolution): (Kind, Unit, Resolution),
        def: Vec<u8>,
        state: State,
    ) -> Self {
        Cell {
            id,
            kind,
            unit,
            resolution,
            def,
            state,
            listed: AtomicBool::new(false),
            next: AtomicUsize::new(NONE),
        }
    }

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

/// The series recorded into since the last flush, a stack linked through
/// the cells: a flush takes these, not every series (an emitter with
/// thousands of idle series flushes the few that changed). Listing takes
/// no lock and allocates nothing.
///
/// A recorder lists its series after recording into it; a flush unlists
/// a series before taking its state. The flag's reads and writes are
/// sequentially consistent, and so is what orders a recording against a
/// take: a counter's add and take (`cell::add_f64`, `cell::take_f64`),
/// and for the double-buffered kinds the writer leaving its buffer
/// against the flush switching buffers and waiting for writers
/// (`cell::Double`). So a recorder that finds its series still listed
/// recorded before the flush unlisted it, hence before the flush took it:
/// nothing recorded is left behind unlisted. A recorder that finds the
/// flag set by another still pushing it may return at once: a flush
/// first waits for every listing under way ([`Touched::take`]).
#[derive(Debug)]
pub(super) struct Touched {
    /// The last series listed ([`NONE`] for none); each links to the one
    /// listed before it through [`Cell::next`].
    head: AtomicUsize,
    /// Recorders between setting a flag and pushing its series.
    listing: AtomicUsize,
}

/// [`Touched::head`] and [`Cell::next`] at the end of the stack (not a
/// series id: ids stay below `max_series`, the overflow series' is
/// `usize::MAX`).
pub(super) const NONE: usize = usize::MAX - 1;

impl Default for Touched {
    fn default() -> Self {
        Touched {
            head: AtomicUsize::new(NONE),
            listing: AtomicUsize::new(0),
        }
    }
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
        self.listing.fetch_add(1, SeqCst);
        if !cell.listed.swap(true, SeqCst) {
            self.push(cell);
        }
        self.listing.fetch_sub(1, SeqCst);
    }

    /// [`Touched::mark`] for a caller holding the registry lock (applying
    /// staged recordings, self-metrics): no flush can be waiting for it.
    #[inline]
    pub(super) fn mark_held(&self, cell: &Cell) {
        if !cell.listed.load(SeqCst) && !cell.listed.swap(true, SeqCst) {
            self.push(cell);
        }
    }

    fn push(&self, cell: &Cell) {
        let mut head = self.head.load(Relaxed);
        loop {
            cell.next.store(head, Relaxed);
            match self
                .head
                .compare_exchange_weak(head, cell.id, Release, Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Waits for the listings under way: any recording that found its
    /// series listed before this call is then on the stack.
    fn settle(&self) {
        let mut spins = 0u32;
        while self.listing.load(SeqCst) != 0 {
            spins = spins.saturating_add(1);
            // A lister preempted mid-push: let it run (a few instructions
            // are left to it) rather than spin out its time slice.
            #[cfg(feature = "std")]
            if spins > 64 {
                std::thread::yield_now();
                continue;
            }
            core::hint::spin_loop();
        }
    }

    /// Takes the stack (its top; walk it with [`Registry::listed`]),
    /// leaving it empty. The caller holds the registry lock.
    ///
    /// [`Registry::listed`]: super::registry::Registry::listed
    pub(super) fn take(&self) -> usize {
        self.settle();
        self.head.swap(NONE, Acquire)
    }

    /// The stack's top, left in place (the caller holds the registry
    /// lock, so no flush unlinks it meanwhile).
    pub(super) fn top(&self) -> usize {
        self.settle();
        self.head.load(Acquire)
    }
}

impl Cell {
    /// The id of the series listed before this one ([`NONE`] at the
    /// bottom of the stack).
    pub(super) fn listed_after(&self) -> usize {
        self.next.load(Relaxed)
    }

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
