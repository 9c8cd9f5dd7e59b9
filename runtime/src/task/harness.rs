//! What every spawned future is wrapped in: panic capture, abort, and the
//! runtime's registry of live tasks (so shutdown can drop every future).
//!
//! # Task state machine
//!
//! `TaskCtl::state` is a small atomic state machine:
//!
//! ```text
//!   IDLE --abort--> ABORTED --next poll--> (future dropped) DONE
//!   IDLE --poll returns Ready--> DONE
//! ```
//!
//! Every transition is a read-modify-write (`abort` a CAS from IDLE,
//! `finish` a swap to DONE), so the state has a single total history: an
//! abort either lands before the finishing swap (and is overwritten by
//! DONE: a task whose future completed stays complete) or after it (and
//! fails, having no effect). A plain store in `finish` would be just as
//! correct under the Rust memory model, but loom 0.7 lets a plain store
//! slip between the read and the write of a concurrent RMW
//! (tokio-rs/loom#254, #389) and then reports a final state that no real
//! execution can produce.
//!
//! The future itself runs inside an async-task raw task, which owns the
//! scheduling state (scheduled / running / completed / closed) and the
//! output handoff to the `JoinHandle`. `abort` only flips our state and
//! wakes the task: the future is always dropped on a thread that polls it,
//! never concurrently with a poll.
//!
//! # One allocation per task
//!
//! The control block is the raw task's *metadata*: it lives in the task's
//! header, in the same allocation as the future, for as long as anything
//! references the task. The harness (inside that allocation) points to it;
//! handles outside the task ([`TaskRef`]: `JoinHandle`, `AbortHandle`)
//! hold a clone of the task's waker, which keeps the allocation alive, and
//! wake the task through it when they abort. The registry keeps the waker
//! of each waiting task, to wake it at shutdown.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::loom::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use parking_lot::Mutex;

use super::id::{CurrentGuard, Id};
use super::join::JoinError;

const IDLE: u8 = 0;
const ABORTED: u8 = 1;
const DONE: u8 = 2;

/// Control block of one task: the raw task's metadata (see the module
/// docs), so it costs no allocation of its own.
#[derive(Debug)]
pub(crate) struct TaskCtl {
    /// IDLE, ABORTED or DONE.
    state: AtomicU8,
    /// The task's id (unique in the process; never 0).
    id: u64,
}

impl TaskCtl {
    pub(crate) fn new(id: u64) -> TaskCtl {
        TaskCtl {
            state: AtomicU8::new(IDLE),
            id,
        }
    }

    /// The id as the public type.
    pub(crate) fn task_id(&self) -> Id {
        Id::from_u64(self.id)
    }

    /// Requests cancellation. True if this call did: the caller then wakes
    /// the task so that it notices.
    pub(crate) fn abort(&self) -> bool {
        self.state
            .compare_exchange(IDLE, ABORTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }
}

/// A task's raw task, as the scheduler queues it.
pub(crate) type Runnable = async_task::Runnable<TaskCtl>;

/// A pointer to a task's control block, from inside the task (its
/// harness) or beside a reference that keeps the task alive.
#[derive(Clone, Copy, Debug)]
struct CtlPtr(NonNull<TaskCtl>);

// SAFETY: a `TaskCtl` is only atomics and an id: sharing it between threads
// is sound; whoever holds the pointer keeps the block alive (see its uses).
unsafe impl Send for CtlPtr {}
// SAFETY: as for Send.
unsafe impl Sync for CtlPtr {}

/// A task seen from outside it (`JoinHandle`, `AbortHandle`): its control
/// block and a clone of its waker, which keeps the raw task's allocation,
/// and so the block, alive, and wakes the task when it is aborted.
#[derive(Clone, Debug)]
pub(crate) struct TaskRef {
    /// Keeps the task alive; wakes it after an abort.
    waker: Waker,
    /// The task's metadata.
    ctl: CtlPtr,
}

impl TaskRef {
    /// A reference to the task `runnable` runs.
    pub(crate) fn new(runnable: &Runnable) -> TaskRef {
        TaskRef {
            waker: runnable.waker(),
            ctl: CtlPtr(NonNull::from(runnable.metadata())),
        }
    }

    /// The control block.
    pub(crate) fn ctl(&self) -> &TaskCtl {
        // SAFETY: `ctl` is the metadata of the raw task `waker` references;
        // async-task keeps a task's header (metadata included) until its
        // last reference, wakers included, is gone, and never moves it.
        unsafe { self.ctl.0.as_ref() }
    }

    /// Requests cancellation and wakes the task so it notices (its next
    /// poll drops the future).
    pub(crate) fn abort(&self) {
        if self.ctl().abort() {
            self.waker.wake_by_ref();
        }
    }
}

/// Waiting tasks' ids to their wakers.
type TaskMap = kevent_reactor::IdMap<Waker>;

/// The registry of live tasks, sharded to keep spawns from contending.
///
/// A task enters it only when its first poll returns `Pending`: until then
/// it sits in a run queue (which shutdown drains) or runs on a worker, and
/// most short tasks finish in that first poll without touching the registry
/// or its locks. Live tasks are counted as spawned minus finished.
#[derive(Debug)]
pub(crate) struct OwnedTasks {
    /// Idle tasks by id, in `id % shards` shards.
    shards: Box<[Mutex<TaskMap>]>,
    /// Tasks spawned.
    spawned: AtomicU64,
    /// Tasks finished (completed, cancelled or dropped).
    finished: AtomicU64,
    /// Once closed, no task may be added (spawns after shutdown are
    /// refused, and a task that would wait is cancelled instead).
    closed: std::sync::atomic::AtomicBool,
}

impl OwnedTasks {
    pub(crate) fn new() -> OwnedTasks {
        OwnedTasks {
            shards: (0..32).map(|_| Mutex::new(TaskMap::default())).collect(),
            spawned: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A control block for a new task; `None` when the registry is closed.
    pub(crate) fn new_task(&self) -> Option<TaskCtl> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.spawned.fetch_add(1, Ordering::Relaxed);
        Some(TaskCtl::new(Id::next().as_u64()))
    }

    /// Enters a task about to wait into the registry with its waker; false
    /// when the registry is closed (the runtime shuts down).
    fn register(&self, id: u64, waker: &Waker) -> bool {
        let mut shard = self.shards[(id % self.shards.len() as u64) as usize].lock();
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        shard.insert(id, waker.clone());
        true
    }

    fn remove(&self, id: u64) {
        self.shards[(id % self.shards.len() as u64) as usize]
            .lock()
            .remove(&id);
    }

    /// Counts a finished task.
    fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Release);
    }

    /// Refuses new tasks and wakes every waiting one, so that each is
    /// scheduled once more and, the scheduler being closed, dropped.
    pub(crate) fn close_and_wake_all(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        for shard in self.shards.iter() {
            let wakers: Vec<Waker> = shard.lock().drain().map(|(_, w)| w).collect();
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// Live tasks: spawned and not yet finished.
    pub(crate) fn len(&self) -> usize {
        // `finished` first: a task counted there was spawned before it.
        let finished = self.finished.load(Ordering::Acquire);
        let spawned = self.spawned.load(Ordering::Acquire);
        spawned.saturating_sub(finished) as usize
    }
}

/// A spawned future with its control block.
pub(crate) struct Harness<F> {
    /// The future; `None` once finished or dropped by abort.
    future: Option<F>,
    /// Abort control: the metadata of the raw task this harness runs in.
    ctl: CtlPtr,
    /// The runtime whose registry to leave when finished (`None` for
    /// blocking jobs, which are not registered).
    owned: Option<Arc<crate::scheduler::Shared>>,
    /// Whether the waker was captured and the task entered the registry
    /// (at its first `Pending`).
    registered: bool,
}

impl<F> Harness<F> {
    /// A harness for `future`, to run inside the raw task whose metadata
    /// is `ctl`.
    ///
    /// # Safety
    ///
    /// `ctl` outlives the harness and never moves: it is the metadata of
    /// the raw task the harness is spawned into (async-task passes it to
    /// the closure that makes the future), or, in the models, a block the
    /// test keeps alive.
    pub(crate) unsafe fn new(
        future: F,
        ctl: &TaskCtl,
        owned: Option<Arc<crate::scheduler::Shared>>,
    ) -> Self {
        Harness {
            future: Some(future),
            ctl: CtlPtr(NonNull::from(ctl)),
            owned,
            registered: false,
        }
    }

    /// The control block.
    fn ctl(&self) -> &TaskCtl {
        // SAFETY: `new`'s contract: the block outlives the harness.
        unsafe { self.ctl.0.as_ref() }
    }

    /// Marks the task DONE (whatever an `abort` racing with the last poll
    /// did), drops the captured waker and leaves the registry.
    fn finish(&mut self) {
        // A swap, not a store: see the module docs (RMW atomicity keeps a
        // racing abort's CAS strictly before or strictly after this).
        let prev = self.ctl().state.swap(DONE, Ordering::AcqRel);
        debug_assert_ne!(prev, DONE, "task finished twice");
        if let Some(shared) = &self.owned {
            if self.registered {
                shared.owned.remove(self.ctl().id);
            }
            shared.owned.finished();
        }
    }

    /// Before the task first waits: enters it into the registry with its
    /// waker (for shutdown). False if it must not wait: aborted meanwhile,
    /// or the runtime is shutting down.
    fn register(&mut self, waker: &Waker) -> bool {
        if let Some(shared) = &self.owned {
            if !shared.owned.register(self.ctl().id, waker) {
                return false;
            }
        }
        self.registered = true;
        // An abort during this poll woke the task, which would run once
        // more to see it; cancelling now saves that poll.
        self.ctl().state.load(Ordering::Acquire) != ABORTED
    }
}

impl<F: Future> Harness<F> {
    /// Cancels an aborted task on the polling thread: drops the future
    /// (never concurrently with a poll of it) and finishes. A future whose
    /// `Drop` panics reports that panic rather than a cancellation.
    fn cancel(&mut self) -> Poll<Result<F::Output, JoinError>> {
        let dropped = drop_caught(&mut self.future);
        self.finish();
        let id = self.ctl().task_id();
        Poll::Ready(Err(match dropped {
            Ok(()) => JoinError::cancelled(id),
            Err(payload) => JoinError::panic(id, payload),
        }))
    }
}

/// Drops the future in place (it may be pinned), catching a panic from its
/// `Drop`: a panicking destructor must not take a worker down. Assignment
/// drops in place and stores `None` even if the destructor unwinds.
fn drop_caught<F>(slot: &mut Option<F>) -> Result<(), Box<dyn Any + Send>> {
    // Tasks the drop wakes during shutdown are dropped after it, not
    // inside it (a destructor may hold a lock while it wakes).
    crate::scheduler::in_drop_scope(|| catch_unwind(AssertUnwindSafe(|| *slot = None)))
}

impl<F: Future> Future for Harness<F> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is only ever polled
        // through `Pin::new_unchecked` below and dropped in place by
        // `drop_caught`; no other field is pinned, and nothing moves it out.
        let this = unsafe { self.get_unchecked_mut() };
        // `task::id()` names this task while its future runs or drops.
        let _current = CurrentGuard::enter(this.ctl().task_id());
        if this.ctl().state.load(Ordering::Acquire) == ABORTED {
            return this.cancel();
        }
        if this.future.is_none() {
            return Poll::Ready(Err(JoinError::cancelled(this.ctl().task_id())));
        }
        let slot = &mut this.future;
        let polled = catch_unwind(AssertUnwindSafe(|| {
            // A future that panics is dropped while its panic unwinds (as
            // on tokio): its destructors run before the task is seen to
            // end, with `std::thread::panicking()` true.
            let guard = DropOnUnwind(slot);
            let future = guard.0.as_mut().expect("checked above");
            // SAFETY: `future` lives inside the pinned harness and is
            // never moved until dropped in place (the async-task
            // allocation does not move).
            let res = unsafe { Pin::new_unchecked(future) }.poll(cx);
            std::mem::forget(guard);
            res
        }));
        match polled {
            Ok(Poll::Pending) => {
                // A task that waits for the first time registers now (a
                // task that finishes in its first poll never does). An
                // abort that came during this poll cancels it here rather
                // than through a self-wake and one more poll.
                if !this.registered && !this.register(cx.waker()) {
                    return this.cancel();
                }
                Poll::Pending
            }
            Ok(Poll::Ready(out)) => {
                let _ = drop_caught(&mut this.future);
                this.finish();
                Poll::Ready(Ok(out))
            }
            Err(panic) => {
                let _ = drop_caught(&mut this.future);
                this.finish();
                Poll::Ready(Err(JoinError::panic(this.ctl().task_id(), panic)))
            }
        }
    }
}

/// Drops the future it holds if dropped itself, which happens only while
/// a poll of that future unwinds (a successful poll forgets the guard).
struct DropOnUnwind<'a, F>(&'a mut Option<F>);

impl<F> Drop for DropOnUnwind<'_, F> {
    fn drop(&mut self) {
        // A destructor that panics as well is caught here: a panic escaping
        // a drop during unwinding would abort the process.
        let _ = drop_caught(self.0);
    }
}

impl<F> Drop for Harness<F> {
    fn drop(&mut self) {
        // A future dropped unfinished (at shutdown, or never polled) is
        // dropped with its runtime current, on whichever thread drops it:
        // its destructors may call `Handle::current()` (as on tokio).
        let _enter = match (&self.future, &self.owned) {
            (Some(_), Some(shared)) => crate::runtime::context::try_enter(crate::runtime::Handle {
                shared: shared.clone(),
            }),
            _ => None,
        };
        // A panicking Drop at shutdown must not take the runtime down.
        if self.future.is_some() {
            let _current = CurrentGuard::enter(self.ctl().task_id());
            let _ = drop_caught(&mut self.future);
        }
        if self.ctl().state.load(Ordering::Acquire) != DONE {
            self.finish();
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The task state machine under loom: `abort` racing with polls.
    use super::*;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::thread;
    use std::task::Wake;

    /// Counts wakes.
    struct CountWaker(AtomicUsize);

    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// An abort racing with the task's first poll is never lost: either
    /// that poll cancels the task, or the abort wakes it and the next poll
    /// does; a cancelled task is never polled again.
    #[test]
    fn abort_racing_first_poll_is_never_lost() {
        loom::model(|| {
            let ctl = Arc::new(TaskCtl::new(1));
            let polls = Arc::new(AtomicUsize::new(0));
            let counter = polls.clone();
            let future = std::future::poll_fn(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                Poll::<()>::Pending
            });
            // SAFETY: `ctl` outlives the harness (dropped at the end).
            let mut harness = Box::pin(unsafe { Harness::new(future, &ctl, None) });
            let wakes = Arc::new(CountWaker(AtomicUsize::new(0)));
            let waker = Waker::from(wakes.clone());
            let mut cx = Context::from_waker(&waker);
            let aborter = {
                // What `TaskRef::abort` does.
                let ctl = ctl.clone();
                let waker = waker.clone();
                thread::spawn(move || {
                    if ctl.abort() {
                        waker.wake();
                    }
                })
            };
            let first = harness.as_mut().poll(&mut cx);
            aborter.join().unwrap();
            match first {
                Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
                Poll::Ready(Ok(())) => panic!("the future never completes"),
                Poll::Pending => {
                    assert!(
                        wakes.0.load(Ordering::SeqCst) >= 1,
                        "an abort must wake the task"
                    );
                    match harness.as_mut().poll(&mut cx) {
                        Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
                        other => panic!("second poll after abort: {:?}", other.is_ready()),
                    }
                }
            }
            let polled = polls.load(Ordering::SeqCst);
            assert!(polled <= 1, "polled {polled} times");
            assert!(ctl.is_finished());
        });
    }

    /// Completion and abort racing: the output is either delivered or the
    /// task is cancelled, and the state ends DONE either way.
    #[test]
    fn abort_racing_completion_ends_done() {
        loom::model(|| {
            let ctl = Arc::new(TaskCtl::new(2));
            // SAFETY: `ctl` outlives the harness (dropped at the end).
            let mut harness = Box::pin(unsafe { Harness::new(async { 7 }, &ctl, None) });
            let waker = Waker::noop();
            let mut cx = Context::from_waker(waker);
            let aborter = {
                let ctl = ctl.clone();
                thread::spawn(move || {
                    ctl.abort();
                })
            };
            match harness.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(v)) => assert_eq!(v, 7),
                Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
                Poll::Pending => panic!("ready future returned pending"),
            }
            aborter.join().unwrap();
            assert!(ctl.is_finished());
        });
    }
}
