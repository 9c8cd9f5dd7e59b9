//! Timers as ring registrations: deadlines live in a hierarchical wheel; the
//! nearest one bounds the harvester's sleep, and an expired timer is
//! delivered like any other readiness (`Ready::TIMER`).

use std::time::{Duration, Instant};

use crate::registration::Key;
use crate::wheel::{TimerKey, Wheel};

/// When something should happen: after a relative delay or at an absolute
/// instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// This long after the call.
    After(Duration),
    /// At this instant.
    At(Instant),
}

impl Deadline {
    /// The absolute instant, resolving a relative deadline against now.
    pub fn instant(self) -> Instant {
        match self {
            Deadline::After(d) => Instant::now().checked_add(d).unwrap_or_else(far_future),
            Deadline::At(i) => i,
        }
    }
}

/// An instant far enough ahead to stand for "never" (about 30 years).
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

impl From<Duration> for Deadline {
    fn from(d: Duration) -> Deadline {
        Deadline::After(d)
    }
}

impl From<Instant> for Deadline {
    fn from(i: Instant) -> Deadline {
        Deadline::At(i)
    }
}

/// The wheel and the map from registrations to their wheel keys.
#[derive(Debug)]
pub(crate) struct Timers {
    /// Pending deadlines; the value is the registration's key.
    wheel: Wheel<Key>,
    /// Wheel key of every armed timer registration, by slab index.
    armed: Vec<Option<TimerKey>>,
    /// Scratch for expired timers.
    expired: Vec<(TimerKey, Key)>,
}

impl Timers {
    pub(crate) fn new(start: Instant) -> Timers {
        Timers {
            wheel: Wheel::new(start),
            armed: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Arms (or re-arms) the timer of `key` for `at`.
    pub(crate) fn arm(&mut self, key: Key, at: Instant) {
        let i = key.index as usize;
        if let Some(tk) = self.armed.get(i).copied().flatten() {
            if self.wheel.reset(tk, at) {
                return;
            }
        }
        let tk = self.wheel.insert(at, key);
        if self.armed.len() <= i {
            self.armed.resize(i + 1, None);
        }
        self.armed[i] = Some(tk);
    }

    /// Disarms the timer of `key`, if armed.
    pub(crate) fn disarm(&mut self, key: Key) {
        if let Some(tk) = self
            .armed
            .get_mut(key.index as usize)
            .and_then(Option::take)
        {
            self.wheel.remove(tk);
        }
    }

    /// Collects the registrations whose deadline passed.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Key>) {
        self.expired.clear();
        self.wheel.poll_expired(now, &mut self.expired);
        for &(_, key) in &self.expired {
            if let Some(slot) = self.armed.get_mut(key.index as usize) {
                *slot = None;
            }
            out.push(key);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }
}

/// How long a [`wait`](crate::Consumer::wait) may sleep: a relative
/// `Duration`, an absolute `Instant`, a [`Deadline`], or [`Timeout::NEVER`]
/// (or `None`) to sleep until something happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Option<Deadline>);

impl Timeout {
    /// No timeout.
    pub const NEVER: Timeout = Timeout(None);
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        Timeout(Some(Deadline::After(d)))
    }
}

impl From<Instant> for Timeout {
    fn from(i: Instant) -> Timeout {
        Timeout(Some(Deadline::At(i)))
    }
}

impl From<Deadline> for Timeout {
    fn from(d: Deadline) -> Timeout {
        Timeout(Some(d))
    }
}

impl<T: Into<Timeout>> From<Option<T>> for Timeout {
    fn from(t: Option<T>) -> Timeout {
        t.map_or(Timeout::NEVER, Into::into)
    }
}
