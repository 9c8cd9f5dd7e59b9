//! The runtime's clock, which a test can pause and advance.
//!
//! A running clock reads std's clock plus an offset: zero until the clock
//! is first paused, then whatever time was skipped while it was paused.
//! Ring timers always run on std's clock; a `Sleep` converts its deadline
//! with [`Clock::to_std`] when it arms one.
//!
//! While the clock is paused, sleeps do not arm ring timers: they wait in
//! the clock's own list of sleepers, woken by [`advance`] or by the
//! current-thread worker, which, when it finds nothing to run and nothing
//! ready in the ring, moves the clock to the nearest sleeper's deadline
//! instead of sleeping (`Worker::block_on`). A test that sleeps an hour so
//! finishes at once. [`resume`] wakes every paused sleeper, to re-arm on
//! the ring.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant as StdInstant};

use parking_lot::Mutex;

use crate::runtime::context;
use crate::scheduler::Flavor;

/// Set once any runtime's clock in the process has been paused: until
/// then every clock reads std's clock and no lookup is needed.
static EVER_PAUSED: AtomicBool = AtomicBool::new(false);

/// A sleeper's place in the paused clock's list: its deadline and a
/// sequence number for deadlines that tie.
pub(crate) type SleeperKey = (StdInstant, u64);

/// One runtime's clock.
#[derive(Debug)]
pub(crate) struct Clock {
    /// Paused now (a copy of `state.running.is_none()` for a lock-free check).
    paused: AtomicBool,
    /// Bumped whenever the offset to std's clock changes (pause, resume):
    /// a ring timer armed before must be re-armed.
    generation: AtomicU64,
    /// The clock's reading and the paused sleepers.
    state: Mutex<ClockState>,
}

/// What the clock reads, and who waits on it while paused.
#[derive(Debug)]
struct ClockState {
    /// The clock's reading at `running` (or its frozen reading while paused).
    base: StdInstant,
    /// std's reading when `base` was taken; `None` while paused.
    running: Option<StdInstant>,
    /// Sleeps waiting on the paused clock, by deadline.
    sleepers: BTreeMap<SleeperKey, Waker>,
    /// Next sequence number for `sleepers`.
    next_seq: u64,
}

/// Whether a paused sleep has reached its deadline.
pub(crate) enum PausedSleep {
    /// The clock is not paused (any more): use a ring timer.
    NotPaused,
    /// The deadline has passed.
    Elapsed,
    /// Waiting; the waker is stored.
    Pending,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let now = StdInstant::now();
        Clock {
            paused: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            state: Mutex::new(ClockState {
                base: now,
                running: Some(now),
                sleepers: BTreeMap::new(),
                next_seq: 0,
            }),
        }
    }

    /// The clock's reading.
    pub(crate) fn now(&self) -> StdInstant {
        if !EVER_PAUSED.load(Ordering::Acquire) {
            return StdInstant::now();
        }
        let state = self.state.lock();
        match state.running {
            Some(since) => state.base + since.elapsed(),
            None => state.base,
        }
    }

    /// The instant on std's clock at which this clock will read `at`
    /// (while running).
    pub(crate) fn to_std(&self, at: StdInstant) -> StdInstant {
        if !EVER_PAUSED.load(Ordering::Acquire) {
            return at;
        }
        let state = self.state.lock();
        let since = state.running.unwrap_or_else(StdInstant::now);
        if at >= state.base {
            since + (at - state.base)
        } else {
            since.checked_sub(state.base - at).unwrap_or(since)
        }
    }

    /// Whether the clock is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Changes whenever ring timers armed before must be re-armed.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn pause(&self) -> bool {
        EVER_PAUSED.store(true, Ordering::Release);
        let mut state = self.state.lock();
        let Some(since) = state.running.take() else {
            return false;
        };
        state.base += since.elapsed();
        self.paused.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn resume(&self) -> bool {
        let sleepers = {
            let mut state = self.state.lock();
            if state.running.is_some() {
                return false;
            }
            state.running = Some(StdInstant::now());
            self.paused.store(false, Ordering::Release);
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut state.sleepers)
        };
        // They re-arm on the ring when polled.
        for (_, waker) in sleepers {
            waker.wake();
        }
        true
    }

    /// Moves the paused clock forward by `by` and wakes the sleeps due.
    fn advance(&self, by: Duration) -> bool {
        let due = {
            let mut state = self.state.lock();
            if state.running.is_some() {
                return false;
            }
            state.base += by;
            take_due(&mut state)
        };
        due.into_iter().for_each(Waker::wake);
        true
    }

    /// The paused runtime has nothing to do: moves the clock to the nearest
    /// sleeper's deadline and wakes the sleeps due. False when the clock is
    /// not paused or nobody sleeps on it.
    pub(crate) fn advance_to_next_sleeper(&self) -> bool {
        let due = {
            let mut state = self.state.lock();
            if state.running.is_some() {
                return false;
            }
            let Some(&(first, _)) = state.sleepers.keys().next() else {
                return false;
            };
            state.base = state.base.max(first);
            take_due(&mut state)
        };
        due.into_iter().for_each(Waker::wake);
        true
    }

    /// A sleep polled while the clock may be paused: whether `deadline`
    /// has passed on the paused clock; if not, `waker` is kept in the
    /// sleeper list under `key` (moved there from an older key).
    pub(crate) fn poll_paused_sleep(
        &self,
        deadline: StdInstant,
        key: &mut Option<SleeperKey>,
        waker: &Waker,
    ) -> PausedSleep {
        let mut state = self.state.lock();
        if state.running.is_some() {
            if let Some(k) = key.take() {
                state.sleepers.remove(&k);
            }
            return PausedSleep::NotPaused;
        }
        if state.base >= deadline {
            if let Some(k) = key.take() {
                state.sleepers.remove(&k);
            }
            return PausedSleep::Elapsed;
        }
        if let Some(k) = *key {
            if k.0 == deadline {
                if let Some(w) = state.sleepers.get_mut(&k) {
                    if !w.will_wake(waker) {
                        w.clone_from(waker);
                    }
                    return PausedSleep::Pending;
                }
            } else {
                state.sleepers.remove(&k);
            }
        }
        let k = (deadline, state.next_seq);
        state.next_seq += 1;
        state.sleepers.insert(k, waker.clone());
        *key = Some(k);
        PausedSleep::Pending
    }

    /// Forgets a sleeper (its `Sleep` is dropped or no longer paused).
    pub(crate) fn forget_sleeper(&self, key: SleeperKey) {
        self.state.lock().sleepers.remove(&key);
    }
}

/// Removes and returns the wakers of the sleepers due at the clock's reading.
fn take_due(state: &mut ClockState) -> Vec<Waker> {
    let mut due = Vec::new();
    while let Some(entry) = state.sleepers.first_entry() {
        if entry.key().0 > state.base {
            break;
        }
        due.push(entry.remove());
    }
    due
}

/// Whether any runtime's clock was ever paused: until then every clock
/// reads as std's.
pub(crate) fn ever_paused() -> bool {
    EVER_PAUSED.load(Ordering::Acquire)
}

/// The current runtime's clock reading, std's outside a runtime.
pub(crate) fn now() -> StdInstant {
    if !ever_paused() {
        return StdInstant::now();
    }
    context::with_current(|h| h.map_or_else(StdInstant::now, |h| h.shared.clock.now()))
}

/// The runtime whose clock `what` acts on, checked for the flavor.
#[track_caller]
fn paused_runtime(what: &str) -> crate::runtime::Handle {
    let Some(handle) = context::with_current(|h| h.cloned()) else {
        panic!(
            "`kevent::time::{what}` was called outside a kevent runtime: call it inside \
             `#[kevent::test]`, `Runtime::block_on` or a task of a current-thread runtime"
        );
    };
    if handle.shared.flavor != Flavor::CurrentThread {
        panic!(
            "`kevent::time::{what}` needs a current-thread runtime: a multi-thread runtime's \
             clock cannot be paused. Use `#[kevent::test]` (current-thread by default) or \
             `Builder::new_current_thread()`"
        );
    }
    handle
}

/// Pauses the current runtime's clock, as tokio's `time::pause`.
///
/// While paused, [`Instant::now`] does not move by itself. When every task
/// of the runtime waits and nothing is ready on the ring, the clock jumps
/// to the nearest pending timer and fires it: a test that sleeps an hour
/// finishes in microseconds. [`advance`] moves it by hand. Sleeps that
/// wait for I/O and for a timer at once see the I/O first: the runtime
/// looks at the ring before each jump. While a `spawn_blocking` closure
/// runs, the clock does not jump (its result may be what the test awaits);
/// the runtime then checks every millisecond.
///
/// ```
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use kevent_runtime::time::{self, Duration, Instant};
///
/// time::pause();
/// let start = Instant::now();
/// time::sleep(Duration::from_secs(3600)).await;
/// assert!(start.elapsed() >= Duration::from_secs(3600));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a runtime, in a multi-thread runtime, or when already paused.
#[track_caller]
pub fn pause() {
    let handle = paused_runtime("pause()");
    if !handle.shared.clock.pause() {
        panic!("`kevent::time::pause()` was called while the clock was already paused");
    }
}

/// Lets the current runtime's clock run again from where it was paused
/// (time skipped while paused stays skipped).
///
/// # Panics
///
/// Outside a runtime, in a multi-thread runtime, or when not paused.
#[track_caller]
pub fn resume() {
    let handle = paused_runtime("resume()");
    if !handle.shared.clock.resume() {
        panic!(
            "`kevent::time::resume()` was called while the clock was not paused: pause it first"
        );
    }
}

/// Moves the paused clock forward by `duration`, fires the timers that
/// became due, and yields so that the tasks they woke run before this one
/// continues.
///
/// # Panics
///
/// Outside a runtime, in a multi-thread runtime, or when the clock is not
/// paused.
pub async fn advance(duration: Duration) {
    let handle = paused_runtime("advance()");
    if !handle.shared.clock.advance(duration) {
        panic!(
            "`kevent::time::advance()` was called while the clock was not paused: call \
             `kevent::time::pause()` first (or start the runtime paused)"
        );
    }
    crate::task::yield_now().await;
}

/// Pauses a fresh runtime's clock (`Builder::start_paused`).
pub(crate) fn start_paused(clock: &Clock) {
    clock.pause();
}
