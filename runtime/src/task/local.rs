//! `LocalSet` and `spawn_local`: tasks whose futures are not `Send`, run on
//! the thread that drives the set.
//!
//! A `LocalSet` is a run queue of its own, driven from inside one task (or
//! `block_on`) of a runtime: [`LocalSet::run_until`], [`LocalSet::block_on`]
//! or awaiting the set polls its tasks on the thread polling it, a batch at
//! a time, and the runtime's timers and I/O wake them as any task. Wakers
//! may be called from any thread: they queue the task and wake whoever
//! drives the set.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::Runnable;
use parking_lot::Mutex;

use super::harness::{Harness, TaskCtl, TaskRef};
use super::join::Caught;
use super::{coop, Id, JoinHandle};
use crate::runtime::Runtime;

/// Tasks polled per turn before the set yields to its runtime.
const TURN: usize = 61;

thread_local! {
    /// The set being driven on this thread, for [`spawn_local`].
    static CURRENT: RefCell<Option<Rc<LocalState>>> = const { RefCell::new(None) };
}

/// What wakers (on any thread) reach: the queue and the driver's waker.
#[derive(Debug, Default)]
struct Queue {
    /// Tasks ready to run, and the waker of whoever drives the set.
    inner: Mutex<QueueInner>,
}

#[derive(Debug, Default)]
struct QueueInner {
    /// Woken tasks, in wake order.
    ready: VecDeque<Runnable>,
    /// The task (or `block_on`) driving the set, woken when a task is queued.
    driver: Option<Waker>,
    /// The set was dropped: tasks woken after that are leaked, not run.
    closed: bool,
}

impl Queue {
    fn push(&self, task: Runnable) {
        let mut inner = self.inner.lock();
        if inner.closed {
            drop(inner);
            // Its future may be `!Send` and this may be another thread:
            // dropping it here is not allowed. The set dropped every task
            // it knew of; this one was woken after, and is leaked.
            std::mem::forget(task);
            return;
        }
        inner.ready.push_back(task);
        let driver = inner.driver.clone();
        drop(inner);
        if let Some(w) = driver {
            w.wake();
        }
    }

    fn pop(&self) -> Option<Runnable> {
        self.inner.lock().ready.pop_front()
    }
}

/// The set's state on its thread.
#[derive(Debug)]
struct LocalState {
    /// Shared with the tasks' schedule functions.
    queue: Arc<Queue>,
    /// Control blocks of the tasks spawned and not yet seen finished.
    tasks: RefCell<Vec<TaskRef>>,
}

/// A set of tasks that run on the thread driving it, so their futures need
/// not be `Send` (tokio's `task::LocalSet`).
///
/// ```
/// use std::rc::Rc;
/// use kevent_runtime::task::{self, LocalSet};
///
/// let rt = kevent_runtime::runtime::Builder::new_current_thread().build()?;
/// let local = LocalSet::new();
/// let n = local.block_on(&rt, async {
///     let shared = Rc::new(41); // not Send
///     let s = shared.clone();
///     task::spawn_local(async move { *s + 1 }).await.unwrap()
/// });
/// assert_eq!(n, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalSet {
    /// The queue and the task list.
    state: Rc<LocalState>,
    /// Not `Send`: its tasks belong to this thread.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet")
            .field("tasks", &self.state.tasks.borrow().len())
            .finish()
    }
}

impl Default for LocalSet {
    fn default() -> LocalSet {
        LocalSet::new()
    }
}

impl LocalSet {
    /// An empty set.
    pub fn new() -> LocalSet {
        LocalSet {
            state: Rc::new(LocalState {
                queue: Arc::new(Queue::default()),
                tasks: RefCell::new(Vec::new()),
            }),
            _not_send: PhantomData,
        }
    }

    /// Spawns `future` into this set; it runs once the set is driven.
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_into(&self.state, future)
    }

    /// Runs `future` on `rt` (its `block_on`), driving this set's tasks
    /// meanwhile.
    ///
    /// # Panics
    ///
    /// As `Runtime::block_on` (nested inside another `block_on` or a task).
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &Runtime, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }

    /// Runs `future` to completion, driving this set's tasks while it is
    /// pending. Await it inside a runtime.
    pub async fn run_until<F: Future>(&self, future: F) -> F::Output {
        RunUntil {
            state: &self.state,
            future,
        }
        .await
    }

    /// Makes this set the one [`spawn_local`] spawns into until the guard
    /// drops.
    pub fn enter(&self) -> LocalEnterGuard {
        LocalEnterGuard {
            prev: CURRENT.with(|c| c.replace(Some(self.state.clone()))),
        }
    }
}

/// Makes a `LocalSet` current until dropped (see [`LocalSet::enter`]).
#[derive(Debug)]
pub struct LocalEnterGuard {
    /// The set that was current before.
    prev: Option<Rc<LocalState>>,
}

impl Drop for LocalEnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

impl LocalState {
    /// Polls queued tasks, at most a turn's worth, with this set current.
    /// True if tasks are still queued after the turn.
    fn tick(self: &Rc<Self>, cx: &mut Context<'_>) -> bool {
        self.queue.inner.lock().driver = Some(cx.waker().clone());
        for _ in 0..TURN {
            let Some(task) = self.queue.pop() else {
                return false;
            };
            coop::budget(|| task.run());
        }
        !self.queue.inner.lock().ready.is_empty()
    }

    /// Whether every task spawned into the set has finished.
    fn all_done(&self) -> bool {
        let mut tasks = self.tasks.borrow_mut();
        tasks.retain(|t| !t.ctl().is_finished());
        tasks.is_empty()
    }
}

/// Enters `state` as this thread's current set for the guard's life.
fn enter_state(state: &Rc<LocalState>) -> LocalEnterGuard {
    LocalEnterGuard {
        prev: CURRENT.with(|c| c.replace(Some(state.clone()))),
    }
}

/// The future of [`LocalSet::run_until`].
struct RunUntil<'a, F> {
    /// The set.
    state: &'a Rc<LocalState>,
    /// The future run to completion.
    future: F,
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is polled only through
        // this pin and never moved; `state` is a plain reference.
        let this = unsafe { self.get_unchecked_mut() };
        let _enter = enter_state(this.state);
        // SAFETY: see above; `this.future` stays where the pin put it.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(out) = future.poll(cx) {
            return Poll::Ready(out);
        }
        if this.state.tick(cx) {
            // More queued than a turn: come back after the runtime's others.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Awaiting a `LocalSet` drives its tasks until all have finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = self.state.clone();
        let _enter = enter_state(&state);
        if state.tick(cx) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if state.all_done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for LocalSet {
    /// Drops every task's future, on this thread: queued ones directly,
    /// waiting ones after aborting them (the abort queues them).
    fn drop(&mut self) {
        let _enter = enter_state(&self.state);
        for task in self.state.tasks.borrow().iter() {
            task.abort();
        }
        loop {
            let ready = std::mem::take(&mut self.state.queue.inner.lock().ready);
            if ready.is_empty() {
                break;
            }
            for task in ready {
                crate::scheduler::drop_task(task);
            }
        }
        let mut inner = self.state.queue.inner.lock();
        inner.closed = true;
        inner.driver = None;
    }
}

/// Spawns a `!Send` future into the `LocalSet` being driven on this
/// thread (tokio's `task::spawn_local`).
///
/// # Panics
///
/// Outside a `LocalSet`: call it from a task of a `LocalSet`, or inside
/// `LocalSet::run_until`, `LocalSet::block_on` or `LocalSet::enter`.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let Some(state) = CURRENT.with(|c| c.borrow().clone()) else {
        panic!(
            "`kevent::task::spawn_local` called outside a `LocalSet`: `!Send` tasks need a \
             `kevent::task::LocalSet` to run on. Spawn from inside `LocalSet::run_until`, \
             `LocalSet::block_on` or a task of the set, or use `LocalSet::spawn_local`"
        );
    };
    spawn_into(&state, future)
}

fn spawn_into<F>(state: &Rc<LocalState>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let ctl = TaskCtl::new(Id::next().as_u64());
    let queue = state.queue.clone();
    // `spawn_local` checks that the future is polled and dropped on this
    // thread only.
    let (runnable, task) = async_task::Builder::new().metadata(ctl).spawn_local(
        move |ctl: &TaskCtl| {
            // SAFETY: `ctl` is this raw task's metadata.
            let harness = unsafe { Harness::new(future, ctl, None) };
            async move { Caught(Some(harness.await)) }
        },
        move |task| queue.push(task),
    );
    let handle = TaskRef::new(&runnable);
    {
        let mut tasks = state.tasks.borrow_mut();
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.ctl().is_finished());
        }
        tasks.push(handle.clone());
    }
    runnable.schedule();
    JoinHandle::new(task, handle)
}
