//! `Sleep`: a future that completes at a deadline, backed by a ring timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use super::clock::{PausedSleep, SleeperKey};
use super::Instant;
use crate::driver::slab::Direction;
use crate::driver::Registration;
use crate::runtime::Handle;
use crate::scheduler::{worker, Flavor};

/// Waits until `duration` has elapsed.
///
/// # Panics
///
/// Outside a kevent runtime.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_in(duration))
}

/// Waits until `deadline`.
///
/// # Panics
///
/// Outside a kevent runtime.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        handle: Some(crate::driver::current_handle()),
        timer: None,
        armed: deadline,
        armed_generation: 0,
        fired: false,
        elapsed: false,
        paused: None,
    }
}

/// `duration` from now on the runtime's clock; "never" (30 years) when
/// that overflows.
pub(crate) fn deadline_in(duration: Duration) -> Instant {
    Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future)
}

/// About 30 years from now: "never" for overflowing durations.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// A future that completes at its deadline (see [`sleep`]).
///
/// The ring timer is created on the first poll that finds the deadline in
/// the future, and reused by [`Sleep::reset`]. A reset to a later deadline
/// (hyper moves its header-read timeout forward on every request) only
/// records it: the ring timer fires at the deadline it has, and the poll
/// that sees that expiry moves it on, so the common reset takes no lock.
pub struct Sleep {
    /// When to complete.
    deadline: Instant,
    /// The runtime whose ring runs the timer, until the timer is armed:
    /// then the timer's registration holds it (one reference, not two, to
    /// count up and down for each of hyper's per-request timeouts).
    handle: Option<Handle>,
    /// The ring timer, once armed.
    timer: Option<Registration>,
    /// The deadline the ring timer is set to (no later than `deadline`).
    armed: Instant,
    /// The clock's generation when the ring timer was armed: a pause or
    /// resume since then moved the clock against std's, so re-arm.
    armed_generation: u64,
    /// An expiry of the ring timer was seen: it is not armed any more.
    fired: bool,
    /// Completed.
    elapsed: bool,
    /// Its place among the paused clock's sleepers, while it waits there.
    paused: Option<SleeperKey>,
}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.elapsed || self.now() >= self.deadline
    }

    /// The runtime: the timer's once armed, else the one kept for it.
    fn handle(&self) -> &Handle {
        runtime_of(&self.timer, &self.handle)
    }

    /// The reading of the runtime's clock.
    fn now(&self) -> Instant {
        Instant::from_std(self.handle().shared.clock.now())
    }

    /// Arms (or re-arms) the ring timer for `deadline`, converted to std's
    /// clock; false if the ring refused.
    fn arm(&mut self, deadline: Instant) -> bool {
        let clock = &self.handle().shared.clock;
        let (generation, at) = (clock.generation(), clock.to_std(deadline.into_std()));
        self.armed_generation = generation;
        self.armed = deadline;
        self.fired = false;
        match &self.timer {
            Some(timer) => timer.reset_timer(at).is_ok(),
            None => {
                let handle = self.handle.take().expect("held while unarmed");
                // An idle timer still armed earlier is taken as it is while
                // clocks read as std's (`armed` is then its instant).
                match Registration::new_timer(handle, at, !super::clock::ever_paused()) {
                    Ok((r, ring_at)) => {
                        if ring_at < at {
                            self.armed = Instant::from_std(ring_at);
                        }
                        self.timer = Some(r);
                        true
                    }
                    // The ring refused a timer (out of memory): checking the
                    // clock when woken for other reasons is not good enough, so
                    // fail loudly.
                    Err(e) => panic!("kevent: cannot arm a timer: {e}"),
                }
            }
        }
    }

    /// Moves the deadline, reusing the ring timer. Moving it later while
    /// the ring timer is armed touches nothing but this `Sleep`: the timer
    /// fires at its old deadline and the poll that sees it re-arms it.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = deadline;
        this.elapsed = false;
        if this.timer.is_some() && (this.fired || deadline < this.armed) && !this.arm(deadline) {
            this.disarm();
        }
    }

    /// Drops the ring timer (the ring refused to move it), keeping the
    /// runtime.
    fn disarm(&mut self) {
        if let Some(timer) = self.timer.take() {
            self.handle = Some(timer.handle().clone());
        }
    }

    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Every poll spends a unit of the task's budget, as tokio's: a loop
        // of sleeps already due must still yield now and then.
        if !crate::task::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        if self.elapsed {
            return Poll::Ready(());
        }
        self.check_runtime_alive();
        if self.handle().shared.clock.is_paused() || self.paused.is_some() {
            let clock = &runtime_of(&self.timer, &self.handle).shared.clock;
            match clock.poll_paused_sleep(self.deadline.into_std(), &mut self.paused, cx.waker()) {
                PausedSleep::Elapsed => {
                    self.elapsed = true;
                    return Poll::Ready(());
                }
                PausedSleep::Pending => return Poll::Pending,
                PausedSleep::NotPaused => {}
            }
        }
        if self.timer.is_none() || self.armed_generation != self.handle().shared.clock.generation()
        {
            if self.now() >= self.deadline {
                self.elapsed = true;
                return Poll::Ready(());
            }
            if !self.arm(self.deadline) {
                self.elapsed = true;
                return Poll::Ready(());
            }
        }
        loop {
            let timer = self.timer.as_ref().expect("armed above");
            match timer.poll_ready(cx, Direction::Read) {
                Poll::Ready(Ok(ev)) => {
                    // The ring never fires a timer early, so an expiry seen
                    // before the deadline is an earlier one's: the deadline
                    // the timer was armed with before `reset` moved it later
                    // (re-arm it now), or one dispatched while `reset` moved
                    // it earlier (forget it; the clear is void if the new
                    // one arrived meanwhile).
                    if self.now() < self.deadline {
                        timer.clear_readiness(ev);
                        if self.armed < self.deadline && !self.arm(self.deadline) {
                            self.elapsed = true;
                            return Poll::Ready(());
                        }
                        continue;
                    }
                    self.fired = true;
                    self.elapsed = true;
                    return Poll::Ready(());
                }
                Poll::Ready(Err(_)) => {
                    self.elapsed = true;
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The runtime a `Sleep` holds, in its timer or beside it (split from the
/// `Sleep` so the other fields stay free to borrow).
fn runtime_of<'a>(timer: &'a Option<Registration>, handle: &'a Option<Handle>) -> &'a Handle {
    match (timer, handle) {
        (Some(timer), _) => timer.handle(),
        (None, Some(handle)) => handle,
        (None, None) => unreachable!("a `Sleep` holds its runtime or its timer"),
    }
}

impl Sleep {
    /// Panics when the timer's runtime has shut down: nothing would ever
    /// fire the timer, and the caller would wait forever.
    ///
    /// A worker of a multi-thread runtime polling its last task while it
    /// stops is let through: that task is dropped right after.
    fn check_runtime_alive(&self) {
        let shared = &self.handle().shared;
        if !shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        if shared.flavor == Flavor::MultiThread && worker::current_index(shared).is_some() {
            return;
        }
        panic!(
            "the kevent runtime this timer belongs to has shut down: a `sleep`, `timeout` or \
             `interval` can only be awaited while its runtime is alive. Keep the `Runtime` \
             alive (do not drop it or call `shutdown_*`) until its timers are done."
        );
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.paused.take() {
            self.handle().shared.clock.forget_sleeper(key);
        }
        // Dropped before its expiry was seen (hyper's header-read timeout
        // once the request came): the ring timer stays armed for this
        // worker's next sleep.
        if let Some(timer) = self.timer.take() {
            if !self.fired && !super::clock::ever_paused() {
                timer.release_armed(self.armed.into_std());
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_elapsed(cx)
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}
