//! Sleeping consumers: who sleeps, who is woken, and the per-CPU last-entry
//! mailboxes that carry affinity hints.
//!
//! # Wake policy
//!
//! A consumer about to sleep publishes `SLEEPING` (or `HARVESTING` when it
//! sleeps inside the backend's poll), bumps `sleepers`, and only then looks at
//! the ring once more. A publisher bumps the ring's front and only then reads
//! `sleepers`. Both sides use `SeqCst`, so at least one of them sees the
//! other: the event is never left with everyone asleep (ARCHITECTURE.md,
//! invariant 1).
//!
//! Waking is a CAS from a sleeping state to `NOTIFIED`: exactly one waker
//! wins per sleep, so a batch that wakes "one" wakes exactly one (invariant
//! 4), and an event flagged `WAKEUP_ALL` runs the CAS on every sleeper. Parked
//! sleepers are preferred over the one sleeping in the backend's poll: it
//! costs the same to wake either, and the harvester keeps watching I/O.
//!
//! # Affinity
//!
//! Each consumer slot has a one-entry mailbox: the last entry queued for a
//! consumer is handled specially. An entry hinted to a consumer goes there (the
//! previous occupant moves to the ring); that consumer takes its mailbox
//! before the ring. Any other consumer may empty a mailbox whose owner has not
//! been woken for it (it is busy, or asleep while another consumer was woken
//! for the batch), so a hint never delays delivery (invariant 5).

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use crate::loom::{CachePadded, Condvar, Mutex};

/// The slot has no consumer.
pub(crate) const FREE: u8 = 0;
/// The consumer is running (not in `wait`).
pub(crate) const RUNNING: u8 = 1;
/// The consumer is parked on its condition variable.
pub(crate) const SLEEPING: u8 = 2;
/// The consumer sleeps inside the backend's poll.
pub(crate) const HARVESTING: u8 = 3;
/// A publisher woke the consumer; it has not run yet.
pub(crate) const NOTIFIED: u8 = 4;

/// Entries a consumer that harvests while busy claims at a time after it
/// publishes; the runtime's workers claim this many (`Consumer::claim`).
pub const BUSY_CLAIM: usize = 64;

/// Marks an empty mailbox (no registration has slab index `u32::MAX`).
const EMPTY: u64 = u64::MAX;

/// How a woken consumer must be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// It was parked: its condition variable was signalled.
    Parked(usize),
    /// It sleeps in the backend's poll: the caller must wake the backend.
    Harvester(usize),
}

/// One consumer's slot.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// FREE, RUNNING, SLEEPING, HARVESTING or NOTIFIED.
    state: AtomicU8,
    /// The last entry hinted to this consumer, or EMPTY.
    mailbox: AtomicU64,
    /// Guards the park/notify handshake.
    lock: Mutex<()>,
    /// Where the consumer parks.
    cv: Condvar,
    /// Times this consumer was woken (for metrics and tests).
    wakeups: AtomicU64,
    /// The consumer promised to harvest while it runs (see
    /// `Consumer::set_harvests_while_busy`).
    harvests_while_busy: AtomicBool,
    /// Parked in place of a harvester, it watches the timers until this
    /// (nanoseconds since the ring's time base; 0: not watching).
    watch_until: AtomicU64,
    /// Bumped to wake the consumer when it sleeps on a futex word instead
    /// of `cv` (see `park`).
    seq: crate::loom::FutexWord,
    /// The consumer sleeps on `seq` (and the backend's word), not on `cv`.
    on_futex: AtomicBool,
}

/// The set of consumer slots.
#[derive(Debug)]
pub(crate) struct Waiters {
    /// One slot per possible consumer.
    slots: Box<[CachePadded<Waiter>]>,
    /// Consumers in SLEEPING or HARVESTING.
    sleepers: CachePadded<AtomicUsize>,
    /// Where the next wake-one scan starts, to spread wakeups.
    rotor: AtomicUsize,
    /// One past the highest slot ever attached: scans stop there, so a
    /// ring sized for 64 consumers but used by 2 scans 2 slots.
    high: AtomicUsize,
    /// Bumped by every `wake_all`, so a consumer woken by one returns even
    /// when another consumer claimed the entry first.
    broadcasts: AtomicU64,
    /// Consumers attached now.
    attached: AtomicUsize,
}

impl Waiters {
    pub(crate) fn new(max_consumers: usize) -> Waiters {
        Waiters {
            slots: (0..max_consumers.max(1))
                .map(|_| {
                    CachePadded(Waiter {
                        state: AtomicU8::new(FREE),
                        mailbox: AtomicU64::new(EMPTY),
                        lock: Mutex::new(()),
                        cv: Condvar::new(),
                        wakeups: AtomicU64::new(0),
                        harvests_while_busy: AtomicBool::new(false),
                        watch_until: AtomicU64::new(0),
                        seq: crate::loom::FutexWord::new(0),
                        on_futex: AtomicBool::new(false),
                    })
                })
                .collect(),
            sleepers: CachePadded(AtomicUsize::new(0)),
            rotor: AtomicUsize::new(0),
            high: AtomicUsize::new(0),
            broadcasts: AtomicU64::new(0),
            attached: AtomicUsize::new(0),
        }
    }

    /// Consumers attached now (a snapshot).
    pub(crate) fn attached(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots worth scanning: up to the highest ever attached.
    fn scan_len(&self) -> usize {
        self.high.load(Ordering::SeqCst).max(1)
    }

    /// Takes slot `id` (any free slot when `None`) for a new consumer.
    pub(crate) fn attach(&self, id: Option<usize>) -> Option<usize> {
        let try_take = |i: usize| {
            let ok = self.slots[i]
                .state
                .compare_exchange(FREE, RUNNING, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
            if ok {
                self.high.fetch_max(i + 1, Ordering::SeqCst);
                self.attached.fetch_add(1, Ordering::Relaxed);
            }
            ok
        };
        match id {
            Some(i) if i < self.slots.len() => try_take(i).then_some(i),
            Some(_) => None,
            None => (0..self.slots.len()).find(|&i| try_take(i)),
        }
    }

    /// Frees slot `id`; returns the entry left in its mailbox, if any.
    pub(crate) fn detach(&self, id: usize) -> Option<u64> {
        let entry = self.take_own(id);
        self.slots[id]
            .harvests_while_busy
            .store(false, Ordering::SeqCst);
        self.slots[id].state.store(FREE, Ordering::Release);
        self.attached.fetch_sub(1, Ordering::Relaxed);
        entry
    }

    pub(crate) fn state(&self, id: usize) -> u8 {
        self.slots[id].state.load(Ordering::SeqCst)
    }

    pub(crate) fn wakeups(&self, id: usize) -> u64 {
        self.slots[id].wakeups.load(Ordering::Relaxed)
    }

    /// Step one of sleeping: announce it. The caller must then re-check for
    /// work and either `cancel` or `park` (or sleep in the backend).
    pub(crate) fn prepare(&self, id: usize, harvesting: bool) {
        let state = if harvesting { HARVESTING } else { SLEEPING };
        self.slots[id].state.store(state, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence publishers run between bumping the front and
        // reading `sleepers` (store-load ordering needs a fence each side).
        fence(Ordering::SeqCst);
    }

    /// Records whether consumer `id` harvests while it runs.
    pub(crate) fn set_harvests_while_busy(&self, id: usize, on: bool) {
        self.slots[id]
            .harvests_while_busy
            .store(on, Ordering::SeqCst);
    }

    /// How many ring entries consumer `id` claims right after publishing
    /// (see `Kevent`'s `enqueue`): a whole batch for a consumer that
    /// harvests while busy (a runtime worker claims up to `BUSY_CLAIM`
    /// events at a time), else the one it was waiting for.
    pub(crate) fn claims(&self, id: usize) -> usize {
        if self.slots[id].harvests_while_busy.load(Ordering::Relaxed) {
            BUSY_CLAIM
        } else {
            1
        }
    }

    /// Whether another consumer that harvests while it runs is running (or
    /// was just woken to run).
    pub(crate) fn others_busy(&self, id: usize) -> bool {
        (0..self.scan_len()).any(|i| {
            let w = &self.slots[i];
            i != id
                && w.harvests_while_busy.load(Ordering::SeqCst)
                && matches!(w.state.load(Ordering::SeqCst), RUNNING | NOTIFIED)
        })
    }

    /// The harvester gives up sleeping in the backend and will park
    /// instead: HARVESTING becomes SLEEPING. False if a publisher woke it
    /// meanwhile (it is NOTIFIED and must not sleep).
    pub(crate) fn harvester_parks(&self, id: usize) -> bool {
        self.slots[id]
            .state
            .compare_exchange(HARVESTING, SLEEPING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Leaves the sleeping state without sleeping. Returns true if a
    /// publisher woke us meanwhile (the wakeup is consumed either way).
    pub(crate) fn cancel(&self, id: usize) -> bool {
        let w = &self.slots[id];
        let cur = w.state.load(Ordering::SeqCst);
        if (cur == SLEEPING || cur == HARVESTING)
            && w.state
                .compare_exchange(cur, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        // A publisher moved us to NOTIFIED and already took us off
        // `sleepers`. We stay NOTIFIED until we claim, so that nobody steals
        // the mailbox entry we were woken for (see `running`).
        true
    }

    /// The consumer claimed: from now on it is busy, and what lands in its
    /// mailbox may be taken by others.
    pub(crate) fn running(&self, id: usize) {
        let w = &self.slots[id];
        if w.state.load(Ordering::Relaxed) != RUNNING {
            w.state.store(RUNNING, Ordering::SeqCst);
        }
    }

    /// Parks until notified or `deadline`. Returns true if notified.
    ///
    /// With `word` (the backend's word and the value to sleep on, see
    /// `Poller::sleep_word`), it sleeps on that word and on its own `seq`
    /// at once, and also returns when the word moves: an event the caller
    /// must read came from this thread's own task work.
    pub(crate) fn park(
        &self,
        id: usize,
        deadline: Option<std::time::Instant>,
        word: Option<(&crate::loom::FutexWord, u32)>,
    ) -> bool {
        let w = &self.slots[id];
        #[cfg(target_os = "linux")]
        if let Some((word, mut seen)) = word {
            w.on_futex.store(true, Ordering::SeqCst);
            // Store-load against `notify` (its CAS, then its look at
            // `on_futex`): a fence each side, so one of us sees the other.
            fence(Ordering::SeqCst);
            loop {
                // Read before the state: a notify after this read changes
                // `seq`, one before it changed the state first.
                let seq = w.seq.load(Ordering::SeqCst);
                if w.state.load(Ordering::SeqCst) != SLEEPING {
                    break;
                }
                let timeout = match deadline {
                    Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => break,
                    },
                    None => None,
                };
                if crate::futex::wait(&[(word, seen), (&w.seq, seq)], timeout).is_err() {
                    break;
                }
                let now = word.load(Ordering::SeqCst);
                if now != seen {
                    // Pairs with `prepare`'s fence: a consumer that goes
                    // idle after we saw it busy sees what our task work
                    // posted before it sleeps.
                    fence(Ordering::SeqCst);
                    if !self.others_busy(id) {
                        break;
                    }
                    // A busy consumer reads it at its next harvest, as it
                    // would have before; running it here would only take
                    // a CPU from it (and the load's own threads).
                    seen = now;
                }
            }
            w.on_futex.store(false, Ordering::SeqCst);
            return self.cancel(id);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = word;
        #[cfg(not(loom))]
        {
            let mut guard = w.lock.lock();
            while w.state.load(Ordering::SeqCst) == SLEEPING {
                if w.cv.wait_until(&mut guard, deadline) {
                    break;
                }
            }
        }
        #[cfg(loom)]
        {
            let mut guard = w.lock.lock();
            while w.state.load(Ordering::SeqCst) == SLEEPING {
                guard = w.cv.wait_until(guard, deadline).0;
            }
            drop(guard);
        }
        self.cancel(id)
    }

    /// Moves `id` from a sleeping state to NOTIFIED, if it sleeps.
    fn notify(&self, id: usize, only: Option<u8>) -> Option<Woken> {
        let w = &self.slots[id];
        let mut cur = w.state.load(Ordering::SeqCst);
        loop {
            if cur != SLEEPING && cur != HARVESTING {
                return None;
            }
            if only.is_some_and(|o| o != cur) {
                return None;
            }
            match w
                .state
                .compare_exchange(cur, NOTIFIED, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                // A harvester turned parker meanwhile (`harvester_parks`):
                // it still sleeps, so wake it as what it is now.
                Err(now) => cur = now,
            }
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        w.wakeups.fetch_add(1, Ordering::Relaxed);
        if cur == HARVESTING {
            return Some(Woken::Harvester(id));
        }
        // Pairs with the fence in `park`.
        #[cfg(target_os = "linux")]
        fence(Ordering::SeqCst);
        #[cfg(target_os = "linux")]
        if w.on_futex.load(Ordering::SeqCst) {
            // It read `seq` before checking the state we just changed: the
            // bump makes its wait return at once if it has not begun.
            w.seq.fetch_add(1, Ordering::SeqCst);
            crate::futex::wake(&w.seq, 1);
            return Some(Woken::Parked(id));
        }
        // Taking the lock orders us after the sleeper's state check, so the
        // signal cannot fall between its check and its wait.
        drop(w.lock.lock());
        w.cv.notify_one();
        Some(Woken::Parked(id))
    }

    /// Consumer `id` watches the timers until `until` (0: stops).
    pub(crate) fn watch(&self, id: usize, until: u64) {
        self.slots[id].watch_until.store(until, Ordering::SeqCst);
    }

    /// A timer now comes due at `next`: wakes one parked consumer whose
    /// watch ends later, so it recomputes its deadline. Every parked
    /// watcher keeps its own deadline, so the timers stay watched when
    /// one of them leaves to run (and maybe blocks).
    pub(crate) fn wake_watcher_before(&self, next: u64) {
        for i in 0..self.scan_len() {
            let until = self.slots[i].watch_until.load(Ordering::SeqCst);
            if until > next && self.notify(i, Some(SLEEPING)).is_some() {
                return;
            }
        }
    }

    /// Whether anyone sleeps (a snapshot, `SeqCst` for the handshake).
    pub(crate) fn any_sleeping(&self) -> bool {
        self.sleepers.load(Ordering::SeqCst) > 0
    }

    /// Wakes at most one sleeper: `preferred` if it sleeps, else a parked
    /// one, else the harvester.
    pub(crate) fn wake_one(&self, preferred: Option<usize>) -> Option<Woken> {
        self.wake_one_but(preferred, usize::MAX)
    }

    /// Like `wake_one`, never waking consumer `skip`.
    pub(crate) fn wake_one_but(&self, preferred: Option<usize>, skip: usize) -> Option<Woken> {
        if !self.any_sleeping() {
            return None;
        }
        if let Some(w) = preferred.and_then(|p| self.notify(p, None)) {
            return Some(w);
        }
        let n = self.scan_len();
        let start = self.rotor.fetch_add(1, Ordering::Relaxed) % n;
        for only in [SLEEPING, HARVESTING] {
            for i in 0..n {
                let id = (start + i) % n;
                if id == skip {
                    continue;
                }
                if let Some(w) = self.notify(id, Some(only)) {
                    return Some(w);
                }
            }
        }
        None
    }

    /// Wakes every sleeper; `each` is called for every consumer woken.
    pub(crate) fn wake_all(&self, mut each: impl FnMut(Woken)) {
        self.broadcasts.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `prepare`: a consumer about to sleep
        // either sees the broadcast or is seen sleeping below.
        fence(Ordering::SeqCst);
        for i in 0..self.scan_len() {
            if let Some(w) = self.notify(i, None) {
                each(w);
            }
        }
    }

    /// Wakeups sent to every consumer so far.
    pub(crate) fn total_wakeups(&self) -> u64 {
        self.slots
            .iter()
            .map(|w| w.wakeups.load(Ordering::Relaxed))
            .sum()
    }

    /// How many `WAKEUP_ALL` broadcasts happened so far.
    pub(crate) fn broadcasts(&self) -> u64 {
        self.broadcasts.load(Ordering::SeqCst)
    }

    /// Puts `entry` in `id`'s mailbox; returns the entry it displaced.
    pub(crate) fn put(&self, id: usize, entry: u64) -> Option<u64> {
        // AcqRel pairs with the swaps in `take_own` / `steal`.
        let old = self.slots[id].mailbox.swap(entry, Ordering::AcqRel);
        (old != EMPTY).then_some(old)
    }

    /// Empties `id`'s own mailbox.
    pub(crate) fn take_own(&self, id: usize) -> Option<u64> {
        let w = &self.slots[id];
        if w.mailbox.load(Ordering::Relaxed) == EMPTY {
            return None;
        }
        let old = w.mailbox.swap(EMPTY, Ordering::AcqRel);
        (old != EMPTY).then_some(old)
    }

    /// Empties another consumer's mailbox whose owner was not woken for it.
    pub(crate) fn steal(&self, thief: usize) -> Option<u64> {
        let n = self.scan_len().max(thief + 1);
        for i in 1..n {
            let id = (thief + i) % n;
            let w = &self.slots[id];
            if w.mailbox.load(Ordering::Relaxed) == EMPTY
                || w.state.load(Ordering::SeqCst) == NOTIFIED
            {
                continue;
            }
            let old = w.mailbox.swap(EMPTY, Ordering::AcqRel);
            if old != EMPTY {
                return Some(old);
            }
        }
        None
    }

    /// Whether any mailbox other than `id`'s own holds an entry its owner
    /// was not woken for.
    pub(crate) fn stealable(&self, id: usize) -> bool {
        let n = self.scan_len().max(id + 1);
        (1..n).any(|i| {
            let w = &self.slots[(id + i) % n];
            w.mailbox.load(Ordering::SeqCst) != EMPTY && w.state.load(Ordering::SeqCst) != NOTIFIED
        })
    }

    pub(crate) fn has_mail(&self, id: usize) -> bool {
        self.slots[id].mailbox.load(Ordering::SeqCst) != EMPTY
    }
}

/// Models of a consumer that sleeps on a futex word (the io_uring
/// completion tail) instead of its condition variable: `crate::futex`
/// emulates the kernel's futex under loom. As `Consumer::sleep` does, the
/// sleeper announces its sleep and then looks for work once more before it
/// parks; the publisher posts work and then wakes one sleeper.
#[cfg(all(test, loom, target_os = "linux"))]
mod loom_tests {
    use super::*;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::sync::Arc;
    use crate::loom::FutexWord;

    /// Posts work and wakes consumer 0 if it sleeps, as a publisher does.
    fn publish(waiters: &Waiters, work: &AtomicBool) -> bool {
        work.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        waiters.wake_one(Some(0)).is_some()
    }

    /// Consumer 0's sleep: announce, look, park on `word` at `seen`.
    /// Returns whether it parked, and whether it was notified.
    fn sleep(waiters: &Waiters, work: &AtomicBool, word: &FutexWord, seen: u32) -> (bool, bool) {
        waiters.prepare(0, false);
        if work.load(Ordering::SeqCst) {
            return (false, waiters.cancel(0));
        }
        (true, waiters.park(0, None, Some((word, seen))))
    }

    /// A publisher racing the sleeper: the sleeper either sees the work
    /// or is woken; a notify is reported by whichever call ends the sleep.
    #[test]
    fn a_notify_reaches_a_consumer_sleeping_on_the_word() {
        loom::model(|| {
            let waiters = Arc::new(Waiters::new(2));
            let work = Arc::new(AtomicBool::new(false));
            let word = FutexWord::new(0);
            assert_eq!(waiters.attach(Some(0)), Some(0));
            let publisher = {
                let (waiters, work) = (waiters.clone(), work.clone());
                loom::thread::spawn(move || publish(&waiters, &work))
            };
            let (parked, notified) = sleep(&waiters, &work, &word, 0);
            let woke = publisher.join().unwrap();
            assert_eq!(notified, woke);
            assert!(!parked || woke || work.load(Ordering::SeqCst));
        });
    }

    /// The word moving (task work that posted a completion, then the
    /// kernel's wake of its thread) ends the sleep when no other consumer
    /// runs, with no publisher at all.
    #[test]
    fn the_word_moving_ends_the_sleep() {
        loom::model(|| {
            let waiters = Arc::new(Waiters::new(2));
            let word = Arc::new(FutexWord::new(0));
            let work = AtomicBool::new(false);
            assert_eq!(waiters.attach(Some(0)), Some(0));
            let kernel = {
                let word = word.clone();
                loom::thread::spawn(move || {
                    word.store(1, Ordering::SeqCst);
                    crate::futex::wake(&word, 1);
                })
            };
            let (_, notified) = sleep(&waiters, &work, &word, 0);
            kernel.join().unwrap();
            assert!(!notified);
        });
    }

    /// While another consumer runs, the word moving does not end the
    /// sleep (the runner reads what was posted at its next harvest): only
    /// the runner's publish does.
    #[test]
    fn with_another_consumer_running_only_a_publish_ends_the_sleep() {
        loom::model(|| {
            let waiters = Arc::new(Waiters::new(2));
            let work = Arc::new(AtomicBool::new(false));
            let word = Arc::new(FutexWord::new(0));
            assert_eq!(waiters.attach(Some(0)), Some(0));
            assert_eq!(waiters.attach(Some(1)), Some(1));
            waiters.set_harvests_while_busy(1, true);
            let kernel = {
                let word = word.clone();
                loom::thread::spawn(move || {
                    word.store(1, Ordering::SeqCst);
                    crate::futex::wake(&word, 1);
                })
            };
            let runner = {
                let (waiters, work) = (waiters.clone(), work.clone());
                loom::thread::spawn(move || publish(&waiters, &work))
            };
            let (_, notified) = sleep(&waiters, &work, &word, 0);
            kernel.join().unwrap();
            let woke = runner.join().unwrap();
            assert_eq!(notified, woke);
            assert!(
                work.load(Ordering::SeqCst),
                "the sleep ended before the publish"
            );
        });
    }
}
