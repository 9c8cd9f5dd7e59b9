//! Timers as ring registrations: deadlines live in a hierarchical wheel; the
//! nearest one bounds the harvester's sleep, and an expired timer is
//! delivered like any other readiness (`Ready::TIMER`).

use std::time::{Duration, Instant};

use crate::loom::sync::atomic::{AtomicU64, Ordering};
use crate::loom::Mutex;
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

/// A ring's armed timers, with the nearest deadline readable without the
/// lock (what bounds the harvester's sleep).
#[derive(Debug)]
pub(crate) struct TimerQueue {
    /// The armed timers.
    timers: Mutex<Timers>,
    /// The nearest deadline in nanoseconds since `base` (u64::MAX: none).
    next: AtomicU64,
    /// Time zero for `next` and for the ring's other deadlines in
    /// nanoseconds (see [`TimerQueue::nanos`]).
    base: Instant,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        let base = Instant::now();
        TimerQueue {
            timers: Mutex::new(Timers::new(base)),
            next: AtomicU64::new(u64::MAX),
            base,
        }
    }

    /// `at` in nanoseconds since the queue's time zero (at most
    /// `u64::MAX - 1`: `u64::MAX` means "none").
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base)
            .as_nanos()
            .min(u64::MAX as u128 - 1) as u64
    }

    /// Arms `key` to fire at `at` (moving it if armed); returns the nearest
    /// deadline now, in nanoseconds.
    pub(crate) fn arm(&self, key: Key, at: Instant) -> u64 {
        let mut timers = self.timers.lock();
        timers.arm(key, at);
        let next = timers.next_deadline().map_or(u64::MAX, |d| self.nanos(d));
        self.next.store(next, Ordering::SeqCst);
        next
    }

    /// Disarms `key`, if armed.
    pub(crate) fn disarm(&self, key: Key) {
        self.timers.lock().disarm(key);
    }

    /// The nearest deadline in nanoseconds (`u64::MAX`: none).
    pub(crate) fn next_nanos(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// The instant of the nearest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        match self.next_nanos() {
            u64::MAX => None,
            n => Some(self.base + Duration::from_nanos(n)),
        }
    }

    /// Moves the timers that are due into `out` (without taking the lock
    /// when none can be).
    pub(crate) fn expire_due(&self, out: &mut Vec<Key>) {
        let next = self.next_nanos();
        if next == u64::MAX {
            return;
        }
        let now = Instant::now();
        if self.nanos(now) < next {
            return;
        }
        let mut timers = self.timers.lock();
        timers.expire(now, out);
        let next = timers.next_deadline().map_or(u64::MAX, |d| self.nanos(d));
        self.next.store(next, Ordering::SeqCst);
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
