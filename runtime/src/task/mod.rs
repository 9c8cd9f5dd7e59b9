//! Tasks: spawning, joining, yielding, and the blocking pool.

mod block_in_place;
pub(crate) mod blocking;
pub(crate) mod coop;
pub(crate) mod harness;
mod id;
mod join;
mod join_set;
mod local;
mod task_local;
mod yield_now;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_task::WithInfo;

pub use block_in_place::block_in_place;
pub use coop::{consume_budget, unconstrained, Unconstrained};
pub use id::{id, try_id, Id};
use join::Caught;
pub use join::{AbortHandle, JoinError, JoinHandle};
pub use join_set::JoinSet;
pub use local::{spawn_local, LocalEnterGuard, LocalSet};
pub use task_local::{AccessError, LocalKey};

/// The futures that task functions return.
pub mod futures {
    pub use super::task_local::TaskLocalFuture;
}
pub use yield_now::yield_now;

use crate::runtime::Handle;
use crate::scheduler::Shared;
pub(crate) use harness::Runnable;
use harness::{Harness, TaskCtl, TaskRef};

/// Spawns a task on the current runtime; it starts running at once, on
/// any worker, and keeps running if the handle is dropped.
///
/// # Panics
///
/// Outside a kevent runtime. Call it from inside `#[kevent::main]`,
/// `Runtime::block_on` or a task, or use [`Handle::spawn`] with a handle.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => handle.spawn(future),
        Err(_) => panic!(
            "`kevent::spawn` called outside a kevent runtime: call it from inside \
             `#[kevent::main]`, `Runtime::block_on` or another task, or keep a \
             `kevent::runtime::Handle` and use `Handle::spawn`"
        ),
    }
}

/// Runs a blocking closure on the blocking pool, so it does not hold up a
/// worker. Returns a handle to await its result.
///
/// # Panics
///
/// Outside a kevent runtime (see [`spawn`]).
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match Handle::try_current() {
        Ok(handle) => handle.spawn_blocking(f),
        Err(_) => panic!(
            "`kevent::task::spawn_blocking` called outside a kevent runtime: call it from \
             inside the runtime or use `Handle::spawn_blocking`"
        ),
    }
}

/// Spawns `future` on `shared`'s scheduler.
pub(crate) fn spawn_on<F>(shared: &Arc<Shared>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(ctl) = shared.owned.new_task() else {
        return cancelled();
    };
    let owned = shared.clone();
    let scheduler = shared.clone();
    let schedule = move |task: Runnable, info: async_task::ScheduleInfo| {
        scheduler.schedule(task, info.woken_while_running);
    };
    let (runnable, task) = async_task::Builder::new().metadata(ctl).spawn(
        move |ctl: &TaskCtl| {
            // SAFETY: `ctl` is this raw task's metadata.
            let harness = unsafe { Harness::new(future, ctl, Some(owned)) };
            async move { Caught(Some(harness.await)) }
        },
        WithInfo(schedule),
    );
    let handle = TaskRef::new(&runnable);
    // With several workers a task spawned from a worker takes its LIFO slot,
    // as in tokio: it runs next, where the spawner left its data warm, and
    // the task it displaces goes to the queue, where an idle worker can
    // steal it (a spawner that then blocks loses it to the stall check).
    // A single worker keeps spawn order: first spawned, first run.
    shared.schedule(runnable, shared.single);
    JoinHandle::new(task, handle)
}

/// Runs `f` on `shared`'s blocking pool.
pub(crate) fn spawn_blocking_on<F, R>(shared: &Arc<Shared>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let ctl = TaskCtl::new(Id::next().as_u64());
    let pool = shared.clone();
    let (runnable, task) = async_task::Builder::new().metadata(ctl).spawn(
        move |ctl: &TaskCtl| {
            // SAFETY: `ctl` is this raw task's metadata.
            let harness = unsafe { Harness::new(BlockingJob(Some(f)), ctl, None) };
            async move { Caught(Some(harness.await)) }
        },
        move |r| pool.blocking.schedule(r),
    );
    let handle = TaskRef::new(&runnable);
    runnable.schedule();
    JoinHandle::new(task, handle)
}

/// A handle for a task that could not be spawned (the runtime shut down):
/// awaiting it gives a cancelled `JoinError`.
fn cancelled<T: Send + 'static>() -> JoinHandle<T> {
    let id = Id::next();
    let (runnable, task) = async_task::Builder::new()
        .metadata(TaskCtl::new(id.as_u64()))
        .spawn(
            move |_: &TaskCtl| async move {
                Caught(Some(Err::<T, JoinError>(JoinError::cancelled(id))))
            },
            |_| {},
        );
    let handle = TaskRef::new(&runnable);
    drop(runnable);
    JoinHandle::new(task, handle)
}

/// A blocking closure as a future that runs it on its first poll.
struct BlockingJob<F>(Option<F>);

impl<F> Unpin for BlockingJob<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingJob<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self.0.take().expect("blocking job polled after completion");
        Poll::Ready(f())
    }
}
