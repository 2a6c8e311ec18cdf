//! Recognising a batch sent again: an emitter retries a batch with the same
//! id when it did not get an answer (a timeout, a lost connection), and a
//! batch already forwarded must not be forwarded twice (CloudWatch would
//! count it twice).
//!
//! A batch is remembered by namespace and id once it was delivered (or
//! queued), for a window, and per sink once that sink took it: a retry after
//! one sink failed goes only to the sinks that did not take it. Natively [`Seen`] keeps ids in memory (lost on restart); at
//! the edge the Worker keeps them in the Cache API of the data centre that
//! took the push (a retry that lands in another one is forwarded again).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The key a batch is remembered by once every sink took it: its tenant's
/// name (`""` when the receiver is open), namespace and id, so that one
/// tenant cannot mark another's batch as delivered.
pub fn key(tenant: &str, namespace: &str, id: &str) -> String {
    format!("{tenant}\u{1f}{namespace}\u{1f}{id}")
}

/// The key a batch is remembered by once the sink at `index` took it: when
/// one sink failed, the retry goes only to the sinks that did not take it.
pub fn sink_key(key: &str, index: usize) -> String {
    format!("{key}\u{1f}{index}")
}

/// Batch ids delivered recently, bounded in count and time.
#[derive(Debug)]
pub struct Seen {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When each key was remembered, and its value.
    at: HashMap<String, (Instant, usize)>,
    order: VecDeque<(Instant, String)>,
}

impl Seen {
    /// Remembers ids for `window`, at most `capacity` of them (the oldest go
    /// first). A zero window remembers nothing.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Seen {
            window,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether `key` was remembered within the window.
    pub fn contains(&self, key: &str, now: Instant) -> bool {
        self.get(key, now).is_some()
    }

    /// The value `key` was remembered with, within the window.
    pub fn get(&self, key: &str, now: Instant) -> Option<usize> {
        let mut inner = self.inner.lock().ok()?;
        inner.expire(now, self.window);
        inner.at.get(key).map(|(_, value)| *value)
    }

    /// Remembers `key` as delivered at `now`.
    pub fn insert(&self, key: String, now: Instant) {
        self.insert_value(key, usize::MAX, now);
    }

    /// Remembers `key` with `value` (how many points of a batch a sink
    /// took) at `now`; a later call replaces the value.
    pub fn insert_value(&self, key: String, value: usize, now: Instant) {
        if self.window.is_zero() || self.capacity == 0 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.expire(now, self.window);
        while inner.at.len() >= self.capacity {
            match inner.order.pop_front() {
                Some((_, oldest)) => {
                    inner.at.remove(&oldest);
                }
                None => break,
            }
        }
        if let Some(entry) = inner.at.get_mut(&key) {
            entry.1 = value;
        } else {
            inner.at.insert(key.clone(), (now, value));
            inner.order.push_back((now, key));
        }
    }
}

impl Inner {
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.at.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_only() {
        let seen = Seen::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        seen.insert(key("", "N", "a"), t0);
        assert!(seen.contains(&key("", "N", "a"), t0 + Duration::from_secs(9)));
        assert!(!seen.contains(&key("", "M", "a"), t0), "namespaces apart");
        assert!(!seen.contains(&key("", "N", "a"), t0 + Duration::from_secs(10)));
    }

    #[test]
    fn capacity_forgets_the_oldest_first() {
        let seen = Seen::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            seen.insert(key("", "N", id), t0);
        }
        assert!(!seen.contains(&key("", "N", "a"), t0));
        assert!(seen.contains(&key("", "N", "b"), t0) && seen.contains(&key("", "N", "c"), t0));
    }

    #[test]
    fn values_are_kept_and_replaced() {
        let seen = Seen::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        seen.insert_value(key("", "N", "a"), 1000, t0);
        assert_eq!(seen.get(&key("", "N", "a"), t0), Some(1000));
        seen.insert_value(key("", "N", "a"), 2000, t0);
        assert_eq!(seen.get(&key("", "N", "a"), t0), Some(2000));
        seen.insert(key("", "N", "a"), t0);
        assert_eq!(seen.get(&key("", "N", "a"), t0), Some(usize::MAX));
        assert_eq!(seen.get(&key("", "N", "b"), t0), None);
    }

    #[test]
    fn a_zero_window_remembers_nothing() {
        let seen = Seen::new(Duration::ZERO, 10);
        let t0 = Instant::now();
        seen.insert(key("", "N", "a"), t0);
        assert!(!seen.contains(&key("", "N", "a"), t0));
    }
}
