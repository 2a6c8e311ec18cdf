//! The edgepush AWS Lambda extension, for functions in any language: it
//! takes the metrics their existing libraries emit and pushes them through
//! edgepush. Work in progress (issue 28): so far the StatsD and DogStatsD
//! reader ([`statsd`]), sans-IO.

pub mod statsd;
