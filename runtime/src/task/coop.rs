//! Cooperative budget: a task that finds its I/O always ready would never
//! return to the scheduler; each resource poll spends one unit, and an
//! exhausted budget makes the poll return `Pending` (after waking the task)
//! so that timers, I/O and other tasks get their turn.

use std::cell::Cell;
use std::task::Context;

/// Units a task may spend per poll.
pub(crate) const BUDGET: u32 = 128;

thread_local! {
    /// Units left for the task being polled; `u32::MAX` outside workers.
    static LEFT: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Runs `f` (a task poll) with a fresh budget.
pub(crate) fn budget<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the caller's budget even if the poll unwinds.
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LEFT.with(|l| l.replace(BUDGET)));
    f()
}

/// Spends one unit; `false` (after waking the task) when none is left.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> bool {
    LEFT.with(|l| {
        let left = l.get();
        if left == 0 {
            cx.waker().wake_by_ref();
            false
        } else {
            if left != u32::MAX {
                l.set(left - 1);
            }
            true
        }
    })
}

/// Runs `f` with no budget limit, restoring the caller's budget after.
pub(crate) fn unlimited<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the caller's budget even if `f` unwinds.
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(LEFT.with(|l| l.replace(u32::MAX)));
    f()
}

/// Spends one unit of the task's budget, yielding to the scheduler first
/// when it is exhausted (tokio's `task::consume_budget`): a loop that does
/// work which never waits can call it to stay fair to other tasks.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new()?.block_on(async {
/// for _ in 0..1000 {
///     // CPU-bound work that never awaits anything else.
///     kevent_runtime::task::consume_budget().await;
/// }
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn consume_budget() {
    std::future::poll_fn(|cx| {
        if poll_proceed(cx) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Runs `future` outside the cooperative budget (tokio's
/// `task::unconstrained`): kevent's I/O, timers and `JoinHandle`s inside it
/// never return `Pending` just because the task has polled a lot. It can
/// starve other tasks on the same worker; use it only where that is meant.
pub fn unconstrained<F: std::future::Future>(future: F) -> Unconstrained<F> {
    Unconstrained { future }
}

/// A future polled outside the cooperative budget (see [`unconstrained`]).
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Unconstrained<F> {
    /// The future.
    future: F,
}

impl<F: std::future::Future> std::future::Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is only polled
        // through this pin and never moved out.
        let future = unsafe { self.map_unchecked_mut(|s| &mut s.future) };
        unlimited(|| future.poll(cx))
    }
}
