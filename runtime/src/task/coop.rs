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
