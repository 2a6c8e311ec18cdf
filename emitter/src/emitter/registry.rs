//! Registering metrics: names and dimensions checked, dimension sets
//! expanded into series, series found again or created (within
//! [`Config::max_series`](crate::Config::max_series)).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use super::Emitter;
use super::handles::{Counter, Distribution, Gauge, Handle, Statistics, Target, UNSTAGED};
use super::series::{Cell, NONE, State};
use super::telemetry::{SelfMetrics, TelemetrySnapshot};
use crate::cell::Sum;
use crate::config::{Metric, check_dimension};
use crate::error::{Error, Field, Result};
use crate::format::{BatchWriter, SeriesDef};
use edgepush_protocol::limits::MAX_DIMENSIONS;
use edgepush_protocol::validate;
use edgepush_protocol::wire::Kind;
use edgepush_protocol::{Resolution, Unit};

/// Name of the counter that records into series refused by the cardinality
/// guard ([`Config::max_series`](crate::Config::max_series)).
pub const OVERFLOW_METRIC: &str = "edgepush_series_overflow";

/// The overflow series' id.
pub(super) const OVERFLOW_ID: usize = usize::MAX;

/// Dimensions as sorted name/value pairs.
pub(super) type Dimensions = Vec<(String, String)>;

/// Every series of an emitter.
#[derive(Debug, Default)]
pub(super) struct Registry {
    pub(super) by_key: BTreeMap<(String, Dimensions), Arc<Cell>>,
    /// By id.
    pub(super) cells: Vec<Arc<Cell>>,
    /// The cardinality guard's series, once a registration was refused.
    pub(super) overflow: Option<Arc<Cell>>,
    /// Self-metric counters, when enabled.
    pub(super) self_metrics: Option<SelfMetrics>,
    /// Telemetry already reported as self-metrics.
    pub(super) reported: TelemetrySnapshot,
}

impl Registry {
    /// The series of `id`: one of `cells`, or the overflow series.
    pub(super) fn cell(&self, id: usize) -> Option<&Arc<Cell>> {
        match id {
            OVERFLOW_ID => self.overflow.as_ref(),
            id => self.cells.get(id),
        }
    }

    /// The series on a [`Touched`](super::series::Touched) stack from
    /// `top` down. Each one's link is read before it is yielded, so the
    /// caller may unlist it at once (and a recorder list it again).
    pub(super) fn listed(&self, top: usize) -> impl Iterator<Item = &Arc<Cell>> {
        let mut id = top;
        core::iter::from_fn(move || {
            if id == NONE {
                return None;
            }
            let cell = self.cell(id);
            // Series are never removed: every listed id has its cell.
            debug_assert!(cell.is_some(), "listed series {id} has no cell");
            let cell = cell?;
            id = cell.listed_after();
            Some(cell)
        })
    }
}

impl Emitter {
    /// Registers (or finds) a counter.
    pub fn counter(&self, metric: Metric) -> Result<Counter> {
        self.register(metric, Kind::Counter).map(Counter)
    }

    /// Registers (or finds) a gauge.
    pub fn gauge(&self, metric: Metric) -> Result<Gauge> {
        self.register(metric, Kind::Gauge).map(Gauge)
    }

    /// Registers (or finds) a distribution.
    pub fn distribution(&self, metric: Metric) -> Result<Distribution> {
        self.register(metric, Kind::Distribution).map(Distribution)
    }

    /// Registers (or finds) a statistic set.
    pub fn statistics(&self, metric: Metric) -> Result<Statistics> {
        self.register(metric, Kind::Statistics).map(Statistics)
    }

    pub(super) fn register(&self, metric: Metric, kind: Kind) -> Result<Handle> {
        let Metric {
            name,
            unit,
            dimensions,
            dimension_sets,
            resolution,
        } = metric;
        validate::metric_name(&name)
            .map_err(|reason| Error::invalid(Field::MetricName, &name, reason))?;
        let mut dims = Vec::with_capacity(dimensions.len());
        for (n, v) in dimensions {
            dims.push(check_dimension(n, v)?);
        }
        dims.sort();
        if let Some(pair) = dims.windows(2).find(|p| p[0].0 == p[1].0) {
            return Err(Error::DuplicateDimension {
                name: pair[0].0.clone(),
            });
        }
        let common = &self.shared.config.dimensions;
        if let Some((n, _)) = dims
            .iter()
            .find(|(n, _)| common.iter().any(|(c, _)| c == n))
        {
            return Err(Error::DuplicateDimension { name: n.clone() });
        }
        let count = dims.len() + common.len();
        if count > MAX_DIMENSIONS {
            return Err(Error::TooManyDimensions { name, count });
        }
        // The full set, then each extra set, without repeats.
        let mut sets: Vec<Dimensions> = vec![dims.clone()];
        for set in dimension_sets {
            if let Some(unknown) = set.iter().find(|n| !dims.iter().any(|(d, _)| d == *n)) {
                return Err(Error::UnknownDimension {
                    name: unknown.clone(),
                });
            }
            let subset: Dimensions = dims
                .iter()
                .filter(|(d, _)| set.contains(d))
                .cloned()
                .collect();
            if !sets.contains(&subset) {
                sets.push(subset);
            }
        }

        let mut registry = self.shared.registry.lock();
        let mut cells = Vec::with_capacity(sets.len());
        for set in sets {
            let key = (name.clone(), set);
            if let Some(cell) = registry.by_key.get(&key) {
                if cell.kind != kind || cell.unit != unit || cell.resolution != resolution {
                    return Err(Error::Conflict { name });
                }
                cells.push(Arc::clone(cell));
                continue;
            }
            if registry.cells.len() >= self.shared.config.max_series {
                self.shared
                    .telemetry
                    .series_overflowed
                    .fetch_add(1, Relaxed);
                // Once, however many of its sets were refused: the guard's
                // counter adds one per recording.
                let overflow = self.overflow_cell(&mut registry)?;
                if !cells.iter().any(|c: &Arc<Cell>| c.id == OVERFLOW_ID) {
                    cells.push(overflow);
                }
                continue;
            }
            let cell = Arc::new(Cell::new(
                registry.cells.len(),
                (kind, unit, resolution),
                definition(&self.shared.writer, &key.0, kind, unit, &key.1, resolution)?,
                State::new(kind, self.shared.config.distribution_slots),
            ));
            registry.cells.push(Arc::clone(&cell));
            registry.by_key.insert(key, Arc::clone(&cell));
            cells.push(cell);
        }
        drop(registry);
        let staged = match &cells[..] {
            [cell] if matches!(cell.state, State::Counter(_) | State::Distribution(_)) => cell.id,
            _ => UNSTAGED,
        };
        #[cfg(feature = "std")]
        if staged != UNSTAGED {
            self.shared.prepare();
        }
        Ok(Handle {
            target: Target {
                cells: cells.into(),
                staged,
            },
            shared: Arc::clone(&self.shared),
        })
    }

    fn overflow_cell(&self, registry: &mut Registry) -> Result<Arc<Cell>> {
        if let Some(cell) = &registry.overflow {
            return Ok(Arc::clone(cell));
        }
        let cell = Arc::new(Cell::new(
            OVERFLOW_ID,
            (Kind::Counter, Unit::Count, Resolution::Standard),
            definition(
                &self.shared.writer,
                OVERFLOW_METRIC,
                Kind::Counter,
                Unit::Count,
                &[],
                Resolution::Standard,
            )?,
            State::Overflow(Sum::new()),
        ));
        registry.overflow = Some(Arc::clone(&cell));
        Ok(cell)
    }
}

/// A series' definition as `writer` writes it.
fn definition(
    writer: &impl BatchWriter,
    name: &str,
    kind: Kind,
    unit: Unit,
    dimensions: &[(String, String)],
    resolution: Resolution,
) -> Result<Vec<u8>> {
    let series = SeriesDef {
        name,
        kind,
        unit: (unit != Unit::None).then(|| unit.as_str()),
        resolution: (resolution != Resolution::Standard).then_some(resolution.seconds()),
        dimensions,
    };
    writer.series(&series)
}
