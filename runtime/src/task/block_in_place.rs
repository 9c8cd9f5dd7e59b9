//! `block_in_place`: run blocking code on a worker thread without holding
//! up the tasks queued behind it.

use crate::runtime::context;
use crate::scheduler::{worker, Flavor};

/// Runs `f`, which may block, on this thread, as tokio's
/// `task::block_in_place`.
///
/// On a worker of a multi-thread runtime, the tasks queued on this worker
/// (its LIFO slot included) first move to the runtime's injector and an
/// idle worker is woken to take them, and the thread stops being a worker
/// until `f` returns: tasks it wakes meanwhile go to the other workers.
/// Inside `f`, blocking calls such as `Handle::block_on` are allowed.
/// I/O and timers of other tasks go on as whenever a task blocks its
/// worker (README, "No single point of stall"). When this is the
/// runtime's only worker, a stand-in thread runs the other tasks and
/// serves the ring until `f` returns (it looks for newly queued tasks at
/// least every millisecond). With more workers no thread is started: the
/// others take the work, so the runtime has one worker fewer while `f`
/// runs (tokio starts a replacement worker).
///
/// Outside any runtime, or on a thread that is no worker (a multi-thread
/// runtime's `block_on` caller, a blocking-pool thread), `f` simply runs.
///
/// ```
/// # let rt = kevent_runtime::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
/// # rt.block_on(async {
/// let n = kevent_runtime::spawn(async {
///     kevent_runtime::task::block_in_place(|| {
///         std::thread::sleep(std::time::Duration::from_millis(1));
///         42
///     })
/// });
/// assert_eq!(n.await.unwrap(), 42);
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// In a current-thread runtime: its only thread would stop every task.
/// Use [`spawn_blocking`](super::spawn_blocking) there.
#[track_caller]
pub fn block_in_place<F, R>(f: F) -> R
where
    F: FnOnce() -> R,
{
    let current_thread = match worker::current() {
        Some(ctx) => ctx.shared.flavor == Flavor::CurrentThread,
        None => {
            context::is_driving()
                && context::with_current(|h| {
                    h.is_some_and(|h| h.shared.flavor == Flavor::CurrentThread)
                })
        }
    };
    if current_thread {
        panic!(
            "`kevent::task::block_in_place` cannot be called on a current-thread runtime: its \
             only thread runs every task, so they would all stop. Use \
             `kevent::task::spawn_blocking`, or a multi-thread runtime (`#[kevent::main]`, \
             `#[kevent::test(flavor = \"multi_thread\")]`, `Builder::new_multi_thread`)"
        );
    }
    let _lent = worker::lend_for_blocking();
    let _blocking = context::allow_blocking();
    f()
}
