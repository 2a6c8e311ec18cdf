//! What a StatsD line means for the emitter: a counter adds its values
//! divided by the sample rate, a gauge sets (or, written with a sign, moves)
//! its value, a timer, histogram or distribution records its values as
//! often as the sample rate stands for, and a set counts the members it had
//! not seen since the last push. Tags become dimensions. Sans-IO: the
//! caller hands datagrams in and says when a push happened.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use edgepush::{Emitter, Metric, Unit};

use crate::statsd::{self, Line, Type};

/// How a gauge value written with a sign (`+3`, `-2`) is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GaugeSigns {
    /// As a change to the gauge's last value, as the original StatsD (and
    /// Python's `statsd` with `delta=True`) means it.
    #[default]
    Delta,
    /// As the value itself, as DogStatsD means it.
    Value,
}

/// Distinct members all sets keep (as 64-bit hashes, about 2 MB) before
/// further new members are counted without telling them apart (said once).
const SET_MEMBERS: usize = 100_000;

/// Gauges and sets whose state is kept at once; lines of further series are
/// refused (the emitter's own series limit applies as well).
const KEPT_SERIES: usize = 10_000;

/// What the recorder has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lines recorded.
    pub recorded: u64,
    /// Lines refused (unreadable, or not a metric the emitter takes).
    pub refused: u64,
}

/// Records StatsD datagrams into an [`Emitter`].
#[derive(Debug)]
pub struct Recorder {
    emitter: Emitter,
    signs: GaugeSigns,
    gauges: HashMap<String, f64>,
    sets: HashMap<String, HashSet<u64>>,
    members: usize,
    full_set_said: bool,
    /// Per sampled distribution, the fraction of a value its weights
    /// have not yet recorded.
    carries: HashMap<String, f64>,
    counts: Counts,
}

impl Recorder {
    /// A recorder into `emitter`, reading signed gauges as `signs` says.
    pub fn new(emitter: Emitter, signs: GaugeSigns) -> Self {
        Recorder {
            emitter,
            signs,
            gauges: HashMap::new(),
            sets: HashMap::new(),
            members: 0,
            full_set_said: false,
            carries: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// What was recorded and refused so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Records every line of `datagram`; why each line refused was, in
    /// words (`line 2: ...` for a line unread, the metric's name for one
    /// the emitter did not take).
    pub fn datagram(&mut self, datagram: &[u8]) -> Vec<String> {
        let mut refused = Vec::new();
        for line in statsd::parse(datagram) {
            let result = match line {
                Ok(line) => self
                    .line(&line)
                    .map_err(|why| format!("{}: {why}", line.name)),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => self.counts.recorded += 1,
                Err(why) => {
                    self.counts.refused += 1;
                    refused.push(why);
                }
            }
        }
        refused
    }

    /// A push happened: sets count their members afresh.
    pub fn pushed(&mut self) {
        self.sets.clear();
        self.members = 0;
    }

    fn line(&mut self, line: &Line<'_>) -> Result<(), String> {
        let metric = metric(line);
        let refuse = |e: edgepush::Error| e.to_string();
        let at = line.timestamp.map(|s| s.saturating_mul(1000));
        let full = |_| "the buffer of timestamped points is full".to_string();
        match line.kind {
            Type::Counter => {
                let counter = self.emitter.counter(metric).map_err(refuse)?;
                for v in &line.values {
                    let v = v / line.sample_rate;
                    match at {
                        Some(ms) => counter.add_at(v, ms).map_err(full)?,
                        None => counter.add(v),
                    }
                }
            }
            Type::Gauge => {
                let gauge = self.emitter.gauge(metric).map_err(refuse)?;
                let key = key(line);
                if !self.gauges.contains_key(&key) && self.gauges.len() >= KEPT_SERIES {
                    return Err(format!("more than {KEPT_SERIES} gauges"));
                }
                let last = self.gauges.entry(key).or_insert(0.0);
                for (i, v) in line.values.iter().enumerate() {
                    // A sign belongs to the first value of a packed line;
                    // DogStatsD packs values, not changes.
                    let delta = i == 0 && line.signed && self.signs == GaugeSigns::Delta;
                    *last = if delta { *last + v } else { *v };
                    match at {
                        Some(ms) => gauge.set_at(*last, ms).map_err(full)?,
                        None => gauge.set(*last),
                    }
                }
            }
            Type::Timer | Type::Histogram | Type::Distribution => {
                let distribution = self.emitter.distribution(metric).map_err(refuse)?;
                if line.sample_rate == 1.0 {
                    for v in &line.values {
                        match at {
                            Some(ms) => distribution.record_at(*v, ms).map_err(full)?,
                            None => distribution.record(*v),
                        }
                    }
                    return Ok(());
                }
                // A sampled value stands for 1 / rate values: whole ones
                // recorded, the fraction carried to the series' next value
                // (so a rate of 0.3 counts 10 per 3 values, not 9), and
                // recorded now (a weight has no time of its own).
                let key = key(line);
                if !self.carries.contains_key(&key) && self.carries.len() >= KEPT_SERIES {
                    return Err(format!("more than {KEPT_SERIES} sampled distributions"));
                }
                let carry = self.carries.entry(key).or_insert(0.0);
                for v in &line.values {
                    let exact = 1.0 / line.sample_rate + *carry;
                    let whole = exact.floor();
                    *carry = exact - whole;
                    let mut left = whole;
                    while left >= 1.0 {
                        let n = left.min(f64::from(u32::MAX));
                        distribution.record_many(*v, n as u32);
                        left -= n;
                    }
                }
            }
            Type::Set => {
                let counter = self.emitter.counter(metric).map_err(refuse)?;
                let member = hash(line.member.unwrap_or_default());
                let key = key(line);
                if !self.sets.contains_key(&key) && self.sets.len() >= KEPT_SERIES {
                    return Err(format!("more than {KEPT_SERIES} sets"));
                }
                let members = self.sets.entry(key).or_default();
                let new = if members.contains(&member) {
                    false
                } else if self.members < SET_MEMBERS {
                    members.insert(member);
                    self.members += 1;
                    true
                } else {
                    if !self.full_set_said {
                        self.full_set_said = true;
                        eprintln!(
                            "edgepush: sets hold {SET_MEMBERS} members since the last push: \
                             further new members are counted without telling them apart"
                        );
                    }
                    true
                };
                if new {
                    match at {
                        Some(ms) => counter.add_at(1.0, ms).map_err(full)?,
                        None => counter.increment(),
                    }
                }
            }
        }
        Ok(())
    }
}

/// A set member's 64-bit hash: what a set keeps of it.
fn hash(member: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    member.hash(&mut hasher);
    hasher.finish()
}

/// The metric a line names: its name, unit and tags as dimensions (a bare
/// tag `name` as the dimension `name=true`).
fn metric(line: &Line<'_>) -> Metric {
    let unit = match line.kind {
        Type::Counter | Type::Set => Unit::Count,
        Type::Timer => Unit::Milliseconds,
        Type::Gauge | Type::Histogram | Type::Distribution => Unit::None,
    };
    let mut metric = Metric::new(line.name).unit(unit);
    for (name, value) in &line.tags {
        metric = metric.dimension(*name, value.unwrap_or("true"));
    }
    metric
}

/// A key for the series a line names, for the state kept beside the
/// emitter (gauges' last values, sets' members).
fn key(line: &Line<'_>) -> String {
    let mut tags: Vec<_> = line.tags.iter().collect();
    tags.sort_unstable();
    let mut key = format!("{}|{}", line.name, line.kind.code());
    for (name, value) in tags {
        key.push('|');
        key.push_str(name);
        if let Some(value) = value {
            key.push(':');
            key.push_str(value);
        }
    }
    key
}

#[cfg(test)]
mod tests;
