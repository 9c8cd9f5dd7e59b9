//! Runtime faults not covered by `rt_*.rs`:
//!
//! * timers and I/O on a worker with more always-runnable tasks than its
//!   local queue holds (the overflow waits in the injector);
//! * a worker blocked for a second while an echo server on the same
//!   runtime keeps answering its other connections within 100 ms (the
//!   `rt_stall` tests cover timers and task wakeups; this covers I/O
//!   readiness of tasks whose last worker is the blocked one);
//! * a `Drop` that panics inside a task (the `JoinError` carries that
//!   panic), in a detached task's output, and in a panic payload nobody
//!   joins: the runtime survives all three;
//! * shutdown with 10 000 pending tasks of every kind (never polled,
//!   sleeping, reading a socket, waiting on a oneshot or `JoinHandle` held
//!   by another pending task, always runnable, spawning from `Drop`): every
//!   future is dropped exactly once, counted per task;
//! * misuse of a `JoinHandle`, a `JoinError` and the builder panics with a
//!   message that says what to do.

#[macro_use]
mod common;

use std::future::{pending, Future};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, ms, panic_message_of, panic_text, watchdog, Flavor};
use futures::channel::oneshot;
use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};
use kevent::runtime::{Builder, Handle};
use kevent::task::yield_now;
use kevent::time::sleep;

/// Serializes the latency test with the tests that run a child process
/// (which, while a bug they document is there, keeps cores busy).
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], ignoring poison from an earlier failure.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every worker still runs tasks and timers.
async fn assert_all_workers_serve(flavor: Flavor) {
    let tasks: Vec<_> = (0..16 * flavor.workers())
        .map(|i| {
            kevent::spawn(async move {
                sleep(ms(1)).await;
                yield_now().await;
                i
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), i);
    }
}

// ---------------------------------------------------------------- blocked worker

/// Every message is this long.
const MSG: usize = 8;
/// Asks the server to block its worker for [`BLOCK`].
const BLOCK_REQUEST: &[u8; MSG] = b"block!!!";
/// The server's reply just before blocking.
const BLOCKING: &[u8; MSG] = b"blocking";
/// The server's reply once the block is over.
const UNBLOCKED: &[u8; MSG] = b"unblockd";
/// How long the blocker holds its worker.
const BLOCK: Duration = Duration::from_secs(1);
/// Most an echo round trip may take while another worker is blocked.
const MAX_ROUND_TRIP: Duration = Duration::from_millis(100);
/// Connections whose handlers keep serving.
const ECHO_CONNS: usize = 4;

/// Echoes `MSG`-byte messages; on [`BLOCK_REQUEST`], answers [`BLOCKING`],
/// blocks its worker thread for [`BLOCK`], then answers [`UNBLOCKED`].
async fn echo_or_block(mut s: TcpStream) {
    let mut msg = [0u8; MSG];
    while s.read_exact(&mut msg).await.is_ok() {
        if &msg == BLOCK_REQUEST {
            s.write_all(BLOCKING).await.unwrap();
            thread::sleep(BLOCK);
            s.write_all(UNBLOCKED).await.unwrap();
        } else {
            s.write_all(&msg).await.unwrap();
        }
    }
}

/// One round trip on a blocking std socket; returns its duration.
fn round_trip(s: &mut std::net::TcpStream, n: u64) -> Duration {
    let msg = n.to_le_bytes();
    let start = Instant::now();
    s.write_all(&msg).unwrap();
    let mut back = [0u8; MSG];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    start.elapsed()
}

/// The clients, on a plain thread outside the runtime: warm every
/// connection up (so handlers have a worker they last ran on), ask one
/// handler to block its worker, then measure round trips on the others
/// while it is blocked. Returns (longest round trip, round trips made).
fn clients(addr: SocketAddr) -> (Duration, usize) {
    let mut conns: Vec<_> = (0..=ECHO_CONNS)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    let mut n = 0;
    for _ in 0..20 {
        for c in &mut conns {
            round_trip(c, n);
            n += 1;
        }
    }
    let (blocker, others) = conns.split_first_mut().unwrap();
    blocker.write_all(BLOCK_REQUEST).unwrap();
    let mut reply = [0u8; MSG];
    blocker.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, BLOCKING);
    let blocked_at = Instant::now();
    let mut longest = Duration::ZERO;
    let mut trips = 0;
    // Stop well inside the block, so every trip measured overlaps it.
    while blocked_at.elapsed() < BLOCK * 8 / 10 {
        for c in others.iter_mut() {
            longest = longest.max(round_trip(c, n));
            n += 1;
            trips += 1;
        }
        thread::sleep(ms(5));
    }
    blocker.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, UNBLOCKED);
    assert!(
        blocked_at.elapsed() >= BLOCK * 9 / 10,
        "the blocker ended early: the window measured nothing"
    );
    (longest, trips)
}

rt_test_sync!(echo_server_answers_within_100ms_while_a_handler_blocks_its_worker:
    multi_thread_2, multi_thread_4);
fn echo_server_answers_within_100ms_while_a_handler_blocks_its_worker(flavor: Flavor) {
    let _serial = serial();
    let rt = flavor.build();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            kevent::spawn(echo_or_block(s));
        }
    });
    let (longest, trips) = thread::spawn(move || clients(addr)).join().unwrap();
    eprintln!("{flavor:?}: {trips} round trips during the block, longest {longest:?}");
    assert!(
        longest < MAX_ROUND_TRIP,
        "an echo round trip took {longest:?} while another worker was blocked"
    );
    assert!(
        trips >= 10 * ECHO_CONNS,
        "only {trips} round trips in the block"
    );
    drop(rt);
}

// ---------------------------------------------------------------- isolation

/// Set in a child process to the name of the test it runs.
const CHILD_ENV: &str = "KEVENT_FAULT_RT_CHILD";

/// The running test's name (libtest names the thread after it).
fn test_name() -> String {
    thread::current()
        .name()
        .expect("libtest names the test thread")
        .to_string()
}

/// Whether this process is the child running the current test.
fn in_child() -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|t| t == test_name())
}

/// Runs the current test again in a child process (this test binary, with
/// only this test selected) and fails unless it passes within `limit`;
/// kills it after that. For behaviours whose failure mode is aborting the
/// process or a hang that keeps a core busy: either then fails this one
/// test instead of killing or slowing every test in the binary.
fn check_in_child(limit: Duration) {
    let name = test_name();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the test binary as a child");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || tx.send(child.wait_with_output()));
    let (out, killed) = match rx.recv_timeout(limit) {
        Ok(out) => (out, false),
        Err(_) => {
            // SAFETY: signalling our own child, which has not been reaped
            // (its waiter is still blocked).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            (rx.recv().unwrap(), true)
        }
    };
    let out = out.expect("wait for the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("at ") && !l.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    assert!(
        !killed,
        "the test hung (killed after {limit:?}); its stderr:\n{tail}"
    );
    assert!(
        out.status.success(),
        "the test's process failed ({}); its stderr, without backtraces:\n{tail}",
        out.status
    );
}

/// `run_async` in a child process (see [`check_in_child`]).
fn run_in_child<F, Fut>(flavor: Flavor, body: F)
where
    F: FnOnce(Flavor) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    if in_child() {
        common::run_async(flavor, body);
    } else {
        let _serial = serial();
        check_in_child(common::WATCHDOG);
    }
}

/// `run_sync` in a child process that may take 5 s (see
/// [`check_in_child`]).
fn run_sync_in_child(flavor: Flavor, body: fn(Flavor)) {
    if in_child() {
        body(flavor);
    } else {
        let _serial = serial();
        check_in_child(Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------- starvation

/// Always-runnable tasks: more than one worker's local queue holds (256),
/// so some wait in the injector.
const BUSY_TASKS: usize = 300;

rt_test_sync!(@run crate::run_sync_in_child,
    timers_and_io_fire_while_more_tasks_than_a_local_queue_holds_stay_runnable:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
fn timers_and_io_fire_while_more_tasks_than_a_local_queue_holds_stay_runnable(flavor: Flavor) {
    let rt = flavor.build();
    for _ in 0..BUSY_TASKS {
        rt.spawn(async {
            loop {
                yield_now().await;
            }
        });
    }
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(std_listener.local_addr().unwrap()).unwrap();
    let (server, _) = std_listener.accept().unwrap();
    let (timer_took, read_took) = rt.block_on(async move {
        let start = Instant::now();
        sleep(ms(5)).await;
        let timer_took = start.elapsed();
        let mut server = TcpStream::from_std(server).unwrap();
        let start = Instant::now();
        let writer = thread::spawn(move || {
            thread::sleep(ms(5));
            client.write_all(b"x").unwrap();
            client
        });
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).await.unwrap();
        let read_took = start.elapsed();
        drop(writer.join().unwrap());
        (timer_took, read_took)
    });
    eprintln!("{flavor:?}: 5 ms sleep took {timer_took:?}, 5 ms read took {read_took:?}");
    assert!(timer_took < Duration::from_secs(1), "{timer_took:?}");
    assert!(read_took < Duration::from_secs(1), "{read_took:?}");
    drop(rt);
}

// ---------------------------------------------------------------- panicking Drop

/// Panics with [`DROP_PANIC`] when dropped; counts its drop first.
struct PanicOnDrop(Arc<AtomicUsize>);

/// The message [`PanicOnDrop`] panics with.
const DROP_PANIC: &str = "PanicOnDrop dropped";

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("{}", DROP_PANIC);
    }
}

rt_test!(a_drop_that_panics_inside_a_task_is_the_tasks_join_error);
async fn a_drop_that_panics_inside_a_task_is_the_tasks_join_error(flavor: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4 * flavor.workers())
        .map(|_| {
            let bomb = PanicOnDrop(drops.clone());
            kevent::spawn(async move {
                sleep(ms(1)).await;
                drop(bomb);
                "not reached"
            })
        })
        .collect();
    let n = handles.len();
    for h in handles {
        let err = h.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(panic_text(&*err.into_panic()), DROP_PANIC);
    }
    assert_eq!(drops.load(SeqCst), n);
    assert_all_workers_serve(flavor).await;
}

rt_test!(@run crate::run_in_child, a_detached_tasks_output_whose_drop_panics_leaves_the_runtime_working:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
async fn a_detached_tasks_output_whose_drop_panics_leaves_the_runtime_working(flavor: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let n = 4 * flavor.workers();
    for _ in 0..n {
        let bomb = PanicOnDrop(drops.clone());
        // Detached: the runtime drops the output when the task finishes.
        drop(kevent::spawn(async move {
            sleep(ms(1)).await;
            bomb
        }));
    }
    eventually("every output dropped", Duration::from_secs(5), || {
        drops.load(SeqCst) == n
    })
    .await;
    assert_all_workers_serve(flavor).await;
}

rt_test!(@run crate::run_in_child, a_detached_tasks_panic_payload_whose_drop_panics_leaves_the_runtime_working:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
async fn a_detached_tasks_panic_payload_whose_drop_panics_leaves_the_runtime_working(
    flavor: Flavor,
) {
    let drops = Arc::new(AtomicUsize::new(0));
    let n = 4 * flavor.workers();
    for _ in 0..n {
        let bomb = PanicOnDrop(drops.clone());
        drop(kevent::spawn(async move {
            sleep(ms(1)).await;
            // The payload is dropped by whoever drops the `JoinError`:
            // with the handle detached, the runtime.
            std::panic::panic_any(bomb);
        }));
    }
    eventually("every payload dropped", Duration::from_secs(5), || {
        drops.load(SeqCst) == n
    })
    .await;
    assert_all_workers_serve(flavor).await;
}

// ---------------------------------------------------------------- shutdown

/// Tasks pending when the runtime is dropped.
const PENDING_TASKS: usize = 10_000;
/// Socket pairs among them (two descriptors each).
const SOCKET_TASKS: usize = 250;
/// Always-runnable tasks among them: fewer than a worker's local queue
/// holds (256), which would starve timers on one worker (see
/// `timers_and_io_fire_while_more_tasks_than_a_local_queue_holds_stay_runnable`).
const YIELDING_TASKS: usize = 100;

/// Counts its drop in slot `.1` of the shared per-task counters.
struct Tally(Arc<Vec<AtomicU8>>, usize);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0[self.1].fetch_add(1, SeqCst);
    }
}

/// A task's work with a `Tally` that counts the future's drop.
struct Tracked {
    /// The task's work.
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Dropped with the future.
    _tally: Tally,
}

impl Future for Tracked {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

rt_test_sync!(shutdown_drops_each_of_ten_thousand_pending_tasks_exactly_once);
fn shutdown_drops_each_of_ten_thousand_pending_tasks_exactly_once(flavor: Flavor) {
    // One extra slot per task for what its Drop spawns during shutdown.
    let tallies: Arc<Vec<AtomicU8>> =
        Arc::new((0..2 * PENDING_TASKS).map(|_| AtomicU8::new(0)).collect());
    let rt = flavor.build();
    let handle = rt.handle().clone();
    let polled = Arc::new(AtomicUsize::new(0));
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    // Kept alive until after the runtime is gone, so socket reads stay
    // pending.
    let mut peers = Vec::new();
    let mut senders = Vec::new();
    let mut joins = Vec::new();
    for i in 0..PENDING_TASKS {
        let tally = Tally(tallies.clone(), i);
        let polled = polled.clone();
        let work: Pin<Box<dyn Future<Output = ()> + Send>> = match i % 8 {
            // Never polled before shutdown (unless a worker gets to it).
            0 | 1 => Box::pin(pending()),
            2 => Box::pin(async move {
                polled.fetch_add(1, SeqCst);
                sleep(Duration::from_secs(3600)).await;
            }),
            3 if i / 8 < SOCKET_TASKS => {
                let (client, server) = rt.block_on(async {
                    let c = TcpStream::connect(addr).await.unwrap();
                    let (s, _) = listener.accept().await.unwrap();
                    (c, s)
                });
                peers.push(client);
                Box::pin(async move {
                    polled.fetch_add(1, SeqCst);
                    let mut s = server;
                    let mut buf = [0u8; 8];
                    let _ = s.read(&mut buf).await;
                    pending::<()>().await;
                })
            }
            3 | 4 => {
                // The sender lives in a later pending task (or here, until
                // shutdown): dropping it there wakes this one mid-shutdown.
                let (tx, rx) = oneshot::channel::<()>();
                senders.push(tx);
                Box::pin(async move {
                    polled.fetch_add(1, SeqCst);
                    let _ = rx.await;
                    pending::<()>().await;
                })
            }
            5 => {
                let tx = senders.pop();
                let joined = joins.pop();
                Box::pin(async move {
                    polled.fetch_add(1, SeqCst);
                    let _tx = tx;
                    if let Some(j) = joined {
                        let _ = j.await;
                    }
                    pending::<()>().await;
                })
            }
            6 if i / 8 < YIELDING_TASKS => {
                // Always runnable.
                Box::pin(async move {
                    polled.fetch_add(1, SeqCst);
                    loop {
                        yield_now().await;
                    }
                })
            }
            6 => Box::pin(pending()),
            _ => {
                // Its Drop spawns another tracked task during shutdown.
                let spawner = SpawnOnDrop {
                    handle: handle.clone(),
                    tally: Some(Tally(tallies.clone(), PENDING_TASKS + i)),
                };
                Box::pin(async move {
                    polled.fetch_add(1, SeqCst);
                    let _spawner = spawner;
                    sleep(Duration::from_secs(3600)).await;
                })
            }
        };
        let j = rt.spawn(Tracked {
            inner: work,
            _tally: tally,
        });
        if i % 8 == 2 {
            joins.push(j);
        }
    }
    let spawned_on_drop = PENDING_TASKS / 8;
    // Let the workers poll some of them.
    rt.block_on(async { sleep(ms(50)).await });
    eprintln!(
        "{flavor:?}: {} of {PENDING_TASKS} polled before shutdown",
        polled.load(SeqCst)
    );
    drop(joins);
    drop(senders);
    drop(rt);
    drop(peers);
    let mut wrong: Vec<(usize, u8)> = Vec::new();
    for (i, t) in tallies.iter().enumerate() {
        let n = t.load(SeqCst);
        let spawned = i >= PENDING_TASKS;
        let expected = if spawned && (i - PENDING_TASKS) % 8 != 7 {
            0
        } else {
            1
        };
        if n != expected {
            wrong.push((i, n));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} futures dropped the wrong number of times (index, drops; indices >= \
         {PENDING_TASKS} were spawned from a Drop, {spawned_on_drop} of them): {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(20)]
    );
}

/// On drop (at shutdown), spawns a tracked task onto the runtime; the
/// spawn finds the runtime shutting down, and that future must still be
/// dropped exactly once.
struct SpawnOnDrop {
    /// Where to spawn.
    handle: Handle,
    /// The spawned future's tally.
    tally: Option<Tally>,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let tally = self.tally.take().unwrap();
        drop(self.handle.spawn(Tracked {
            inner: Box::pin(pending::<()>()),
            _tally: tally,
        }));
    }
}

// ---------------------------------------------------------------- misuse

rt_test_sync!(polling_a_join_handle_after_its_output_panics_clearly);
fn polling_a_join_handle_after_its_output_panics_clearly(flavor: Flavor) {
    let rt = flavor.build();
    let msg = panic_message_of(|| {
        rt.block_on(async {
            let mut h = kevent::spawn(async { 5 });
            assert_eq!((&mut h).await.unwrap(), 5);
            let _ = futures::poll!(&mut h);
        })
    });
    assert!(msg.contains("JoinHandle polled after"), "{msg}");
    assert_eq!(
        rt.block_on(async { kevent::spawn(async { 6 }).await.unwrap() }),
        6
    );
}

rt_test!(into_panic_on_a_cancelled_task_says_to_check_is_panic);
async fn into_panic_on_a_cancelled_task_says_to_check_is_panic(_: Flavor) {
    let h = kevent::spawn(pending::<()>());
    h.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_cancelled());
    let msg = panic_message_of(move || err.into_panic());
    assert!(msg.contains("is_panic"), "{msg}");
}

#[test]
fn max_blocking_threads_zero_panics_clearly() {
    watchdog(|| {
        let msg = panic_message_of(|| {
            Builder::new_multi_thread().max_blocking_threads(0);
        });
        assert!(
            msg.contains("max_blocking_threads must be greater than 0"),
            "{msg}"
        );
    });
}

/// A future whose `Drop` holds a lock while it wakes another task, whose
/// own `Drop` takes the same lock (h2's connection and its request handle
/// do this). Shutdown must drop the woken task after the first drop is
/// done, not inside it: dropping it on the spot deadlocked the thread.
#[test]
fn a_drop_that_wakes_a_task_under_a_lock_does_not_deadlock_shutdown() {
    struct Shared {
        lock: Mutex<Option<std::task::Waker>>,
    }
    /// Pending forever; on drop, wakes the other task with the lock held.
    struct Waker_(Arc<Shared>);
    impl Future for Waker_ {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
    impl Drop for Waker_ {
        fn drop(&mut self) {
            let guard = self.0.lock.lock().unwrap();
            if let Some(w) = guard.as_ref() {
                w.wake_by_ref();
            }
        }
    }
    /// Registers its waker; on drop, takes the lock.
    struct Locker(Arc<Shared>);
    impl Future for Locker {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            *self.0.lock.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    impl Drop for Locker {
        fn drop(&mut self) {
            let _guard = self.0.lock.lock().unwrap();
        }
    }
    let flavors = [
        Flavor::current_thread(),
        Flavor::multi_thread_1(),
        Flavor::multi_thread_2(),
        Flavor::multi_thread_4(),
    ];
    for flavor in flavors {
        watchdog(move || {
            let rt = flavor.build();
            let shared = Arc::new(Shared {
                lock: Mutex::new(None),
            });
            rt.block_on(async {
                // The locker first, so that it has registered its waker.
                kevent::spawn(Locker(shared.clone()));
                eventually("the locker registered its waker", ms(2000), || {
                    shared.lock.lock().unwrap().is_some()
                })
                .await;
                kevent::spawn(Waker_(shared.clone()));
                yield_now().await;
            });
            drop(rt);
        });
    }
}

/// A task enters the runtime's registry of live tasks only when its first
/// poll returns `Pending`. One that is stuck inside that first poll when
/// the runtime shuts down (`shutdown_timeout` gives up on its worker) and
/// then returns `Pending` finds the registry closed: it is cancelled on
/// the spot, its future dropped, rather than left waiting forever where
/// no shutdown can reach it.
#[test]
fn a_task_stuck_in_its_first_poll_at_shutdown_is_dropped_when_it_returns() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    for flavor in [Flavor::multi_thread_1(), Flavor::multi_thread_2()] {
        watchdog(move || {
            let rt = flavor.build();
            let dropped = Arc::new(AtomicUsize::new(0));
            let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let flag = Flag(dropped.clone());
            rt.spawn(async move {
                let _flag = flag;
                started_tx.send(()).unwrap();
                // Blocks its worker inside the first poll.
                go_rx.recv().unwrap();
                pending::<()>().await;
            });
            started_rx.recv().unwrap();
            rt.shutdown_timeout(ms(50));
            assert_eq!(dropped.load(SeqCst), 0, "the task is still in its poll");
            go_tx.send(()).unwrap();
            common::eventually_blocking(
                "the task that returned Pending after shutdown was dropped",
                ms(5000),
                || dropped.load(SeqCst) == 1,
            );
            thread::sleep(ms(20));
            assert_eq!(dropped.load(SeqCst), 1, "dropped exactly once");
        });
    }
}
