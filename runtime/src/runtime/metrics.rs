//! Runtime metrics: per worker, what it did.

use std::sync::atomic::Ordering;

use crate::scheduler::Shared;

/// One worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Tasks polled.
    pub polls: u64,
    /// Successful steals from other workers.
    pub steals: u64,
    /// Times the worker slept in the ring.
    pub parks: u64,
    /// Ring entries it consumed.
    pub ring_events: u64,
    /// Wakeups it sent to sleeping workers (NOTIFY posts).
    pub wakeups_sent: u64,
    /// Times another thread woke it from the ring.
    pub woken: u64,
    /// Syscalls its thread made: ring waits and wakes (`epoll_wait` or
    /// `io_uring_enter`, eventfd), submissions, socket reads and writes.
    /// Updated when the worker parks or every 61 ticks.
    pub syscalls: u64,
    /// Times it woke from sleeping in the ring.
    pub unparks: u64,
    /// Time it spent awake, up to its last sleep in the ring.
    pub busy: std::time::Duration,
}

/// A snapshot of the runtime's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeMetrics {
    /// Per worker, by index.
    pub workers: Vec<WorkerMetrics>,
    /// Tasks alive (spawned, not finished).
    pub alive_tasks: usize,
    /// Tasks waiting in the global injector.
    pub injected_tasks: usize,
    /// Wakeups sent from outside the workers.
    pub remote_wakeups: u64,
    /// Blocking-pool threads alive.
    pub blocking_threads: usize,
    /// The ring's backend ("mio (epoll)", ...).
    pub backend: &'static str,
    /// Syscalls the ring's backend made to wait and wake.
    pub backend_syscalls: u64,
    /// Ring entries published.
    pub ring_published: u64,
    /// Ring entries that found the ring full and waited in overflow.
    pub ring_overflowed: u64,
    /// Timer arms that took the ring's timer lock. A timer taken from the
    /// runtime's pool and armed no earlier than the wheel entry it left
    /// there (hyper's per-request timeout) takes none.
    pub ring_timer_filings: u64,
    /// Times the ring's home worker (io_uring, default at 2 workers) was
    /// busy all the time beside a busy worker and left the others to submit
    /// their own requests (README, "Guarantees, and the tests that prove them").
    pub ring_home_closings: u64,
}

impl RuntimeMetrics {
    /// Number of workers.
    pub fn num_workers(&self) -> usize {
        self.workers.len()
    }

    /// Tasks alive (tokio's name for [`alive_tasks`](Self::alive_tasks)).
    pub fn num_alive_tasks(&self) -> usize {
        self.alive_tasks
    }

    /// Tasks waiting in the global injector (tokio's name for
    /// [`injected_tasks`](Self::injected_tasks)).
    pub fn global_queue_depth(&self) -> usize {
        self.injected_tasks
    }

    /// Times worker `worker` slept in the ring.
    ///
    /// # Panics
    ///
    /// If there is no such worker.
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        self.workers[worker].parks
    }

    /// Times worker `worker` went to sleep plus times it woke: even while
    /// it is awake, odd while it sleeps (tokio's meaning).
    ///
    /// # Panics
    ///
    /// If there is no such worker.
    pub fn worker_park_unpark_count(&self, worker: usize) -> u64 {
        let w = &self.workers[worker];
        w.parks + w.unparks.min(w.parks)
    }

    /// Time worker `worker` spent awake (running tasks and harvesting the
    /// ring), counted up to its last sleep.
    ///
    /// # Panics
    ///
    /// If there is no such worker.
    pub fn worker_total_busy_duration(&self, worker: usize) -> std::time::Duration {
        self.workers[worker].busy
    }

    /// Sum of all workers' polls.
    pub fn total_polls(&self) -> u64 {
        self.workers.iter().map(|w| w.polls).sum()
    }
}

pub(crate) fn snapshot(shared: &Shared) -> RuntimeMetrics {
    let ring = shared.kevent.stats();
    let woken = shared.woken_counts();
    RuntimeMetrics {
        workers: shared
            .remotes
            .iter()
            .enumerate()
            .map(|(i, r)| WorkerMetrics {
                polls: r.counters.polls.load(Ordering::Relaxed),
                steals: r.counters.steals.load(Ordering::Relaxed),
                parks: r.counters.parks.load(Ordering::Relaxed),
                ring_events: r.counters.events.load(Ordering::Relaxed),
                wakeups_sent: r.counters.notifies.load(Ordering::Relaxed),
                woken: woken.get(i).copied().unwrap_or(0),
                syscalls: r.counters.syscalls.load(Ordering::Relaxed),
                unparks: r.counters.unparks.load(Ordering::Relaxed),
                busy: std::time::Duration::from_nanos(
                    r.counters.busy_nanos.load(Ordering::Relaxed),
                ),
            })
            .collect(),
        alive_tasks: shared.owned.len(),
        injected_tasks: shared.injector.len(),
        remote_wakeups: shared.remote_notifies.load(Ordering::Relaxed),
        blocking_threads: shared.blocking.threads(),
        backend: shared.kevent.backend_name(),
        backend_syscalls: ring.backend_syscalls,
        ring_published: ring.published,
        ring_overflowed: ring.overflowed,
        ring_timer_filings: ring.timer_filings,
        ring_home_closings: ring.home_closings,
    }
}
