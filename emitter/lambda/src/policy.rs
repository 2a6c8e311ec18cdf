//! When to push, decided apart from pushing.
//!
//! [`Flush`] names a strategy and [`Policy`] adds the time limits; at each
//! [`Moment`] of an invocation's life [`decide`] says what to do
//! ([`FlushDecision`]) from the [`Facts`] of the moment, and [`budget`] how
//! long a push may take. Both are pure: no clock, no I/O. The pushing (or
//! writing EMF) is [`crate::LambdaMetrics`]' part.

use std::str::FromStr;
use std::time::Duration;

/// When metrics are pushed. See the [crate docs](crate) for the
/// trade-offs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flush {
    /// Before each response is returned.
    EndOfInvocation,
    /// After each response, by an internal extension, before the freeze.
    AfterResponse,
    /// After a response once `interval` has passed since the last push or
    /// `points` series wait, and at shutdown.
    Periodic {
        /// The longest time between pushes (while invocations arrive).
        interval: Duration,
        /// Series waiting that trigger a push.
        points: usize,
    },
    /// After each response while invocations are rare (at least a fifth of
    /// the last [`RECENT_GAPS`] gaps between them as long as `interval`,
    /// so the end of a burst is pushed too) or fewer than `learn` were
    /// seen; periodic, as [`Flush::Periodic`], while they come steadily
    /// more often; always at shutdown. Few requests under load, little
    /// data waiting in a frozen environment when calls come now and then.
    Adaptive {
        /// The longest time between pushes under frequent invocations, and
        /// the gap between invocations below which they are frequent.
        interval: Duration,
        /// Series waiting that trigger a push.
        points: usize,
        /// Invocations to see before the rate counts.
        learn: u64,
    },
}

impl Flush {
    /// [`Flush::Adaptive`] with its defaults (`EDGEPUSH_FLUSH=adaptive`):
    /// 60 s, 1,000 series, after 10 invocations.
    pub const fn adaptive() -> Flush {
        Flush::Adaptive {
            interval: Duration::from_secs(60),
            points: 1000,
            learn: 10,
        }
    }

    /// The events the strategy's extension registers for (named
    /// [`crate::EXTENSION_NAME`]), or `None` when it needs no extension.
    ///
    /// After-response takes INVOKE events, to push once each response is
    /// posted; periodic and adaptive take none: they register only because Lambda then
    /// sends the runtime SIGTERM before shutting the environment down.
    /// Where an extension is registered, SIGTERM and SIGINT are handled
    /// too (a last push; see [`crate::Shutdown`]).
    pub fn extension_events(self) -> Option<&'static [&'static str]> {
        match self {
            Flush::EndOfInvocation => None,
            Flush::AfterResponse => Some(&["INVOKE"]),
            Flush::Periodic { .. } | Flush::Adaptive { .. } => Some(&[]),
        }
    }
}

impl FromStr for Flush {
    type Err = String;

    /// `end-of-invocation`, `after-response`, `periodic` (60 s or 1,000
    /// series) or `periodic:<seconds>[:<series>]`, `adaptive` (60 s, 1,000
    /// series, after 10 invocations) or
    /// `adaptive:<seconds>[:<series>[:<invocations>]]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        match parts.next().unwrap_or_default() {
            "end-of-invocation" | "end" => Ok(Flush::EndOfInvocation),
            "after-response" | "after" => Ok(Flush::AfterResponse),
            "adaptive" => {
                let (interval, points) = interval_and_points("adaptive", &mut parts)?;
                let learn = match parts.next() {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("adaptive: `{p}` is not a count of invocations"))?,
                    None => 10,
                };
                Ok(Flush::Adaptive {
                    interval,
                    points,
                    learn,
                })
            }
            "periodic" => {
                let (interval, points) = interval_and_points("periodic", &mut parts)?;
                Ok(Flush::Periodic { interval, points })
            }
            other => Err(format!(
                "unknown flush strategy `{other}` (end-of-invocation, after-response, periodic[:seconds[:series]], adaptive[:seconds[:series[:invocations]]])"
            )),
        }
    }
}

/// `[<seconds>[:<series>]]` of a `strategy` (60 s and 1,000 series when
/// left out).
fn interval_and_points<'a>(
    strategy: &str,
    parts: &mut impl Iterator<Item = &'a str>,
) -> Result<(Duration, usize), String> {
    let seconds: f64 = match parts.next() {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{strategy}: `{p}` is not seconds"))?,
        None => 60.0,
    };
    let points: usize = match parts.next() {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{strategy}: `{p}` is not a count"))?,
        None => 1000,
    };
    let interval = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{strategy}: `{seconds}` is not a duration"))?;
    Ok((interval, points))
}

/// The strategy and the time limits of its pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// When to push.
    pub flush: Flush,
    /// Time kept free before an invocation's deadline: a push is cut short
    /// this long before it, leaving time to write EMF.
    pub margin: Duration,
    /// The budget of a push when the deadline is unknown (the local
    /// emulators send an impossible one).
    pub default_budget: Duration,
    /// The budget of the last push when the process is told to stop.
    pub shutdown_budget: Duration,
}

impl Default for Policy {
    /// End of invocation; a 100 ms margin, 2 s without a deadline, 250 ms
    /// at shutdown.
    fn default() -> Self {
        Policy {
            flush: Flush::EndOfInvocation,
            margin: Duration::from_millis(100),
            default_budget: Duration::from_secs(2),
            shutdown_budget: Duration::from_millis(250),
        }
    }
}

impl Policy {
    /// The default limits with strategy `flush`.
    pub fn new(flush: Flush) -> Self {
        Policy {
            flush,
            ..Policy::default()
        }
    }
}

/// A point in an invocation's life where metrics may be pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Moment {
    /// The handler returned; its response is not posted yet.
    Returned,
    /// The runtime posted the response; it has not asked for the next
    /// event yet.
    ResponsePosted,
    /// The extension was told of an invocation (an INVOKE event).
    Invoke,
    /// The environment is shutting down (SIGTERM or SIGINT, or the
    /// extension's SHUTDOWN event).
    Shutdown,
}

/// What is known at a [`Moment`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Facts {
    /// Time since the last push began (or since the integration started).
    pub since_last_push: Duration,
    /// Series holding data not yet pushed ([`edgepush::Emitter::pending`]).
    pub pending: usize,
    /// How often invocations came.
    pub rate: Rate,
}

impl Facts {
    /// These facts, with no invocations known.
    pub fn new(since_last_push: Duration, pending: usize) -> Self {
        Facts {
            since_last_push,
            pending,
            rate: Rate::default(),
        }
    }

    /// These facts with `rate`.
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = rate;
        self
    }
}

/// How many gaps between invocations [`Rate`] keeps.
pub const RECENT_GAPS: usize = 16;

/// How often invocations come, for [`Facts`]: how many ended, and the
/// last [`RECENT_GAPS`] gaps between two ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Invocations ended so far.
    pub invocations: u64,
    gaps: [Duration; RECENT_GAPS],
    kept: usize,
    next: usize,
    last_end: Option<std::time::Instant>,
}

impl Rate {
    /// Notes an invocation that ended at `at`.
    pub fn ended(&mut self, at: std::time::Instant) {
        self.invocations += 1;
        if let Some(last) = self.last_end {
            self.gaps[self.next] = at.saturating_duration_since(last);
            self.next = (self.next + 1) % RECENT_GAPS;
            self.kept = (self.kept + 1).min(RECENT_GAPS);
        }
        self.last_end = Some(at);
    }

    /// The share of the recent gaps at least `interval` long; `None`
    /// before two invocations ended.
    pub fn share_at_least(&self, interval: Duration) -> Option<f64> {
        let gaps = &self.gaps[..self.kept];
        (!gaps.is_empty())
            .then(|| gaps.iter().filter(|g| **g >= interval).count() as f64 / gaps.len() as f64)
    }
}

/// What to do at a [`Moment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushDecision {
    /// Nothing.
    Skip,
    /// Push everything pending, within the invocation's [`budget`].
    Push,
    /// Tell the extension that the response is posted: it pushes.
    HandOff,
    /// Wait until the invocation's response is posted (at most its
    /// [`budget`]), then push everything pending within its budget.
    PushAfterResponse,
    /// Push everything pending within [`Policy::shutdown_budget`]: the last
    /// push.
    PushLast,
}

/// What `policy` does at `moment`, given `facts`.
pub fn decide(policy: &Policy, moment: Moment, facts: &Facts) -> FlushDecision {
    match (moment, policy.flush) {
        (Moment::Shutdown, _) => FlushDecision::PushLast,
        (Moment::Returned, Flush::EndOfInvocation) => FlushDecision::Push,
        (Moment::ResponsePosted, Flush::AfterResponse) => FlushDecision::HandOff,
        (Moment::Invoke, Flush::AfterResponse) => FlushDecision::PushAfterResponse,
        (Moment::ResponsePosted, Flush::Periodic { interval, points }) => {
            if facts.since_last_push >= interval || facts.pending >= points {
                FlushDecision::Push
            } else {
                FlushDecision::Skip
            }
        }
        (
            Moment::ResponsePosted,
            Flush::Adaptive {
                interval,
                points,
                learn,
            },
        ) => {
            let learning = facts.rate.invocations < learn;
            let rare = facts
                .rate
                .share_at_least(interval)
                .is_none_or(|share| share >= 0.2);
            if learning || rare || facts.since_last_push >= interval || facts.pending >= points {
                FlushDecision::Push
            } else {
                FlushDecision::Skip
            }
        }
        _ => FlushDecision::Skip,
    }
}

/// Lambda's longest timeout is 15 minutes: a deadline further away than
/// this is not a real one.
pub const LONGEST_DEADLINE_MS: u64 = 16 * 60 * 1000;

/// How long a push for an invocation with `deadline_ms` may take at
/// `now_ms` (both milliseconds since the Unix epoch): what is left less
/// [`Policy::margin`], or [`Policy::default_budget`] when the deadline is
/// impossible (past, or further than Lambda allows: the local emulators
/// send one long past).
pub fn budget(policy: &Policy, deadline_ms: u64, now_ms: u64) -> Duration {
    if deadline_ms <= now_ms || deadline_ms - now_ms > LONGEST_DEADLINE_MS {
        return policy.default_budget;
    }
    Duration::from_millis(deadline_ms - now_ms).saturating_sub(policy.margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIODIC: Flush = Flush::Periodic {
        interval: Duration::from_secs(10),
        points: 5,
    };

    const ADAPTIVE: Flush = Flush::Adaptive {
        interval: Duration::from_secs(10),
        points: 5,
        learn: 3,
    };

    /// The rate after invocations ending these many milliseconds apart.
    fn rate(gaps_ms: &[u64]) -> Rate {
        let mut at = std::time::Instant::now();
        let mut rate = Rate::default();
        rate.ended(at);
        for gap in gaps_ms {
            at += Duration::from_millis(*gap);
            rate.ended(at);
        }
        rate
    }

    /// Bursts of calls 100 ms apart, one pause of ten minutes in five gaps.
    const BURSTS_1_IN_5: [u64; 5] = [100, 100, 100, 600_000, 100];
    /// The same with one pause in six gaps: under a fifth.
    const BURSTS_1_IN_6: [u64; 6] = [100, 100, 100, 100, 600_000, 100];

    #[test]
    fn each_strategy_pushes_at_its_moments() {
        use FlushDecision::{HandOff, Push, PushAfterResponse, PushLast, Skip};
        use Moment::{Invoke, ResponsePosted, Returned, Shutdown};
        let quiet = Facts::new(Duration::from_secs(1), 0);
        let late = Facts::new(Duration::from_secs(10), 0);
        let full = Facts::new(Duration::ZERO, 5);
        let almost = Facts::new(Duration::from_millis(9_999), 4);
        let table = [
            // strategy, moment, facts, decision
            (Flush::EndOfInvocation, Returned, quiet, Push),
            (Flush::EndOfInvocation, Returned, full, Push),
            (Flush::EndOfInvocation, ResponsePosted, full, Skip),
            (Flush::EndOfInvocation, Invoke, full, Skip),
            (Flush::EndOfInvocation, Shutdown, quiet, PushLast),
            (Flush::AfterResponse, Returned, full, Skip),
            (Flush::AfterResponse, ResponsePosted, quiet, HandOff),
            (Flush::AfterResponse, Invoke, quiet, PushAfterResponse),
            (Flush::AfterResponse, Shutdown, quiet, PushLast),
            (PERIODIC, Returned, full, Skip),
            (PERIODIC, ResponsePosted, quiet, Skip),
            (PERIODIC, ResponsePosted, almost, Skip),
            (PERIODIC, ResponsePosted, late, Push),
            (PERIODIC, ResponsePosted, full, Push),
            (PERIODIC, Invoke, full, Skip),
            (PERIODIC, Shutdown, Facts::default(), PushLast),
            // Learning the rate (fewer than 3 invocations): every response.
            (ADAPTIVE, ResponsePosted, quiet.with_rate(rate(&[])), Push),
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(rate(&[100])),
                Push,
            ),
            // Frequent (every gap under 10 s): periodic.
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(rate(&[100, 100])),
                Skip,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                almost.with_rate(rate(&[9_999; 20])),
                Skip,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                late.with_rate(rate(&[100, 100])),
                Push,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                full.with_rate(rate(&[100, 100])),
                Push,
            ),
            // Bursts with long pauses (a fifth of the gaps 10 s or more):
            // every response, so a burst's last call is not left waiting.
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(rate(&BURSTS_1_IN_5)),
                Push,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(rate(&BURSTS_1_IN_6)),
                Skip,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(rate(&[10_000; 5])),
                Push,
            ),
            (ADAPTIVE, Returned, full.with_rate(rate(&[])), Skip),
            (ADAPTIVE, Invoke, full.with_rate(rate(&[])), Skip),
            (
                ADAPTIVE,
                Shutdown,
                quiet.with_rate(rate(&[1; 20])),
                PushLast,
            ),
        ];
        for (flush, moment, facts, want) in table {
            assert_eq!(
                decide(&Policy::new(flush), moment, &facts),
                want,
                "{flush:?} at {moment:?} with {facts:?}"
            );
        }
    }

    #[test]
    fn the_rate_keeps_a_count_and_the_recent_gaps() {
        let second = Duration::from_secs(1);
        assert_eq!(rate(&[]).invocations, 1);
        assert_eq!(rate(&[]).share_at_least(second), None);
        assert_eq!(rate(&[1_000, 500]).share_at_least(second), Some(0.5));
        assert_eq!(rate(&[1_000, 500]).invocations, 3);
        // Only the last 16 gaps count: the long ones before are forgotten.
        let mut gaps = vec![5_000; 10];
        gaps.extend([10; RECENT_GAPS]);
        assert_eq!(rate(&gaps).share_at_least(second), Some(0.0));
        assert_eq!(rate(&gaps).invocations, 27);
    }

    #[test]
    fn a_push_gets_what_is_left_less_the_margin_or_the_default() {
        let policy = Policy::default();
        let now = 1_764_000_000_000;
        let ms = Duration::from_millis;
        for (deadline, want) in [
            (now + 1_000, ms(900)),
            (now + 100, ms(0)),
            (now + 50, ms(0)),
            (now + 15 * 60 * 1000, ms(15 * 60 * 1000 - 100)),
            (now + 16 * 60 * 1000, ms(16 * 60 * 1000 - 100)),
            // Impossible deadlines: past, now, or too far away.
            (now + 16 * 60 * 1000 + 1, ms(2_000)),
            (now, ms(2_000)),
            (now - 1, ms(2_000)),
            (0, ms(2_000)),
            (600_000, ms(2_000)),
        ] {
            let ahead = deadline as i128 - now as i128;
            assert_eq!(budget(&policy, deadline, now), want, "{ahead} ms ahead");
        }
    }

    #[test]
    fn only_strategies_that_need_one_register_an_extension() {
        assert_eq!(Flush::EndOfInvocation.extension_events(), None);
        assert_eq!(
            Flush::AfterResponse.extension_events(),
            Some(&["INVOKE"][..])
        );
        assert_eq!(PERIODIC.extension_events(), Some(&[][..]));
        assert_eq!(ADAPTIVE.extension_events(), Some(&[][..]));
    }

    #[test]
    fn strategies_parse_and_bad_ones_are_named() {
        assert_eq!("end-of-invocation".parse(), Ok(Flush::EndOfInvocation));
        assert_eq!("after-response".parse(), Ok(Flush::AfterResponse));
        assert_eq!(
            "periodic:10:500".parse(),
            Ok(Flush::Periodic {
                interval: Duration::from_secs(10),
                points: 500
            })
        );
        assert_eq!(
            "periodic".parse(),
            Ok(Flush::Periodic {
                interval: Duration::from_secs(60),
                points: 1000
            })
        );
        assert_eq!(
            "adaptive".parse(),
            Ok(Flush::Adaptive {
                interval: Duration::from_secs(60),
                points: 1000,
                learn: 10
            })
        );
        assert_eq!("adaptive".parse(), Ok(Flush::adaptive()));
        assert_eq!(
            "adaptive:5:20:3".parse(),
            Ok(Flush::Adaptive {
                interval: Duration::from_secs(5),
                points: 20,
                learn: 3
            })
        );
        assert_eq!(
            "adaptive:5".parse(),
            Ok(Flush::Adaptive {
                interval: Duration::from_secs(5),
                points: 1000,
                learn: 10
            })
        );
        assert!("adaptive:5:20:many".parse::<Flush>().is_err());
        assert!("adaptive:soon".parse::<Flush>().is_err());
        let err = "sometimes".parse::<Flush>().expect_err("unknown");
        assert!(err.contains("sometimes"), "{err}");
        assert!("periodic:soon".parse::<Flush>().is_err());
    }
}
