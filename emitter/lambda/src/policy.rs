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
            Flush::Periodic { .. } => Some(&[]),
        }
    }
}

impl FromStr for Flush {
    type Err = String;

    /// `end-of-invocation`, `after-response`, `periodic` (60 s or 1,000
    /// series) or `periodic:<seconds>[:<series>]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        match parts.next().unwrap_or_default() {
            "end-of-invocation" | "end" => Ok(Flush::EndOfInvocation),
            "after-response" | "after" => Ok(Flush::AfterResponse),
            "periodic" => {
                let seconds: f64 = match parts.next() {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("periodic: `{p}` is not seconds"))?,
                    None => 60.0,
                };
                let points: usize = match parts.next() {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("periodic: `{p}` is not a count"))?,
                    None => 1000,
                };
                let interval = Duration::try_from_secs_f64(seconds)
                    .map_err(|_| format!("periodic: `{seconds}` is not a duration"))?;
                Ok(Flush::Periodic { interval, points })
            }
            other => Err(format!(
                "unknown flush strategy `{other}` (end-of-invocation, after-response, periodic[:seconds[:series]])"
            )),
        }
    }
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
}

impl Facts {
    /// These facts.
    pub fn new(since_last_push: Duration, pending: usize) -> Self {
        Facts {
            since_last_push,
            pending,
        }
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
        let err = "sometimes".parse::<Flush>().expect_err("unknown");
        assert!(err.contains("sometimes"), "{err}");
        assert!("periodic:soon".parse::<Flush>().is_err());
    }
}
