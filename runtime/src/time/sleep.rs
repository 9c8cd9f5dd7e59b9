//! `Sleep`: a future that completes at a deadline, backed by a ring timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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
    sleep_until(
        Instant::now()
            .checked_add(duration)
            .unwrap_or_else(far_future),
    )
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
        handle: crate::driver::current_handle(),
        timer: None,
        armed: deadline,
        fired: false,
        elapsed: false,
    }
}

/// About 30 years from now: "never" for overflowing durations.
pub(crate) fn far_future() -> Instant {
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
    /// The runtime whose ring runs the timer.
    handle: Handle,
    /// The ring timer, once armed.
    timer: Option<Registration>,
    /// The deadline the ring timer is set to (no later than `deadline`).
    armed: Instant,
    /// An expiry of the ring timer was seen: it is not armed any more.
    fired: bool,
    /// Completed.
    elapsed: bool,
}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.elapsed || Instant::now() >= self.deadline
    }

    /// Moves the deadline, reusing the ring timer. Moving it later while
    /// the ring timer is armed touches nothing but this `Sleep`: the timer
    /// fires at its old deadline and the poll that sees it re-arms it.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = deadline;
        this.elapsed = false;
        if let Some(timer) = &this.timer {
            if this.fired || deadline < this.armed {
                this.fired = false;
                this.armed = deadline;
                if timer.reset_timer(deadline).is_err() {
                    this.timer = None;
                }
            }
        }
    }

    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.elapsed {
            return Poll::Ready(());
        }
        self.check_runtime_alive();
        if self.timer.is_none() {
            if Instant::now() >= self.deadline {
                self.elapsed = true;
                return Poll::Ready(());
            }
            match Registration::new_timer(&self.handle, self.deadline) {
                Ok(r) => {
                    self.timer = Some(r);
                    self.armed = self.deadline;
                    self.fired = false;
                }
                // The ring refused a timer (out of memory): fall back to
                // checking the clock when woken for other reasons is not
                // good enough, so fail loudly.
                Err(e) => panic!("kevent: cannot arm a timer: {e}"),
            }
        }
        let timer = self.timer.as_ref().expect("armed above");
        loop {
            match timer.poll_ready(cx, Direction::Read) {
                Poll::Ready(Ok(ev)) => {
                    // The ring never fires a timer early, so an expiry seen
                    // before the deadline is an earlier one's: the deadline
                    // the timer was armed with before `reset` moved it later
                    // (re-arm it now), or one dispatched while `reset` moved
                    // it earlier (forget it; the clear is void if the new
                    // one arrived meanwhile).
                    if Instant::now() < self.deadline {
                        timer.clear_readiness(ev);
                        if self.armed < self.deadline {
                            self.armed = self.deadline;
                            if timer.reset_timer(self.deadline).is_err() {
                                self.elapsed = true;
                                return Poll::Ready(());
                            }
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

impl Sleep {
    /// Panics when the timer's runtime has shut down: nothing would ever
    /// fire the timer, and the caller would wait forever.
    ///
    /// A worker of a multi-thread runtime polling its last task while it
    /// stops is let through: that task is dropped right after.
    fn check_runtime_alive(&self) {
        let shared = &self.handle.shared;
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
