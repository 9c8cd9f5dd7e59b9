//! The work-stealing scheduler on the kevent ring.
//!
//! # Algorithm
//!
//! Each worker owns a bounded local run queue with a LIFO slot
//! (`local_queue`): a task woken by the task running on a worker goes to
//! that worker's LIFO slot and runs next, while its cache is warm; a task
//! that yields goes to the back of the queue. Tasks spawned or woken from
//! outside the workers go to the global injector, and a full local queue
//! moves half of itself there. An idle worker looks in its queue, the
//! injector, the ring, and then steals half of another worker's queue, LIFO
//! slot included: a task woken into the LIFO slot of a worker that then
//! blocks must not wait for that worker (tokio's LIFO slot cannot be stolen,
//! which is how it leaves such a task stalled; see ARCHITECTURE.md,
//! invariant 6).
//!
//! Workers sleep only in the ring's [`wait`](kevent_reactor::Consumer::wait).
//! Everything that must wake a worker arrives as a ring event:
//!
//! * I/O readiness, timer expiry and signals: registrations whose token is
//!   an [`IoToken`](crate::driver::slab::IoToken); the entry carries the
//!   index of the worker that last polled the resource, so that worker is
//!   the one woken (affinity);
//! * "work is waiting" (`NOTIFY`): a user event posted when a task is
//!   pushed while workers sleep and none is searching; posts coalesce, and
//!   each delivery wakes one sleeper (wake-one);
//! * shutdown: a user event flagged `WAKEUP_ALL`.
//!
//! The ring decides who harvests the OS: the last worker to go idle sleeps
//! inside the backend's poll, bounded by the nearest timer; a worker running
//! tasks never holds that role, so no single worker stalls I/O for the
//! others. Busy workers harvest without sleeping when they run out of tasks
//! and every `EVENT_INTERVAL` ticks, so I/O is not starved by a stream of
//! ready tasks; while one runs, idle workers park (watching the timers, the
//! stall check among them) rather than sleep in the kernel only to be woken
//! for events the busy worker takes itself.

pub(crate) mod idle;
pub(crate) mod injector;
pub(crate) mod local_queue;
pub(crate) mod stand_in;
pub(crate) mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::task::Runnable;
use kevent_reactor::{Flags, Kevent, Key, Token};
use parking_lot::Mutex;

use crate::driver::slab::IoSlab;
use crate::task::blocking::BlockingPool;
use crate::task::harness::OwnedTasks;
use idle::Idle;
use injector::Injector;
use local_queue::Steal;

/// Token of the "work is waiting" user event.
pub(crate) const NOTIFY: Token = Token(usize::MAX - 1);
/// Token of the shutdown user event.
pub(crate) const SHUTDOWN: Token = Token(usize::MAX - 2);
/// Token of the stall-check timer.
pub(crate) const STALL: Token = Token(usize::MAX - 3);
/// The most workers for which worker 0 is the ring's home by default.
/// With a home, every receive's completion work and every harvest run on
/// its thread: at 2 workers under full load it ran 95% of the server's
/// CPU (BENCHMARKS.md, stop 22), which costs nothing where the load
/// generator takes the other core, but capped the runtime near one core's
/// worth of I/O where it has both (the net benches' client and server in
/// one runtime: `tcp_echo_64conn` 1.30-1.51x tokio with a home, 0.76-1.00x
/// without; BENCHMARKS.md, stops 23 and 24). So a home that is busy all
/// the time beside a busy worker closes and lets the others submit their
/// own requests (reactor `uring/home.rs`; 0.70-1.03x). Measured at 2
/// workers only; above, off until a run with more cores says otherwise.
const HOME_MAX_WORKERS: usize = 2;

/// Whether worker 0 is the ring's home (see `Shared::new`) in a runtime of
/// `workers`: up to `HOME_MAX_WORKERS` by default; `KEVENT_HOME_WORKER=1`
/// turns it on at any count, `=0` off.
fn home_worker(workers: usize) -> bool {
    match std::env::var("KEVENT_HOME_WORKER").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => workers <= HOME_MAX_WORKERS,
    }
}

/// How often, while any worker is busy, the workers check for one stuck in
/// a single poll with tasks waiting behind it. Each check wakes a sleeping
/// worker, and arming it wakes one sleeping in the kernel to shorten its
/// sleep: at 2 ms that was a measurable share of the CPU per request at
/// light HTTP load on 2 workers (BENCHMARKS.md, stop 19). A stuck worker's
/// tasks still move within two intervals.
pub(crate) const STALL_CHECK: Duration = Duration::from_millis(10);
/// Local queue capacity.
pub(crate) const LOCAL_QUEUE: usize = 256;

/// Which scheduler flavor a runtime runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// N worker threads.
    MultiThread,
    /// The thread in `block_on` is the only worker.
    CurrentThread,
}

/// Counters of one worker, written by it, read by `Handle::metrics`.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    /// Tasks polled (also how the stall check tells a worker stuck in one
    /// poll from a busy one).
    pub(crate) polls: AtomicU64,
    /// Successful steals.
    pub(crate) steals: AtomicU64,
    /// Times it slept in the ring.
    pub(crate) parks: AtomicU64,
    /// Ring events it consumed.
    pub(crate) events: AtomicU64,
    /// `NOTIFY` posts it made (wakeups sent).
    pub(crate) notifies: AtomicU64,
    /// Syscalls its thread made (ring waits, wakes, submissions, socket
    /// reads and writes), published at each park and maintenance tick.
    pub(crate) syscalls: AtomicU64,
    /// Times it woke from sleeping in the ring (one less than `parks`
    /// while it sleeps).
    pub(crate) unparks: AtomicU64,
    /// Nanoseconds it spent awake (between waking and going to sleep).
    pub(crate) busy_nanos: AtomicU64,
}

/// Scheduler settings from the builder, and the park hooks.
#[derive(Clone)]
pub(crate) struct Knobs {
    /// Ticks between non-sleeping harvests of the ring
    /// (`Builder::event_interval`).
    pub(crate) event_interval: u32,
    /// Ticks between looks at the injector before the local queue
    /// (`Builder::global_queue_interval`).
    pub(crate) global_queue_interval: u32,
    /// Runs on a worker thread before it sleeps in the ring.
    pub(crate) on_park: Option<crate::runtime::threads::Hook>,
    /// Runs on a worker thread after it wakes from the ring.
    pub(crate) on_unpark: Option<crate::runtime::threads::Hook>,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            event_interval: 61,
            global_queue_interval: 61,
            on_park: None,
            on_unpark: None,
        }
    }
}

impl std::fmt::Debug for Knobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knobs")
            .field("event_interval", &self.event_interval)
            .field("global_queue_interval", &self.global_queue_interval)
            .finish_non_exhaustive()
    }
}

/// Source of runtime ids (`Handle::id`).
static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(1);

/// What other workers (and everyone else) can see of a worker. Aligned to
/// a cache-line pair: each worker writes its own counters on every poll.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Remote {
    /// Steals from the worker's local queue.
    pub(crate) steal: Steal<Runnable>,
    /// Counters.
    pub(crate) counters: WorkerCounters,
}

/// Adds `n` to a counter only the thread holding the worker's core
/// writes: a load and a store, no read-modify-write (which costs a locked
/// instruction on every task poll). Readers see some recent value.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Everything the workers of one runtime share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The ring.
    pub(crate) kevent: Kevent,
    /// "Work is waiting" (wake-one).
    pub(crate) notify: Key,
    /// Shutdown (`WAKEUP_ALL`).
    pub(crate) shutdown_key: Key,
    /// One per worker.
    pub(crate) remotes: Box<[Remote]>,
    /// Tasks from outside the workers.
    pub(crate) injector: Injector<Runnable>,
    /// Sleep accounting.
    pub(crate) idle: Idle,
    /// Set once shutdown starts: new work is dropped.
    pub(crate) shutdown: AtomicBool,
    /// Every live task.
    pub(crate) owned: OwnedTasks,
    /// Readiness and wakers of I/O resources, timers and signals.
    pub(crate) io: IoSlab,
    /// Threads for `spawn_blocking`.
    pub(crate) blocking: BlockingPool,
    /// The scheduler flavor.
    pub(crate) flavor: Flavor,
    /// Local queues (and ring consumers) not yet taken by a thread.
    pub(crate) cores: Mutex<Vec<worker::Core>>,
    /// Threads in a current-thread runtime's `block_on` that found the
    /// core taken by another: woken when it is put back, to drive.
    pub(crate) core_waiters: Mutex<Vec<std::task::Waker>>,
    /// Worker threads still running.
    pub(crate) running: Mutex<usize>,
    /// Signalled when a worker thread exits.
    pub(crate) exited: parking_lot::Condvar,
    /// Whether the injector-to-worker notify is disabled (one worker).
    pub(crate) single: bool,
    /// NOTIFY posts from outside the workers.
    pub(crate) remote_notifies: AtomicU64,
    /// The stall-check timer (a ring timer, so it fires in whichever
    /// worker sleeps in the ring).
    pub(crate) stall_key: Key,
    /// Whether the stall-check timer is armed.
    pub(crate) stall_armed: AtomicBool,
    /// Each worker's poll count at the previous stall check.
    pub(crate) stall_ticks: Mutex<Vec<u64>>,
    /// Idle timer registrations (ring key, readiness slot) for reuse: a
    /// bounded lock-free queue, as every request of a hyper server takes
    /// one and gives it back. Workers keep their own first
    /// (`worker::take_timer`); this takes their overflow and serves the
    /// threads that are no workers.
    pub(crate) timer_pool: crossbeam_queue::ArrayQueue<(Key, crate::driver::slab::IoToken)>,
    /// The file ring of `kevent::fs` on io_uring, made at first use.
    #[cfg(target_os = "linux")]
    pub(crate) file_ring: std::sync::OnceLock<Option<Arc<crate::fs::ring::FileRing>>>,
    /// The runtime's clock, which a test can pause (`time::pause`).
    pub(crate) clock: crate::time::clock::Clock,
    /// Builder settings the workers read when they start.
    pub(crate) knobs: std::sync::OnceLock<Knobs>,
    /// This runtime's id, unique in the process.
    pub(crate) id: u64,
    /// The stand-in for a lone worker lent to `block_in_place`.
    pub(crate) stand_in: stand_in::State,
}

impl Shared {
    pub(crate) fn new(
        kevent: Kevent,
        workers: usize,
        flavor: Flavor,
        blocking: BlockingPool,
    ) -> std::io::Result<Arc<Shared>> {
        let notify = kevent.add_user(NOTIFY, Flags::NONE)?;
        let shutdown_key = kevent.add_user(SHUTDOWN, Flags::WAKEUP_ALL)?;
        // Far in the future until a worker gets busy (see `arm_stall_check`).
        let stall_key = kevent.add_timer(
            STALL,
            std::time::Instant::now() + Duration::from_secs(86400 * 365),
            Flags::NONE,
        )?;
        let mut remotes = Vec::with_capacity(workers);
        let mut locals = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (local, steal) = local_queue::local(LOCAL_QUEUE);
            remotes.push(Remote {
                steal,
                counters: WorkerCounters::default(),
            });
            locals.push(local);
        }
        let mut cores = Vec::with_capacity(workers);
        for (index, local) in locals.into_iter().enumerate() {
            let mut consumer = kevent.consumer_for(index)?;
            // Workers harvest between tasks (`Worker::run_once`), and the
            // stall check bounds how long a worker stuck in one poll keeps
            // the others from seeing I/O.
            consumer.set_harvests_while_busy(true);
            // Worker 0 is the ring's home at small worker counts: on
            // io_uring the only thread that submits to it and sleeps in it
            // (`Consumer::set_home`; ARCHITECTURE.md, "One home for the
            // ring's requests"; `home_worker`).
            if index == 0 && workers > 1 && home_worker(workers) {
                consumer.set_home(true);
            }
            cores.push(worker::Core::new(index, local, consumer));
        }
        let shared = Arc::new(Shared {
            kevent,
            notify,
            shutdown_key,
            remotes: remotes.into_boxed_slice(),
            injector: Injector::new(),
            idle: Idle::default(),
            shutdown: AtomicBool::new(false),
            owned: OwnedTasks::new(),
            io: IoSlab::new(),
            blocking,
            flavor,
            cores: Mutex::new(cores),
            core_waiters: Mutex::new(Vec::new()),
            running: Mutex::new(0),
            exited: parking_lot::Condvar::new(),
            single: workers == 1,
            remote_notifies: AtomicU64::new(0),
            stall_key,
            stall_armed: AtomicBool::new(false),
            stall_ticks: Mutex::new(vec![u64::MAX; workers]),
            timer_pool: crossbeam_queue::ArrayQueue::new(crate::driver::TIMER_POOL),
            #[cfg(target_os = "linux")]
            file_ring: std::sync::OnceLock::new(),
            clock: crate::time::clock::Clock::new(),
            knobs: std::sync::OnceLock::new(),
            id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
            stand_in: stand_in::State::default(),
        });
        shared.blocking.set_runtime(Arc::downgrade(&shared));
        Ok(shared)
    }

    /// The builder's settings (defaults if none were given).
    pub(crate) fn knobs(&self) -> &Knobs {
        self.knobs.get_or_init(Knobs::default)
    }

    /// Schedules a woken task: onto the current worker's queue when called
    /// on one of our workers, else into the injector.
    pub(crate) fn schedule(self: &Arc<Self>, task: Runnable, yielded: bool) {
        if self.shutdown.load(Ordering::Acquire) {
            drop_task(task);
            return;
        }
        if let Err(task) = worker::schedule_local(self, task, yielded) {
            self.injector.push(task);
            self.remote_notifies.fetch_add(1, Ordering::Relaxed);
            self.notify_one(false);
            if self.shutdown.load(Ordering::Acquire) {
                // Shutdown raced with the push; make sure the task is dropped.
                for t in self.injector.drain() {
                    drop_task(t);
                }
            }
        }
    }

    /// Wakes a sleeping sibling to steal worker `from`'s queued tasks (a
    /// plain [`notify_one`](Shared::notify_one)), counted in `from`'s
    /// wakeups sent. Called on worker `from`'s own thread, the counter's
    /// one writer.
    pub(crate) fn notify_sibling(&self, from: usize) {
        if !self.single && self.notify_one(false) {
            bump(&self.remotes[from].counters.notifies, 1);
        }
    }

    /// Posts NOTIFY when a worker sleeps and none is looking for work. With
    /// `always`, whenever any worker sleeps, even while one searches or a
    /// NOTIFY is pending (see [`Idle::want_notify`]).
    pub(crate) fn notify_one(&self, always: bool) -> bool {
        if !self.idle.want_notify(always) {
            return false;
        }
        if self.kevent.post(self.notify, 0).is_err() {
            self.idle.post_failed();
            return false;
        }
        true
    }

    /// Arms the stall-check timer if it is not armed and some worker sleeps
    /// (only a sleeping worker can take over a stuck one's tasks).
    pub(crate) fn arm_stall_check(&self) {
        if self.stall_armed.load(Ordering::Relaxed)
            || self.idle.sleeping() == 0
            || self
                .stall_armed
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let _ = self
            .kevent
            .reset_timer(self.stall_key, std::time::Instant::now() + STALL_CHECK);
    }

    /// Times each worker's ring consumer was woken.
    pub(crate) fn woken_counts(&self) -> Vec<u64> {
        (0..self.remotes.len())
            .map(|i| self.kevent.consumer_wakeups(i))
            .collect()
    }

    /// Starts shutdown: no task runs any more; every worker wakes and exits.
    pub(crate) fn begin_shutdown(&self) {
        if self.shutdown.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.kevent.post(self.shutdown_key, 0);
    }

    /// After the workers stopped: drop every task still queued or parked
    /// behind a waker, each future exactly once.
    pub(crate) fn drop_all_tasks(&self) {
        for t in self.injector.drain() {
            drop_task(t);
        }
        for core in self.cores.lock().iter_mut() {
            core.drain();
        }
        self.owned.close_and_wake_all();
        self.io.wake_all();
        for t in self.injector.drain() {
            drop_task(t);
        }
        self.blocking.shutdown();
        // The file ring's registration holds the runtime: let it go.
        #[cfg(target_os = "linux")]
        if let Some(Some(ring)) = self.file_ring.get() {
            ring.release_watch();
        }
    }

    /// Waits up to `timeout` for worker threads to exit; false if some are
    /// still running (blocked in a task).
    pub(crate) fn wait_workers(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut running = self.running.lock();
        while *running > 0 {
            match deadline {
                Some(d) => {
                    if self.exited.wait_until(&mut running, d).timed_out() {
                        return *running == 0;
                    }
                }
                None => self.exited.wait(&mut running),
            }
        }
        true
    }
}

std::thread_local! {
    /// Task futures being dropped on this thread, nested.
    static DROP_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Tasks whose drop waits until the outermost of those is done.
    static DEFERRED: std::cell::RefCell<Vec<Runnable>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f`, which drops a task's future, so that tasks it wakes during
/// shutdown are dropped after it returns, not inside it. A future's `Drop`
/// may hold a lock while waking another task (h2's connection does); if
/// that wake dropped the other future on the spot and that future's `Drop`
/// takes the same lock, the thread would deadlock on itself.
pub(crate) fn in_drop_scope<R>(f: impl FnOnce() -> R) -> R {
    let depth = DROP_DEPTH.get();
    DROP_DEPTH.set(depth + 1);
    let r = f();
    if depth == 0 {
        // Outermost: drop what was deferred, each in the scope in turn.
        while let Some(task) = DEFERRED.with_borrow_mut(Vec::pop) {
            drop_one(task);
        }
    }
    DROP_DEPTH.set(depth);
    r
}

/// Drops a task that will never run, catching a panic from its future's
/// destructor (the harness already does; this is belt and braces for the
/// scheduler's own state). Inside another task's drop on this thread, the
/// drop is deferred until that one is done (see [`in_drop_scope`]).
pub(crate) fn drop_task(task: Runnable) {
    if DROP_DEPTH.get() > 0 {
        DEFERRED.with_borrow_mut(|d| d.push(task));
    } else {
        in_drop_scope(|| drop_one(task));
    }
}

fn drop_one(task: Runnable) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(task)));
}
