//! `Builder`: configures and builds a [`Runtime`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use kevent_reactor::{Config, Kevent};

use super::threads::ThreadConfig;
use super::{Backend, Handle, Runtime};
use crate::scheduler::{Flavor, Shared};
use crate::task::blocking::BlockingPool;

/// Builds a runtime with custom settings (tokio's `runtime::Builder`).
///
/// ```
/// let rt = kevent_runtime::runtime::Builder::new_multi_thread()
///     .worker_threads(2)
///     .enable_all()
///     .build()?;
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    /// Which scheduler.
    flavor: Flavor,
    /// Worker count; `None`: `KEVENT_WORKERS` or the available cores.
    workers: Option<usize>,
    /// Thread name prefix.
    thread_name: String,
    /// Ring backend; `None`: `KEVENT_BACKEND` or auto.
    backend: Option<Backend>,
    /// Blocking-pool cap.
    max_blocking: usize,
    /// Idle time before a blocking thread exits.
    keep_alive: Duration,
    /// Ring slots.
    ring_capacity: usize,
    /// Names, stack size and hooks of every thread the runtime starts.
    threads: ThreadConfig,
    /// Receive through the ring; `None`: `KEVENT_RECV` or yes.
    recv_through_ring: Option<bool>,
    /// Send through the ring; `None`: `KEVENT_SEND` or yes.
    send_through_ring: Option<bool>,
    /// Start with the clock paused (current-thread only).
    start_paused: bool,
    /// Scheduler intervals and park hooks.
    knobs: crate::scheduler::Knobs,
}

impl Builder {
    fn new(flavor: Flavor) -> Builder {
        Builder {
            flavor,
            workers: None,
            thread_name: "kevent-worker".to_string(),
            backend: None,
            max_blocking: 512,
            keep_alive: Duration::from_secs(10),
            ring_capacity: 4096,
            threads: ThreadConfig::default(),
            recv_through_ring: None,
            send_through_ring: None,
            start_paused: false,
            knobs: crate::scheduler::Knobs::default(),
        }
    }

    /// A runtime with one worker thread per core (or `KEVENT_WORKERS`).
    pub fn new_multi_thread() -> Builder {
        Builder::new(Flavor::MultiThread)
    }

    /// A runtime whose only worker is the thread calling `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder::new(Flavor::CurrentThread)
    }

    /// Sets the number of worker threads (multi-thread flavor).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "worker_threads must be greater than 0");
        self.workers = Some(n);
        self
    }

    /// Sets the worker threads' name prefix.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Names every thread the runtime starts (workers and blocking
    /// threads) with what `f` returns, called once per thread; overrides
    /// [`thread_name`](Builder::thread_name).
    pub fn thread_name_fn<F>(&mut self, f: F) -> &mut Builder
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        self.threads.name_fn = Some(Arc::new(f));
        self
    }

    /// Sets the stack size of every thread the runtime starts (workers
    /// and blocking threads).
    pub fn thread_stack_size(&mut self, size: usize) -> &mut Builder {
        self.threads.stack_size = Some(size);
        self
    }

    /// Runs `f` first on every thread the runtime starts (workers and
    /// blocking threads), before it runs any task.
    pub fn on_thread_start<F>(&mut self, f: F) -> &mut Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.threads.on_start = Some(Arc::new(f));
        self
    }

    /// Runs `f` last on every thread the runtime started, as it stops
    /// (a worker at shutdown, a blocking thread when idle too long or at
    /// shutdown).
    pub fn on_thread_stop<F>(&mut self, f: F) -> &mut Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.threads.on_stop = Some(Arc::new(f));
        self
    }

    /// Runs `f` on a worker thread each time it is about to sleep in the
    /// ring for lack of work (in a current-thread runtime: the thread in
    /// `block_on`).
    pub fn on_thread_park<F>(&mut self, f: F) -> &mut Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.knobs.on_park = Some(Arc::new(f));
        self
    }

    /// Runs `f` on a worker thread each time it wakes from sleeping in the
    /// ring.
    pub fn on_thread_unpark<F>(&mut self, f: F) -> &mut Builder
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.knobs.on_unpark = Some(Arc::new(f));
        self
    }

    /// Every `ticks` tasks, a worker takes work from the global injector
    /// (tasks spawned or woken outside the workers) before its own queue,
    /// so remote work is not starved by a busy local queue. Default 61.
    ///
    /// # Panics
    ///
    /// If `ticks` is 0.
    #[track_caller]
    pub fn global_queue_interval(&mut self, ticks: u32) -> &mut Builder {
        assert!(ticks > 0, "global_queue_interval must be greater than 0");
        self.knobs.global_queue_interval = ticks;
        self
    }

    /// Every `ticks` tasks, a busy worker harvests the ring without
    /// sleeping (asks the backend what is ready and dispatches the I/O,
    /// timer and signal events), so I/O is not starved by a stream of ready
    /// tasks. A worker with nothing to run harvests at once, whatever this
    /// is. Default 61.
    ///
    /// # Panics
    ///
    /// If `ticks` is 0.
    #[track_caller]
    pub fn event_interval(&mut self, ticks: u32) -> &mut Builder {
        assert!(ticks > 0, "event_interval must be greater than 0");
        self.knobs.event_interval = ticks;
        self
    }

    /// Accepted so tokio code compiles unchanged: I/O, time and signals are
    /// always enabled in kevent.
    pub fn enable_all(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility; I/O is always enabled.
    pub fn enable_io(&mut self) -> &mut Builder {
        self
    }

    /// Accepted for tokio compatibility; timers are always enabled.
    pub fn enable_time(&mut self) -> &mut Builder {
        self
    }

    /// Starts the runtime with its clock paused, as if the first thing
    /// its `block_on` did was [`time::pause`](crate::time::pause): timers
    /// fire as soon as every task waits, without real time passing.
    /// Current-thread runtimes only (`build` fails otherwise).
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }

    /// Caps the blocking pool's threads.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "max_blocking_threads must be greater than 0");
        self.max_blocking = n;
        self
    }

    /// How long an idle blocking thread waits for work before exiting.
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Builder {
        self.keep_alive = d;
        self
    }

    /// Chooses the ring's backend (`KEVENT_BACKEND=auto|uring|mio`
    /// overrides the default, not an explicit choice).
    pub fn backend(&mut self, backend: Backend) -> &mut Builder {
        self.backend = Some(backend);
        self
    }

    /// Sets the ring's capacity (a power of two; readiness never overflows
    /// it, it only coalesces).
    pub fn ring_capacity(&mut self, slots: usize) -> &mut Builder {
        self.ring_capacity = slots;
        self
    }

    fn worker_count(&self) -> io::Result<usize> {
        if self.flavor == Flavor::CurrentThread {
            return Ok(1);
        }
        if let Some(n) = self.workers {
            return Ok(n);
        }
        if let Ok(v) = std::env::var("KEVENT_WORKERS") {
            return match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("KEVENT_WORKERS must be a positive integer, not {v:?}"),
                )),
            };
        }
        Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Whether TCP streams receive through the ring where the
    /// backend can (io_uring: the kernel receives into a shared buffer pool
    /// as data arrives and a read costs no syscall). Default yes, or
    /// `KEVENT_RECV=ring|readiness`. With `false`, or on mio, streams read
    /// with `recv(2)` when readiness says so.
    ///
    /// Once a stream has been read through the ring, raw reads of its
    /// socket (`try_io`/`async_io` with `Interest::READABLE`, `into_std`)
    /// fail with an error while received bytes are still waiting in it,
    /// rather than lose or reorder them.
    pub fn recv_through_ring(&mut self, on: bool) -> &mut Self {
        self.recv_through_ring = Some(on);
        self
    }

    /// Whether TCP and Unix streams send through the ring where the
    /// backend can (io_uring, write-behind: a write queues its bytes in
    /// the stream's outbox and returns; the worker's next `io_uring_enter`
    /// sends them, with every other send queued meanwhile, so answering
    /// many connections costs one syscall). Default yes, or
    /// `KEVENT_SEND=ring|readiness`. With `false`, or on mio, streams write
    /// with `send(2)` when readiness says so.
    ///
    /// Multi-thread runtimes only: a current-thread runtime drives the
    /// ring only inside `block_on`, so its streams always write their
    /// sockets directly.
    ///
    /// `flush` waits until the ring has sent the bytes; shutting down the
    /// write side (or dropping the stream) sends them first. A send that
    /// fails is reported by the next write or flush. While bytes are still
    /// queued, raw writes of the socket (`try_io`/`async_io` with
    /// `Interest::WRITABLE`, `into_std`) fail with an error rather than
    /// reorder them: flush first.
    pub fn send_through_ring(&mut self, on: bool) -> &mut Self {
        self.send_through_ring = Some(on);
        self
    }

    /// Whether a data path goes through the ring: the builder's `setting`,
    /// else the environment variable `var` (`ring`, the default, or
    /// `readiness`).
    fn ring_choice(setting: Option<bool>, var: &str) -> io::Result<bool> {
        if let Some(on) = setting {
            return Ok(on);
        }
        match std::env::var(var).as_deref() {
            Err(_) | Ok("") | Ok("ring") => Ok(true),
            Ok("readiness") => Ok(false),
            Ok(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{var} must be ring or readiness, not {other:?}"),
            )),
        }
    }

    fn backend_choice(&self) -> io::Result<Backend> {
        if let Some(b) = self.backend {
            return Ok(b);
        }
        match std::env::var("KEVENT_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Backend::Auto),
            Ok("mio") => Ok(Backend::Mio),
            Ok("uring") => Ok(Backend::Uring),
            Ok(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("KEVENT_BACKEND must be auto, uring or mio, not {other:?}"),
            )),
        }
    }

    /// Builds the runtime and, for the multi-thread flavor, starts its
    /// workers.
    pub fn build(&mut self) -> io::Result<Runtime> {
        if self.start_paused && self.flavor != Flavor::CurrentThread {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "start_paused(true) needs a current-thread runtime: a multi-thread runtime's \
                 clock cannot be paused (use Builder::new_current_thread)",
            ));
        }
        let workers = self.worker_count()?;
        let backend = self.backend_choice()?;
        let kevent = Kevent::new(
            Config::default()
                .capacity(self.ring_capacity)
                // One worker: a slot more for the stand-in that runs its
                // tasks while it is lent to `block_in_place`.
                .max_consumers(if self.flavor == Flavor::MultiThread && workers == 1 {
                    2
                } else {
                    workers
                })
                .backend(backend.into())
                .recv_through_ring(Self::ring_choice(self.recv_through_ring, "KEVENT_RECV")?)
                // A current-thread runtime drives the ring only inside
                // `block_on`: bytes queued when it returns would wait for
                // the next call. Its streams write their sockets directly.
                .send_through_ring(
                    Self::ring_choice(self.send_through_ring, "KEVENT_SEND")?
                        && self.flavor == Flavor::MultiThread,
                ),
        )?;
        let blocking = BlockingPool::new(
            self.max_blocking,
            self.keep_alive,
            self.thread_name.clone(),
            self.threads.clone(),
        );
        let shared = Shared::new(kevent, workers, self.flavor, blocking)?;
        if self.start_paused {
            crate::time::clock::start_paused(&shared.clock);
        }
        // Before any worker starts: each reads them as it enters.
        let _ = shared.knobs.set(self.knobs.clone());
        let handle = Handle { shared };
        let mut threads = Vec::new();
        if self.flavor == Flavor::MultiThread {
            let cores = std::mem::take(&mut *handle.shared.cores.lock());
            *handle.shared.running.lock() = cores.len();
            for core in cores {
                let shared = handle.shared.clone();
                let handle2 = handle.clone();
                let name = format!("{}-{}", self.thread_name, core_index(&core));
                let spawned = self
                    .threads
                    .spawn(name, move || worker_main(handle2, shared, core));
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        *handle.shared.running.lock() -= 1;
                        handle.shared.begin_shutdown();
                        return Err(e);
                    }
                }
            }
        }
        Ok(Runtime::from_parts(handle, threads))
    }
}

fn core_index(core: &crate::scheduler::worker::Core) -> usize {
    core.index()
}

fn worker_main(handle: Handle, shared: Arc<Shared>, core: crate::scheduler::worker::Core) {
    /// Counts the worker out even if it unwinds.
    struct Exit(Arc<Shared>);
    impl Drop for Exit {
        fn drop(&mut self) {
            *self.0.running.lock() -= 1;
            self.0.exited.notify_all();
        }
    }
    let _exit = Exit(shared.clone());
    let _enter = super::context::enter(handle);
    let _driving = super::context::driving();
    let mut worker = crate::scheduler::worker::Worker::enter(shared.clone(), core);
    worker.run();
    let core = worker.leave();
    shared.cores.lock().push(core);
}
