//! A series: its identity, its definition in the wire format (written
//! once) and its aggregate state.

use alloc::sync::Arc;
use alloc::vec::Vec;

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

impl encode::Registered for Arc<Cell> {
    fn id(&self) -> usize {
        self.id
    }

    fn def(&self) -> &[u8] {
        &self.def
    }
}
