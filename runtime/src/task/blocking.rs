//! The blocking pool: `spawn_blocking` runs closures on threads that may
//! block, so workers never do. Threads are started on demand up to a cap and
//! exit after a keep-alive period without work.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Jobs waiting and the threads' bookkeeping.
#[derive(Debug, Default)]
struct State {
    /// Queued jobs.
    queue: VecDeque<crate::task::Runnable>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// Idle threads signalled and not yet awake: they are spoken for.
    notified: usize,
    /// Set at shutdown: threads exit when the queue is empty.
    shutdown: bool,
}

/// A pool of threads for blocking work.
#[derive(Debug)]
pub(crate) struct BlockingPool {
    /// The shared state.
    inner: Arc<Inner>,
}

/// Pool internals shared with its threads.
#[derive(Debug)]
struct Inner {
    /// Jobs and counters.
    state: Mutex<State>,
    /// Signals idle threads.
    cv: Condvar,
    /// Most threads at once.
    max: usize,
    /// How long an idle thread waits before exiting.
    keep_alive: Duration,
    /// Thread name prefix.
    name: String,
    /// Name function, stack size and hooks from the builder.
    threads: crate::runtime::threads::ThreadConfig,
    /// The runtime the pool belongs to, entered by each pool thread so that
    /// `Handle::current()` and `kevent::spawn` work in blocking closures.
    runtime: std::sync::OnceLock<std::sync::Weak<crate::scheduler::Shared>>,
}

impl BlockingPool {
    pub(crate) fn new(
        max: usize,
        keep_alive: Duration,
        name: String,
        threads: crate::runtime::threads::ThreadConfig,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                cv: Condvar::new(),
                max: max.max(1),
                keep_alive,
                name,
                threads,
                runtime: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Queues a job, starting a thread if none is idle and the cap allows.
    pub(crate) fn schedule(&self, job: crate::task::Runnable) {
        let mut state = self.inner.state.lock();
        if state.shutdown {
            drop(state);
            drop(job);
            return;
        }
        state.queue.push_back(job);
        if state.idle > state.notified {
            state.notified += 1;
            self.inner.cv.notify_one();
        } else if state.threads < self.inner.max {
            state.threads += 1;
            let inner = self.inner.clone();
            let spawned = self
                .inner
                .threads
                .spawn(format!("{}-blocking", self.inner.name), move || inner.run());
            if spawned.is_err() {
                // The job stays queued for an existing thread, if any.
                state.threads -= 1;
            }
        }
    }

    /// Ties the pool to its runtime (set once, right after the runtime's
    /// shared state exists).
    pub(crate) fn set_runtime(&self, shared: std::sync::Weak<crate::scheduler::Shared>) {
        let _ = self.inner.runtime.set(shared);
    }

    /// Threads alive now.
    pub(crate) fn threads(&self) -> usize {
        self.inner.state.lock().threads
    }

    /// Whether a job is queued or running.
    pub(crate) fn busy(&self) -> bool {
        let state = self.inner.state.lock();
        !state.queue.is_empty() || state.threads > state.idle
    }

    /// Lets threads finish queued jobs and exit.
    pub(crate) fn shutdown(&self) {
        let mut state = self.inner.state.lock();
        state.shutdown = true;
        self.inner.cv.notify_all();
    }
}

impl Inner {
    fn run(&self) {
        let handle = self
            .runtime
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map(|shared| crate::runtime::Handle { shared });
        let _enter = handle.map(crate::runtime::context::enter);
        let mut state = self.state.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job.run();
                state = self.state.lock();
                continue;
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            let timed_out = self.cv.wait_for(&mut state, self.keep_alive).timed_out();
            state.idle -= 1;
            state.notified = state.notified.saturating_sub(1);
            if timed_out && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.threads -= 1;
    }
}
