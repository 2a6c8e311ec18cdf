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
    /// After each response while invocations are rare or their rate not
    /// yet known (fewer than `learn` seen); periodic, as
    /// [`Flush::Periodic`], while they come more often than `interval`;
    /// always at shutdown. Few requests under load, no waiting data when
    /// the function is called now and then.
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
    /// The events the strategy's extension registers for (named
    /// [`crate::EXTENSION_NAME`]), or `None` when it needs no extension.
    ///
    /// After-response takes INVOKE events, to push once each response is
    /// posted; periodic takes none: it registers only because Lambda then
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
    /// Invocations this environment has run, this one included.
    pub invocations: u64,
    /// The typical time between two invocations' ends (a moving average),
    /// once two were seen.
    pub mean_gap: Option<Duration>,
}

impl Facts {
    /// These facts, with no invocations known.
    pub fn new(since_last_push: Duration, pending: usize) -> Self {
        Facts {
            since_last_push,
            pending,
            invocations: 0,
            mean_gap: None,
        }
    }

    /// These facts with `invocations` run and `mean_gap` between them.
    pub fn with_rate(mut self, invocations: u64, mean_gap: Option<Duration>) -> Self {
        self.invocations = invocations;
        self.mean_gap = mean_gap;
        self
    }
}

/// How often invocations come: counted at each one's end, the gap between
/// two ends averaged (each new gap weighs a fifth), for [`Facts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Invocations ended so far.
    pub invocations: u64,
    /// The moving average of the gaps, once two invocations ended.
    pub mean_gap: Option<Duration>,
    last_end: Option<std::time::Instant>,
}

impl Rate {
    /// Notes an invocation that ended at `at`.
    pub fn ended(&mut self, at: std::time::Instant) {
        self.invocations += 1;
        if let Some(last) = self.last_end {
            let gap = at.saturating_duration_since(last);
            self.mean_gap = Some(match self.mean_gap {
                None => gap,
                Some(mean) => (mean * 4 + gap) / 5,
            });
        }
        self.last_end = Some(at);
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
            let frequent =
                facts.invocations >= learn && facts.mean_gap.is_some_and(|gap| gap < interval);
            if !frequent || facts.since_last_push >= interval || facts.pending >= points {
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
const LONGEST_DEADLINE_MS: u64 = 16 * 60 * 1000;

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

    #[test]
    fn each_strategy_pushes_at_its_moments() {
        use FlushDecision::{HandOff, Push, PushAfterResponse, PushLast, Skip};
        let ms = Duration::from_millis;
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
            (ADAPTIVE, ResponsePosted, quiet.with_rate(1, None), Push),
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(2, Some(ms(100))),
                Push,
            ),
            // Frequent (a gap under 10 s): periodic.
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(3, Some(ms(100))),
                Skip,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                almost.with_rate(3, Some(ms(9_999))),
                Skip,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                late.with_rate(3, Some(ms(100))),
                Push,
            ),
            (
                ADAPTIVE,
                ResponsePosted,
                full.with_rate(3, Some(ms(100))),
                Push,
            ),
            // Rare (a gap of 10 s or more): every response.
            (
                ADAPTIVE,
                ResponsePosted,
                quiet.with_rate(50, Some(ms(10_000))),
                Push,
            ),
            (ADAPTIVE, ResponsePosted, quiet.with_rate(50, None), Push),
            (ADAPTIVE, Returned, full.with_rate(1, None), Skip),
            (ADAPTIVE, Invoke, full.with_rate(1, None), Skip),
            (
                ADAPTIVE,
                Shutdown,
                quiet.with_rate(50, Some(ms(1))),
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
    fn the_rate_is_a_count_and_a_moving_average_of_gaps() {
        let start = std::time::Instant::now();
        let mut rate = Rate::default();
        rate.ended(start);
        assert_eq!((rate.invocations, rate.mean_gap), (1, None));
        rate.ended(start + Duration::from_millis(1_000));
        assert_eq!(rate.mean_gap, Some(Duration::from_millis(1_000)));
        // A gap of 6 s moves the average a fifth of the way: 2 s.
        rate.ended(start + Duration::from_millis(7_000));
        assert_eq!(
            (rate.invocations, rate.mean_gap),
            (3, Some(Duration::from_millis(2_000)))
        );
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
