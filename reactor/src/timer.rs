//! Timers as ring registrations: deadlines live in a hierarchical wheel; the
//! nearest one bounds the harvester's sleep, and an expired timer is
//! delivered like any other readiness (`Ready::TIMER`).
//!
//! # Arming and cancelling without the lock
//!
//! A server arms a timer for nearly every request (hyper's header-read
//! timeout) and cancels it a few microseconds later, long before it is due.
//! So the wheel is lazy. Each timer registration has a [`TimerSlot`]: the
//! deadline its owner wants (`wanted`, 0: disarmed) and the deadline of its
//! entry in the wheel (`filed`, 0: none). Cancelling only clears `wanted`;
//! the entry stays in the wheel. Arming stores `wanted` and takes the lock
//! only if the wheel holds no entry due at or before the new deadline; when
//! it does, the entry comes due first and whoever expires it (under the
//! lock) reads `wanted` then: fires the timer if that is due, files the
//! entry again at `wanted` if it lies later, drops it if the timer was
//! cancelled. A pooled timer re-armed for the next request, later than
//! the entry it left in the wheel, thus costs two atomic operations and no
//! lock. The price: a cancelled timer's entry still bounds the harvester's
//! sleep until it comes due, so the harvester may wake once per such
//! entry for nothing.
//!
//! Why no deadline is missed: the arming side stores `wanted`, then loads
//! `filed`; the expiring side stores `filed = 0`, then loads `wanted`, each
//! with a `SeqCst` fence between. Either the arm sees the entry gone and files one itself
//! under the lock, or the expiry sees the new deadline. Only lock holders
//! write `filed`, and they only clear it, set it on filing, or move it
//! earlier, so an entry an arm relied on comes due no later than it
//! thought. The loom models below check the races.

use std::time::{Duration, Instant};

use crate::loom::sync::atomic::{fence, AtomicU64, Ordering};
use crate::loom::Mutex;
use crate::registration::{Key, Slab};
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
    /// Arms that took the lock (`RingStats::timer_filings`).
    filings: AtomicU64,
}

impl TimerQueue {
    pub(crate) fn new() -> TimerQueue {
        let base = Instant::now();
        TimerQueue {
            timers: Mutex::new(Timers::new(base)),
            next: AtomicU64::new(u64::MAX),
            base,
            filings: AtomicU64::new(0),
        }
    }

    /// `at` in nanoseconds since the queue's time zero (at most
    /// `u64::MAX - 1`: `u64::MAX` means "none").
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base)
            .as_nanos()
            .min(u64::MAX as u128 - 1) as u64
    }

    /// Arms `key` (whose slot is `timer`) to fire at `at`, moving it if it
    /// was armed. `None`: the wheel did not change (the nearest deadline
    /// stands); else the nearest deadline now, in nanoseconds.
    pub(crate) fn arm(&self, timer: &TimerSlot, key: Key, at: Instant) -> Option<u64> {
        if timer.want(self.nanos(at).max(1)) {
            return None;
        }
        self.filings.fetch_add(1, Ordering::Relaxed);
        let mut timers = self.timers.lock();
        timers.file(timer, key, self.base);
        let next = timers.next_deadline().map_or(u64::MAX, |d| self.nanos(d));
        self.next.store(next, Ordering::SeqCst);
        Some(next)
    }

    /// Arms that took the lock so far.
    pub(crate) fn filings(&self) -> u64 {
        self.filings.load(Ordering::Relaxed)
    }

    /// Cancels the timer whose slot is `timer`, without the lock: its entry,
    /// if any, is dropped when it comes due.
    pub(crate) fn disarm(&self, timer: &TimerSlot) {
        timer.cancel();
    }

    /// Removes `key`'s timer and its wheel entry: the registration goes
    /// away, and its slot may serve another timer next.
    pub(crate) fn remove(&self, timer: &TimerSlot, key: Key) {
        self.timers.lock().remove(timer, key);
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
    /// when none can be). `regs` holds their slots.
    pub(crate) fn expire_due(&self, regs: &Slab, out: &mut Vec<Key>) {
        let next = self.next_nanos();
        if next == u64::MAX {
            return;
        }
        let now = Instant::now();
        if self.nanos(now) < next {
            return;
        }
        let mut timers = self.timers.lock();
        timers.expire(regs, now, self.nanos(now), self.base, out);
        let next = timers.next_deadline().map_or(u64::MAX, |d| self.nanos(d));
        self.next.store(next, Ordering::SeqCst);
    }
}

/// One timer registration's deadlines (see the module docs): what its
/// owner wants, and what the wheel holds.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    /// The deadline wanted, in the queue's nanoseconds; 0: disarmed.
    /// Written without the lock.
    wanted: AtomicU64,
    /// The deadline of the timer's wheel entry; 0: none. Written only
    /// under the queue's lock.
    filed: AtomicU64,
}

/// What becomes of a wheel entry that came due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// The timer fires: `wanted` was due (and is now 0).
    Fire,
    /// The timer was re-armed for later: file the entry again there.
    Later(u64),
    /// The timer was cancelled: the entry goes.
    Dropped,
}

impl TimerSlot {
    /// Sets the wanted deadline `n` (not 0). True: the wheel holds an entry
    /// due at or before `n`, whose expiry will see `n`, so nothing else is
    /// needed; false: the caller files it under the lock.
    fn want(&self, n: u64) -> bool {
        // A swap, not a store, here and in `cancel`: the same instruction
        // as a `SeqCst` store on x86, and ordered against `came_due`'s
        // compare-exchange as an RMW in every model; loom lets a plain
        // store land before an earlier compare-exchange.
        self.wanted.swap(n, Ordering::SeqCst);
        // Pairs with the fence in `came_due`, which clears `filed`, then
        // reads `wanted`: one of the two loads sees the other's store.
        fence(Ordering::SeqCst);
        let filed = self.filed.load(Ordering::SeqCst);
        filed != 0 && filed <= n
    }

    /// Disarms: an entry still in the wheel is dropped when it comes due.
    fn cancel(&self) {
        self.wanted.swap(0, Ordering::SeqCst);
    }

    /// Under the lock: the wheel's entry came due at `now` and left it.
    fn came_due(&self, now: u64) -> Due {
        self.filed.store(0, Ordering::SeqCst);
        // Pairs with the fence in `want`.
        fence(Ordering::SeqCst);
        let mut wanted = self.wanted.load(Ordering::SeqCst);
        loop {
            if wanted == 0 {
                return Due::Dropped;
            }
            if wanted > now {
                return Due::Later(wanted);
            }
            // Fired timers are disarmed, unless re-armed meanwhile.
            match self
                .wanted
                .compare_exchange(wanted, 0, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Due::Fire,
                Err(now_wanted) => wanted = now_wanted,
            }
        }
    }

    /// Under the lock: the deadline the wheel's entry should move to, if
    /// the entry (due at `filed`, 0: none) does not do for what is wanted.
    fn refile_at(&self) -> Option<u64> {
        let wanted = self.wanted.load(Ordering::SeqCst);
        let filed = self.filed.load(Ordering::SeqCst);
        (wanted != 0 && (filed == 0 || filed > wanted)).then_some(wanted)
    }

    /// Under the lock: the wheel's entry is now due at `n` (0: gone).
    fn set_filed(&self, n: u64) {
        self.filed.store(n, Ordering::SeqCst);
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
    fn new(start: Instant) -> Timers {
        Timers {
            wheel: Wheel::new(start),
            armed: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Makes the wheel hold what `timer` wants: an entry due no later
    /// than its wanted deadline (read now: an arm that came after the
    /// caller's may have moved it), or nothing new if it was disarmed.
    fn file(&mut self, timer: &TimerSlot, key: Key, base: Instant) {
        let Some(n) = timer.refile_at() else {
            return;
        };
        let at = base + Duration::from_nanos(n);
        let i = key.index as usize;
        match self.armed.get(i).copied().flatten() {
            Some(tk) if self.wheel.reset(tk, at) => {}
            _ => {
                let tk = self.wheel.insert(at, key);
                if self.armed.len() <= i {
                    self.armed.resize(i + 1, None);
                }
                self.armed[i] = Some(tk);
            }
        }
        timer.set_filed(n);
    }

    /// Takes `key`'s entry out of the wheel and disarms its slot.
    fn remove(&mut self, timer: &TimerSlot, key: Key) {
        timer.cancel();
        timer.set_filed(0);
        if let Some(tk) = self
            .armed
            .get_mut(key.index as usize)
            .and_then(Option::take)
        {
            self.wheel.remove(tk);
        }
    }

    /// Collects the registrations whose deadline passed (`now`, and in the
    /// queue's nanoseconds `now_nanos`); entries whose timer was re-armed
    /// for later go back into the wheel, those of cancelled timers go.
    fn expire(
        &mut self,
        regs: &Slab,
        now: Instant,
        now_nanos: u64,
        base: Instant,
        out: &mut Vec<Key>,
    ) {
        self.expired.clear();
        self.wheel.poll_expired(now, &mut self.expired);
        for i in 0..self.expired.len() {
            let key = self.expired[i].1;
            if let Some(slot) = self.armed.get_mut(key.index as usize) {
                *slot = None;
            }
            // A removed registration took its entry with it; a stale key
            // here would be a bug, and is skipped.
            let Some(reg) = regs.get(key) else {
                continue;
            };
            let timer = reg.timer();
            match timer.came_due(now_nanos) {
                Due::Fire => out.push(key),
                Due::Later(_) => self.file(timer, key, base),
                Due::Dropped => {}
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::event::Flags;
    use crate::registration::Kind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Expires what is due at `base + at` (a clock the test controls).
    fn expire_at(q: &TimerQueue, regs: &Slab, at: Duration) -> Vec<Key> {
        let now = q.base + at;
        let mut out = Vec::new();
        let mut timers = q.timers.lock();
        timers.expire(regs, now, q.nanos(now), q.base, &mut out);
        let next = timers.next_deadline().map_or(u64::MAX, |d| q.nanos(d));
        q.next.store(next, Ordering::SeqCst);
        out
    }

    fn timer(regs: &Slab) -> Key {
        regs.insert(Kind::Timer, 0, Flags::NONE, -1).unwrap().0
    }

    #[test]
    fn a_timer_rearmed_later_than_its_entry_changes_no_wheel_and_fires_at_the_new_deadline() {
        let (q, regs) = (TimerQueue::new(), Slab::new());
        let key = timer(&regs);
        let slot = regs.get(key).unwrap().timer();
        assert!(
            q.arm(slot, key, q.base + ms(10)).is_some(),
            "first arm files"
        );
        q.disarm(slot);
        // A pooled timer taken for the next request: its old entry, due at
        // 10 ms, will see the new deadline when it comes due.
        assert_eq!(q.arm(slot, key, q.base + ms(30)), None);
        assert_eq!(
            q.next(),
            Some(q.base + ms(10)),
            "the entry stays where it was"
        );
        assert!(expire_at(&q, &regs, ms(15)).is_empty(), "fired early");
        assert_eq!(
            q.next(),
            Some(q.base + ms(30)),
            "filed again at the new deadline"
        );
        assert!(expire_at(&q, &regs, ms(29)).is_empty(), "fired early");
        assert_eq!(expire_at(&q, &regs, ms(30)), vec![key]);
        assert_eq!(q.next(), None);
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_its_entry_goes_when_due() {
        let (q, regs) = (TimerQueue::new(), Slab::new());
        let key = timer(&regs);
        let slot = regs.get(key).unwrap().timer();
        q.arm(slot, key, q.base + ms(10));
        q.disarm(slot);
        assert!(expire_at(&q, &regs, ms(20)).is_empty());
        assert_eq!(q.next(), None, "the cancelled entry is gone");
        // Nothing filed any more: the next arm files again.
        assert!(q.arm(slot, key, q.base + ms(40)).is_some());
        assert_eq!(expire_at(&q, &regs, ms(40)), vec![key]);
    }

    #[test]
    fn an_earlier_deadline_moves_the_entry_and_a_fired_timer_is_disarmed() {
        let (q, regs) = (TimerQueue::new(), Slab::new());
        let key = timer(&regs);
        let slot = regs.get(key).unwrap().timer();
        q.arm(slot, key, q.base + ms(30));
        assert!(
            q.arm(slot, key, q.base + ms(10)).is_some(),
            "earlier: under the lock"
        );
        assert_eq!(q.next(), Some(q.base + ms(10)));
        assert_eq!(expire_at(&q, &regs, ms(10)), vec![key]);
        assert!(expire_at(&q, &regs, ms(50)).is_empty(), "fired twice");
        assert!(
            q.arm(slot, key, q.base + ms(60)).is_some(),
            "a fired timer has no entry"
        );
        assert_eq!(expire_at(&q, &regs, ms(60)), vec![key]);
    }

    #[test]
    fn a_removed_timer_leaves_nothing_for_the_next_occupant_of_its_slot() {
        let (q, regs) = (TimerQueue::new(), Slab::new());
        let old = timer(&regs);
        q.arm(regs.get(old).unwrap().timer(), old, q.base + ms(10));
        q.remove(regs.get(old).unwrap().timer(), old);
        regs.remove(old);
        assert_eq!(expire_at(&q, &regs, ms(10)), vec![]);
        let new = timer(&regs);
        assert_eq!(new.index, old.index, "the slot is reused");
        let slot = regs.get(new).unwrap().timer();
        // Later than the removed entry would have been: still a filing, as
        // the slot holds no entry.
        assert!(q.arm(slot, new, q.base + ms(20)).is_some());
        assert_eq!(expire_at(&q, &regs, ms(20)), vec![new]);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The slot's protocol against a one-entry wheel under a lock, as
    //! `Timers::file` and `Timers::expire` use it.
    use super::*;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::sync::Arc;

    #[derive(Default)]
    struct World {
        slot: TimerSlot,
        /// The wheel: the deadline of the slot's entry, if any.
        wheel: Mutex<Option<u64>>,
        fired: AtomicUsize,
    }

    impl World {
        /// `TimerQueue::arm`.
        fn arm(&self, n: u64) {
            if !self.slot.want(n) {
                let mut wheel = self.wheel.lock();
                self.file(&mut wheel);
            }
        }

        /// `Timers::file`.
        fn file(&self, wheel: &mut Option<u64>) {
            if let Some(n) = self.slot.refile_at() {
                *wheel = Some(n);
                self.slot.set_filed(n);
            }
        }

        /// `TimerQueue::expire_due` at `now`.
        fn expire(&self, now: u64) {
            let mut wheel = self.wheel.lock();
            if wheel.is_some_and(|at| at <= now) {
                *wheel = None;
                match self.slot.came_due(now) {
                    Due::Fire => {
                        self.fired.fetch_add(1, Ordering::SeqCst);
                    }
                    Due::Later(_) => self.file(&mut wheel),
                    Due::Dropped => {}
                }
            }
        }

        fn armed_at(n: u64) -> Arc<World> {
            let world = Arc::new(World::default());
            world.arm(n);
            world
        }

        fn fired(&self) -> usize {
            self.fired.load(Ordering::SeqCst)
        }
    }

    /// Re-armed for later while its old entry comes due: the new deadline
    /// is never lost, and nothing fires before it but the old one.
    #[test]
    fn rearm_later_racing_the_expiry_of_its_entry() {
        loom::model(|| {
            let world = World::armed_at(10);
            let armer = {
                let world = world.clone();
                loom::thread::spawn(move || world.arm(20))
            };
            world.expire(15);
            armer.join().unwrap();
            let before = world.fired();
            assert!(before <= 1);
            let entry = world.wheel.lock().expect("armed, but nothing in the wheel");
            assert!(entry <= 20, "entry due at {entry}, after the deadline");
            world.expire(19);
            assert_eq!(world.fired(), before, "fired before its deadline");
            world.expire(20);
            assert_eq!(world.fired(), before + 1, "the new deadline was lost");
        });
    }

    /// Cancelled while its entry comes due: it fires at most for the old
    /// deadline, never later, and the entry goes.
    #[test]
    fn cancel_racing_the_expiry_of_its_entry() {
        loom::model(|| {
            let world = World::armed_at(10);
            let canceller = {
                let world = world.clone();
                loom::thread::spawn(move || world.slot.cancel())
            };
            world.expire(15);
            canceller.join().unwrap();
            let before = world.fired();
            assert!(before <= 1);
            world.expire(u64::MAX - 1);
            assert_eq!(world.fired(), before, "fired after it was cancelled");
            assert_eq!(*world.wheel.lock(), None, "the entry stayed");
        });
    }

    /// Two arms race, one of them filing: whichever deadline is stored last
    /// has an entry due no later than it, and fires once.
    #[test]
    fn two_arms_race() {
        loom::model(|| {
            let world = Arc::new(World::default());
            let other = {
                let world = world.clone();
                loom::thread::spawn(move || world.arm(30))
            };
            world.arm(20);
            other.join().unwrap();
            let wanted = world.slot.wanted.load(Ordering::SeqCst);
            let entry = world.wheel.lock().expect("armed, but nothing in the wheel");
            assert!(entry <= wanted, "entry due at {entry}, after {wanted}");
            world.expire(wanted - 1);
            assert_eq!(world.fired(), 0, "fired early");
            world.expire(wanted);
            assert_eq!(world.fired(), 1);
        });
    }
}
