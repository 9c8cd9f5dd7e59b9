//! Which runtime the current thread is in, for `Handle::current` and
//! `kevent::spawn`, and misuse detection (nested `block_on`).

use std::cell::{Cell, RefCell};

use super::Handle;

thread_local! {
    /// Handles entered on this thread, innermost last, each with the id of
    /// the guard that entered it.
    static CURRENT: RefCell<Vec<(u64, Handle)>> = const { RefCell::new(Vec::new()) };
    /// Ids for this thread's enter guards.
    static NEXT_GUARD: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread is inside `block_on` or is a worker.
    static BLOCKING_FORBIDDEN: Cell<bool> = const { Cell::new(false) };
}

/// Makes `handle` current until dropped.
///
/// Guards must be dropped in the reverse order of their creation; dropping
/// one while a guard created after it is alive panics.
#[derive(Debug)]
pub struct EnterGuard {
    /// Which entry of this thread's stack the guard owns.
    id: u64,
    /// Not Send: the guard must be dropped on the thread that entered.
    _not_send: std::marker::PhantomData<*const ()>,
}

fn push(c: &RefCell<Vec<(u64, Handle)>>, handle: Handle) -> EnterGuard {
    let id = NEXT_GUARD.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1));
        id
    });
    c.borrow_mut().push((id, handle));
    EnterGuard {
        id,
        _not_send: std::marker::PhantomData,
    }
}

pub(crate) fn enter(handle: Handle) -> EnterGuard {
    CURRENT.with(|c| push(c, handle))
}

/// Like [`enter`], but `None` instead of a panic while this thread's
/// locals are being destroyed (a task dropped at thread exit).
pub(crate) fn try_enter(handle: Handle) -> Option<EnterGuard> {
    CURRENT.try_with(|c| push(c, handle)).ok()
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let in_order = CURRENT.try_with(|c| {
            let mut stack = c.borrow_mut();
            match stack.iter().rposition(|(id, _)| *id == self.id) {
                Some(i) if i + 1 == stack.len() => {
                    stack.pop();
                    true
                }
                // Out of order: forget this guard's entry, keep the later
                // ones (their guards are still alive).
                Some(i) => {
                    stack.remove(i);
                    false
                }
                None => true,
            }
        });
        if in_order == Ok(false) && !std::thread::panicking() {
            panic!(
                "runtime enter guards dropped out of order: an `EnterGuard` (from \
                 `Runtime::enter` or `Handle::enter`) was dropped while a guard entered after \
                 it was still alive. Drop guards in the reverse order of their creation (keep \
                 each in a scope of its own)."
            );
        }
    }
}

/// Calls `f` with the innermost handle entered on this thread (`None`
/// outside a runtime, or while this thread's locals are being destroyed).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    let out = CURRENT.try_with(|c| match c.try_borrow() {
        Ok(c) => (f.take().expect("called once"))(c.last().map(|(_, h)| h)),
        Err(_) => (f.take().expect("called once"))(None),
    });
    match out {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called"))(None),
    }
}

pub(crate) fn current() -> Option<Handle> {
    CURRENT.with(|c| c.borrow().last().map(|(_, h)| h.clone()))
}

/// Marks the thread as driving async code (a worker or `block_on`); nested
/// blocking is misuse.
pub(crate) struct DrivingGuard {
    /// The previous value, restored on drop.
    prev: bool,
}

#[track_caller]
pub(crate) fn driving() -> DrivingGuard {
    let prev = BLOCKING_FORBIDDEN.with(|b| b.replace(true));
    if prev {
        panic!(
            "Cannot start a runtime from within a runtime: `block_on` was called on a thread \
             that is already driving asynchronous tasks (inside `block_on`, `#[kevent::main]` \
             or a task). Use `.await` instead, or run the blocking code with \
             `kevent::task::spawn_blocking` (or, on a multi-thread runtime, inside \
             `kevent::task::block_in_place`)."
        );
    }
    DrivingGuard { prev }
}

/// Lets this thread block (and call `block_on`) until the guard drops,
/// even inside a task (`task::block_in_place`).
pub(crate) fn allow_blocking() -> DrivingGuard {
    DrivingGuard {
        prev: BLOCKING_FORBIDDEN.with(|b| b.replace(false)),
    }
}

/// Whether this thread is driving async code.
pub(crate) fn is_driving() -> bool {
    BLOCKING_FORBIDDEN.with(|b| b.get())
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        BLOCKING_FORBIDDEN.with(|b| b.set(self.prev));
    }
}
