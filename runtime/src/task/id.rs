//! Task ids: unique among every task of the process, as tokio's are.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// A task's id, unique among all the tasks the process ever spawned (on any
/// runtime, including blocking closures). Ids are not reused; their order
/// says nothing about when tasks ran.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// let handle = kevent_runtime::spawn(async { kevent_runtime::task::id() });
/// let id = handle.id();
/// assert_eq!(handle.await.unwrap(), id);
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

/// The next id to hand out (ids start at 1).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Id {
    /// A fresh id.
    pub(crate) fn next() -> Id {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Id(NonZeroU64::new(n).expect("task ids exhausted 64 bits"))
    }

    /// The id with this number (task control blocks keep the number).
    pub(crate) fn from_u64(n: u64) -> Id {
        Id(NonZeroU64::new(n).expect("task ids are never 0"))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

thread_local! {
    /// The task this thread is polling or dropping, if any.
    static CURRENT: Cell<Option<Id>> = const { Cell::new(None) };
}

/// Makes `id` the current task until dropped, then restores what was
/// current before (a task's poll may run inside another's, e.g. a nested
/// `block_on` in a blocking closure).
pub(crate) struct CurrentGuard(Option<Id>);

impl CurrentGuard {
    pub(crate) fn enter(id: Id) -> CurrentGuard {
        CurrentGuard(CURRENT.with(|c| c.replace(Some(id))))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        // `try_with`: a guard dropped while the thread exits is harmless.
        let _ = CURRENT.try_with(|c| c.set(self.0));
    }
}

/// The id of the task running this code.
///
/// # Panics
///
/// Outside a task (in `block_on`'s own future, or on a thread that is not
/// running a task). Use [`try_id`] where that can happen.
#[track_caller]
pub fn id() -> Id {
    try_id().expect(
        "`kevent::task::id()` called outside a task: call it from code a task runs \
         (spawned or spawn_blocking), or use `kevent::task::try_id()`, which returns None there",
    )
}

/// The id of the task running this code, or `None` outside a task.
pub fn try_id() -> Option<Id> {
    CURRENT.try_with(Cell::get).ok().flatten()
}
