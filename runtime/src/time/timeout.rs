//! `timeout`: bound how long a future may take.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::error::Elapsed;
use super::sleep::{deadline_in, sleep_until, Sleep};
use super::Instant;

/// Requires `future` to complete within `duration`; otherwise it is
/// dropped and the result is [`Elapsed`].
#[track_caller]
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    timeout_at(deadline_in(duration), future)
}

/// Requires `future` to complete before `deadline`.
#[track_caller]
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        value: future.into_future(),
        delay: sleep_until(deadline),
    }
}

/// A future with a deadline (see [`timeout`]).
pub struct Timeout<T> {
    /// The future.
    value: T,
    /// The deadline.
    delay: Sleep,
}

impl<T> Timeout<T> {
    /// The inner future.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// The inner future, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The inner future, unwrapped.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Future> Future for Timeout<T> {
    type Output = Result<T::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `value` is structurally pinned (never moved while pinned);
        // `delay` is Unpin and accessed by plain reference.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `value` stays in place inside the pinned Timeout.
        let value = unsafe { Pin::new_unchecked(&mut this.value) };
        let had_budget = crate::task::coop::has_budget_remaining();
        if let Poll::Ready(v) = value.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        // A future that spent the whole budget would otherwise leave none
        // for the timer on every poll, and the timeout would never fire.
        let delay = &mut this.delay;
        let elapsed = if had_budget && !crate::task::coop::has_budget_remaining() {
            crate::task::coop::unlimited(|| delay.poll_elapsed(cx))
        } else {
            delay.poll_elapsed(cx)
        };
        match elapsed {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed::new())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Timeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.delay.deadline())
            .finish_non_exhaustive()
    }
}
