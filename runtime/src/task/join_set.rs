//! `JoinSet`: a collection of tasks whose outputs come back as they finish.
//!
//! # How `join_next` finds a finished task
//!
//! Each task in the set is polled through its `JoinHandle` with a waker of
//! its own, which knows the task's slot. When async-task wakes that waker
//! (the task finished, or a poll ran out of budget), the slot goes on the
//! set's ready list and the waiting `join_next` is woken. `join_next` then
//! polls only the slots on that list, so one call costs the number of tasks
//! that woke, not the number in the set. A newly added task starts on the
//! list, so its first poll registers its waker.

use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;

use super::id::Id;
use super::join::{AbortHandle, JoinError, JoinHandle};
use crate::runtime::Handle;

/// A set of tasks spawned on the runtime, awaited in the order they finish
/// (tokio's `task::JoinSet`).
///
/// Dropping the set aborts every task still in it;
/// [`detach_all`](JoinSet::detach_all) lets them run on instead.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// use kevent_runtime::task::JoinSet;
///
/// let mut set = JoinSet::new();
/// for i in 0..10u32 {
///     set.spawn(async move { i * i });
/// }
/// let mut sum = 0;
/// while let Some(res) = set.join_next().await {
///     sum += res.unwrap();
/// }
/// assert_eq!(sum, 285);
/// # });
/// ```
pub struct JoinSet<T> {
    /// Slots; `None` where free.
    slots: Vec<Option<Slot<T>>>,
    /// Free slot indexes.
    free: Vec<usize>,
    /// Tasks in the set.
    len: usize,
    /// Where slots' wakers report.
    ready: Arc<Ready>,
}

/// One task of the set.
struct Slot<T> {
    handle: JoinHandle<T>,
    /// The task's waker in this set.
    waker: Arc<SlotWaker>,
}

/// Slots whose task woke, and the waker of whoever waits in `join_next`.
#[derive(Default)]
struct Ready {
    slots: Mutex<Vec<usize>>,
    waiter: Mutex<Option<Waker>>,
}

/// The waker a task of the set is polled with.
struct SlotWaker {
    slot: usize,
    /// On the ready list already (so a slot is listed at most once per
    /// wake).
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.slots.lock().push(self.slot);
        }
        let waiter = self.ready.waiter.lock().take();
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: Arc::new(Ready::default()),
        }
    }

    /// Tasks in the set (finished ones count until they are joined).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a spawned task's handle; returns an abort handle for it.
    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let waker = Arc::new(SlotWaker {
            slot,
            queued: AtomicBool::new(true),
            ready: self.ready.clone(),
        });
        self.ready.slots.lock().push(slot);
        self.slots[slot] = Some(Slot { handle, waker });
        self.len += 1;
        abort
    }

    /// Aborts every task in the set. They stay in it until joined: each
    /// then gives a cancelled [`JoinError`] (or its output, if it finished
    /// first).
    pub fn abort_all(&mut self) {
        for slot in self.slots.iter().flatten() {
            slot.handle.abort();
        }
    }

    /// Removes every task from the set without aborting it: they run on,
    /// their outputs dropped.
    pub fn detach_all(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.ready.slots.lock().clear();
        // The detached tasks still hold their slot wakers until they end:
        // they must not keep (and spuriously wake) a past `join_next` caller.
        self.ready.waiter.lock().take();
        self.len = 0;
    }

    /// Aborts every task and waits until all have stopped; the set is
    /// empty afterwards.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for a task of the set to finish and removes it. `None` when
    /// the set is empty.
    ///
    /// Cancel safe: if the future is dropped before it completes, no task
    /// output is lost.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](JoinSet::join_next), with the finished task's id.
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// A task that has already finished, removed from the set; `None` if
    /// none has (or the set is empty). Never waits.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id().map(|r| r.map(|(_, v)| v))
    }

    /// [`try_join_next`](JoinSet::try_join_next), with the task's id.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        match self.poll_woken() {
            Poll::Ready(out) => out,
            Poll::Pending => None,
        }
    }

    /// Polls for the next finished task: `Ready(None)` when the set is
    /// empty, `Pending` (with `cx` woken later) when no task has finished.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|out| out.map(|r| r.map(|(_, v)| v)))
    }

    /// [`poll_join_next`](JoinSet::poll_join_next), with the task's id.
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        // Registered before the ready list is read, so a task that wakes
        // after the read wakes this caller.
        *self.ready.waiter.lock() = Some(cx.waker().clone());
        let out = self.poll_woken();
        if out.is_ready() {
            self.ready.waiter.lock().take();
        }
        out
    }

    /// Polls the tasks on the ready list (each once: a task that runs out
    /// of budget puts itself back for the next call) until one has
    /// finished. `Ready(None)` when the set is empty.
    fn poll_woken(&mut self) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        let woken = std::mem::take(&mut *self.ready.slots.lock());
        let mut found = None;
        let mut rest = woken.into_iter();
        for index in rest.by_ref() {
            let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
                continue; // a stale wake of a slot already joined
            };
            slot.waker.queued.store(false, Ordering::Release);
            let waker = Waker::from(slot.waker.clone());
            let id = slot.handle.id();
            if let Poll::Ready(res) =
                std::pin::Pin::new(&mut slot.handle).poll(&mut Context::from_waker(&waker))
            {
                self.slots[index] = None;
                self.free.push(index);
                self.len -= 1;
                found = Some(res.map(|v| (id, v)));
                break;
            }
        }
        // Slots not polled this time stay listed for the next call.
        let rest: Vec<usize> = rest.collect();
        if !rest.is_empty() {
            self.ready.slots.lock().extend(rest);
        }
        match found {
            Some(res) => Poll::Ready(Some(res)),
            None => Poll::Pending,
        }
    }

    /// Waits for every task and returns their outputs in the order they
    /// finished.
    ///
    /// # Panics
    ///
    /// If a task panicked, that panic resumes here (the other tasks are
    /// aborted when the set drops); if a task was cancelled, panics saying
    /// so. Use [`join_next`](JoinSet::join_next) to handle each result.
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(res) = self.join_next().await {
            match res {
                Ok(v) => out.push(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    panic!("`JoinSet::join_all`: {e}; use `join_next` to handle cancelled tasks")
                }
            }
        }
        out
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current runtime into the set.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime; use [`spawn_on`](JoinSet::spawn_on) with a
    /// [`Handle`] there.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        match Handle::try_current() {
            Ok(handle) => self.insert(handle.spawn(future)),
            Err(_) => panic!(
                "`JoinSet::spawn` called outside a kevent runtime: call it from inside the \
                 runtime, or use `JoinSet::spawn_on` with a `kevent::runtime::Handle`"
            ),
        }
    }

    /// Spawns `future` on `handle`'s runtime into the set.
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Runs the blocking closure `f` on the current runtime's blocking pool,
    /// its result joining the set. Aborting it has no effect once it runs.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime; use
    /// [`spawn_blocking_on`](JoinSet::spawn_blocking_on) there.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        match Handle::try_current() {
            Ok(handle) => self.insert(handle.spawn_blocking(f)),
            Err(_) => panic!(
                "`JoinSet::spawn_blocking` called outside a kevent runtime: call it from \
                 inside the runtime, or use `JoinSet::spawn_blocking_on` with a \
                 `kevent::runtime::Handle`"
            ),
        }
    }

    /// Runs `f` on `handle`'s blocking pool, its result joining the set.
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(handle.spawn_blocking(f))
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns a `!Send` future into the set, on the `LocalSet` driven on
    /// this thread.
    ///
    /// # Panics
    ///
    /// Outside a `LocalSet` (see [`spawn_local`](super::spawn_local)).
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.insert(super::spawn_local(future))
    }

    /// Spawns a `!Send` future into the set, on `local_set`.
    pub fn spawn_local_on<F>(&mut self, future: F, local_set: &super::LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        self.insert(local_set.spawn_local(future))
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish()
    }
}

/// Spawns every future of the iterator on the current runtime.
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        for future in iter {
            set.spawn(future);
        }
        set
    }
}
