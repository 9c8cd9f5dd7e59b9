//! The runtime: `Builder`, `Runtime`, `Handle`, and metrics.

mod builder;
pub(crate) mod context;
mod metrics;
pub(crate) mod threads;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle as ThreadHandle, Thread};
use std::time::Duration;

pub use builder::Builder;
pub use context::EnterGuard;
pub use metrics::{RuntimeMetrics, WorkerMetrics};

use crate::scheduler::worker::Worker;
use crate::scheduler::{Flavor, Shared};
use crate::task::JoinHandle;

/// Which backend feeds the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when the kernel offers it, else mio (today: mio).
    #[default]
    Auto,
    /// io_uring (Linux).
    Uring,
    /// mio: epoll or kqueue.
    Mio,
}

impl From<Backend> for kevent_reactor::Backend {
    fn from(b: Backend) -> kevent_reactor::Backend {
        match b {
            Backend::Auto => kevent_reactor::Backend::Auto,
            Backend::Uring => kevent_reactor::Backend::Uring,
            Backend::Mio => kevent_reactor::Backend::Mio,
        }
    }
}

/// A handle to a runtime: spawn onto it, enter it, read its metrics.
/// Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    /// The scheduler and reactor.
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("flavor", &self.shared.flavor)
            .field("workers", &self.shared.remotes.len())
            .finish()
    }
}

/// There is no runtime on this thread.
#[derive(Debug)]
pub struct TryCurrentError(());

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no kevent runtime is running on this thread")
    }
}

impl std::error::Error for TryCurrentError {}

impl Handle {
    /// The handle of the runtime this thread is in.
    ///
    /// # Panics
    ///
    /// Outside a runtime; use [`Handle::try_current`] to check.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(h) => h,
            Err(_) => panic!(
                "there is no kevent runtime on this thread: `Handle::current()` must be called \
                 from inside `#[kevent::main]`, `Runtime::block_on`, a task, or after \
                 `Runtime::enter`"
            ),
        }
    }

    /// The current runtime's handle, or an error outside one.
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        context::current().ok_or(TryCurrentError(()))
    }

    /// Spawns a task onto this runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::task::spawn_on(&self.shared, future)
    }

    /// Runs a blocking closure on this runtime's blocking pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        crate::task::spawn_blocking_on(&self.shared, f)
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.clone())
    }

    /// Runs a future to completion on this thread.
    ///
    /// # Panics
    ///
    /// When called from a thread that is already driving async code (nested
    /// `block_on`): use `.await` instead.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _driving = context::driving();
        let _enter = self.enter();
        if self.shared.flavor == Flavor::CurrentThread {
            return self.block_on_current_thread(future);
        }
        park_on(future)
    }

    /// `block_on` on a current-thread runtime. Whoever holds the core
    /// drives the runtime: its tasks, timers and I/O. A thread that finds
    /// the core taken polls its own future when woken and waits for its
    /// own wakeups (the driving thread dispatches them), and takes the core
    /// over as soon as it is put back, so that nobody waits on a runtime
    /// that nobody drives.
    fn block_on_current_thread<F: Future>(&self, future: F) -> F::Output {
        /// Puts the core back even if the future panics, and wakes the
        /// threads waiting for it.
        struct Restore(Option<Worker>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(w) = self.0.take() {
                    let shared = w.shared().clone();
                    let core = w.leave();
                    shared.cores.lock().push(core);
                    let waiters = std::mem::take(&mut *shared.core_waiters.lock());
                    for w in waiters {
                        w.wake();
                    }
                }
            }
        }
        let tw = Arc::new(ThreadWaker {
            thread: std::thread::current(),
            notified: AtomicBool::new(true),
        });
        let waker = Waker::from(tw.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            let core = {
                let mut cores = self.shared.cores.lock();
                let core = cores.pop();
                if core.is_none() {
                    // Registered under the cores lock: the driver puts the
                    // core back under it too, then wakes us.
                    let mut waiters = self.shared.core_waiters.lock();
                    if !waiters.iter().any(|w| w.will_wake(&waker)) {
                        waiters.push(waker.clone());
                    }
                }
                core
            };
            if let Some(core) = core {
                let mut guard = Restore(Some(Worker::enter(self.shared.clone(), core)));
                let worker = guard.0.as_mut().expect("worker just entered");
                return worker.block_on(future.as_mut());
            }
            if tw.notified.swap(false, Ordering::Acquire) {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    // Done without the core: no need to hear when it is free.
                    self.shared
                        .core_waiters
                        .lock()
                        .retain(|w| !w.will_wake(&waker));
                    return out;
                }
            }
            while !tw.notified.load(Ordering::Acquire) {
                std::thread::park();
            }
        }
    }

    /// A snapshot of the runtime's metrics.
    pub fn metrics(&self) -> RuntimeMetrics {
        metrics::snapshot(&self.shared)
    }

    /// This runtime's id, unique among the runtimes of the process.
    pub fn id(&self) -> Id {
        Id(self.shared.id)
    }
}

/// A runtime's id (`Handle::id`), unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The error an I/O resource returns once its runtime has shut down.
#[derive(Debug)]
struct ShutDown;

impl fmt::Display for ShutDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the kevent runtime this I/O resource belongs to has shut down: keep the \
             `Runtime` alive while its sockets are used",
        )
    }
}

impl std::error::Error for ShutDown {}

/// The error of I/O on a resource whose runtime has shut down.
pub(crate) fn shut_down_error() -> std::io::Error {
    std::io::Error::other(ShutDown)
}

/// Whether `err` says that the resource's runtime has shut down (I/O on a
/// socket whose runtime was dropped), as tokio's `is_rt_shutdown_err`.
pub fn is_rt_shutdown_err(err: &std::io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<ShutDown>())
}

/// Wakes a thread parked in [`park_on`].
struct ThreadWaker {
    /// The thread to unpark.
    thread: Thread,
    /// Set by wake, cleared by the parked thread.
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Polls `future` on this thread, parking between polls.
fn park_on<F: Future>(future: F) -> F::Output {
    let tw = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        while !tw.notified.swap(false, Ordering::Acquire) {
            std::thread::park();
        }
    }
}

/// A kevent runtime: worker threads (or the calling thread), the ring,
/// timers and the blocking pool.
///
/// ```
/// let rt = kevent_runtime::runtime::Runtime::new()?;
/// let answer = rt.block_on(async {
///     kevent_runtime::spawn(async { 6 * 7 }).await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Runtime {
    /// The runtime's handle.
    handle: Handle,
    /// Worker threads (multi-thread flavor).
    threads: Vec<ThreadHandle<()>>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Runtime {
    /// A snapshot of the runtime's metrics (as `Handle::metrics`).
    pub fn metrics(&self) -> RuntimeMetrics {
        self.handle.metrics()
    }

    fn from_parts(handle: Handle, threads: Vec<ThreadHandle<()>>) -> Runtime {
        Runtime { handle, threads }
    }

    /// A multi-thread runtime with default settings (tokio's
    /// `Runtime::new`).
    pub fn new() -> std::io::Result<Runtime> {
        Builder::new_multi_thread().enable_all().build()
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task onto the runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the runtime's blocking pool.
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Runs a future to completion on this thread; with the current-thread
    /// flavor, this thread also runs the spawned tasks meanwhile.
    ///
    /// # Panics
    ///
    /// When nested inside another `block_on` or called from a task.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Makes this runtime current on this thread until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        self.handle.enter()
    }

    /// Shuts down, waiting at most `timeout` for workers to finish the
    /// polls they are in. Every task's future is dropped.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(timeout));
    }

    /// Shuts down without waiting for workers stuck in a poll.
    pub fn shutdown_background(mut self) {
        self.shutdown(Some(Duration::ZERO));
    }

    fn shutdown(&mut self, timeout: Option<Duration>) {
        let shared = &self.handle.shared;
        shared.begin_shutdown();
        let all_exited = shared.wait_workers(timeout);
        if all_exited {
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        } else {
            self.threads.clear();
        }
        shared.drop_all_tasks();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.handle.shared.shutdown.load(Ordering::Acquire) && self.threads.is_empty() {
            return;
        }
        if context::is_driving() {
            panic!(
                "Cannot drop a runtime in a context where blocking is not allowed: a kevent \
                 `Runtime` was dropped inside asynchronous code (a task or `block_on`). Move it \
                 out of the async context, or use `Runtime::shutdown_background` there."
            );
        }
        self.shutdown(None);
    }
}

impl Worker {
    /// The runtime this worker belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.shared_ref()
    }
}
