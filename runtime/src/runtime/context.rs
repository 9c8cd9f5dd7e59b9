//! Which runtime the current thread is in, for `Handle::current` and
//! `kevent::spawn`, and misuse detection (nested `block_on`).

use std::cell::{Cell, RefCell};

use super::Handle;

thread_local! {
    /// Handles entered on this thread, innermost last.
    static CURRENT: RefCell<Vec<Handle>> = const { RefCell::new(Vec::new()) };
    /// Whether this thread is inside `block_on` or is a worker.
    static BLOCKING_FORBIDDEN: Cell<bool> = const { Cell::new(false) };
}

/// Makes `handle` current until dropped.
#[derive(Debug)]
pub struct EnterGuard {
    /// Not Send: the guard must be dropped on the thread that entered.
    _not_send: std::marker::PhantomData<*const ()>,
}

pub(crate) fn enter(handle: Handle) -> EnterGuard {
    CURRENT.with(|c| c.borrow_mut().push(handle));
    EnterGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Like [`enter`], but `None` instead of a panic while this thread's
/// locals are being destroyed (a task dropped at thread exit).
pub(crate) fn try_enter(handle: Handle) -> Option<EnterGuard> {
    CURRENT
        .try_with(|c| c.borrow_mut().push(handle))
        .ok()
        .map(|()| EnterGuard {
            _not_send: std::marker::PhantomData,
        })
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().pop());
    }
}

/// Calls `f` with the innermost handle entered on this thread (`None`
/// outside a runtime, or while this thread's locals are being destroyed).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    let out = CURRENT.try_with(|c| match c.try_borrow() {
        Ok(c) => (f.take().expect("called once"))(c.last()),
        Err(_) => (f.take().expect("called once"))(None),
    });
    match out {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called"))(None),
    }
}

pub(crate) fn current() -> Option<Handle> {
    CURRENT.with(|c| c.borrow().last().cloned())
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
             `kevent::task::spawn_blocking`."
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
