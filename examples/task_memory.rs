//! Bytes per idle task, kevent against tokio, side by side.
//!
//! `cargo run --release --example task_memory [TASKS]` (default 100000)
//!
//! For each runtime (multi-thread, default worker count: `KEVENT_WORKERS` /
//! `TOKIO_WORKER_THREADS`, else one per CPU) and each kind of idle task,
//! a fresh child process spawns TASKS tasks, waits until every one has been
//! polled once and is parked, and reports what the tasks hold:
//!
//! - heap bytes per task, exact: a counting global allocator's live bytes
//!   after the tasks are parked minus before they were spawned, ÷ TASKS;
//! - RSS bytes per task, the second figure: the change of `VmRSS` over the
//!   same span ÷ TASKS (includes the allocator's own slack).
//!
//! Two kinds of idle task: one that awaits `std::future::pending()` (the
//! runtime's cost alone: nothing holds its waker) and one that awaits a
//! `futures` oneshot receiver whose sender is kept (the receiver holds a
//! clone of the waker, as a task blocked on I/O or a channel does). The
//! channels are made before the first reading, so only the tasks count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes live at any moment.
struct Counting;

/// Bytes allocated and not yet freed, by anyone in the process.
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Allocations not yet freed.
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (so by `System`)
        // with `layout`, as the caller promises.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The runtimes compared.
const RUNTIMES: [&str; 2] = ["kevent", "tokio"];

/// What an idle task waits on.
const KINDS: [&str; 2] = ["pending", "oneshot"];

/// Resident memory of this process, in bytes (`VmRSS`).
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One measurement: heap and RSS growth while `tasks` idle tasks exist.
struct Reading {
    /// Live heap bytes added, ÷ tasks.
    heap_per_task: f64,
    /// RSS added, ÷ tasks.
    rss_per_task: f64,
    /// Live allocations added, ÷ tasks.
    allocs_per_task: f64,
    /// Size of one task's future, for reference.
    future_size: usize,
}

/// A runtime that can spawn a task from outside it.
trait Spawn {
    /// Spawns `task`, detached.
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, task: F);
}

impl Spawn for kevent::runtime::Runtime {
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        self.spawn(task);
    }
}

impl Spawn for tokio::runtime::Runtime {
    fn spawn_task<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        self.spawn(task);
    }
}

/// Spawns `tasks` idle tasks of `kind` on `rt`, waits until all have been
/// polled, and measures what they hold.
fn measure(rt: &impl Spawn, kind: &str, tasks: usize) -> Reading {
    let polled = Arc::new(AtomicUsize::new(0));
    // The channels exist before the first reading; only the tasks count.
    let mut senders = Vec::new();
    let mut receivers: Vec<Option<futures::channel::oneshot::Receiver<()>>> = Vec::new();
    if kind == "oneshot" {
        for _ in 0..tasks {
            let (tx, rx) = futures::channel::oneshot::channel();
            senders.push(tx);
            receivers.push(Some(rx));
        }
    }
    let mut future_size = 0;

    let heap0 = LIVE_BYTES.load(Ordering::SeqCst);
    let allocs0 = LIVE_ALLOCS.load(Ordering::SeqCst);
    let rss0 = rss_bytes();
    for i in 0..tasks {
        let polled = polled.clone();
        let rx = receivers.get_mut(i).and_then(Option::take);
        let task = async move {
            polled.fetch_add(1, Ordering::SeqCst);
            match rx {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        future_size = std::mem::size_of_val(&task);
        rt.spawn_task(task);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while polled.load(Ordering::SeqCst) < tasks {
        assert!(
            Instant::now() < deadline,
            "only {} of {tasks} tasks were polled within 120 s",
            polled.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the workers go idle (queues drained, workers parked).
    std::thread::sleep(Duration::from_millis(200));
    let heap1 = LIVE_BYTES.load(Ordering::SeqCst);
    let allocs1 = LIVE_ALLOCS.load(Ordering::SeqCst);
    let rss1 = rss_bytes();
    drop(senders);
    Reading {
        heap_per_task: (heap1 as f64 - heap0 as f64) / tasks as f64,
        rss_per_task: (rss1 as f64 - rss0 as f64) / tasks as f64,
        allocs_per_task: (allocs1 as f64 - allocs0 as f64) / tasks as f64,
        future_size,
    }
}

/// The child: one runtime, one kind; prints `heap rss future_size`.
fn child(runtime: &str, kind: &str, tasks: usize) {
    let reading = match runtime {
        "kevent" => {
            let rt = kevent::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("kevent runtime");
            // Warm up: whatever a runtime allocates on first use is not
            // the tasks' cost.
            rt.block_on(async { kevent::spawn(async {}).await.unwrap() });
            let reading = measure(&rt, kind, tasks);
            // Leave without tearing down 100k tasks one by one.
            std::mem::forget(rt);
            reading
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
            let reading = measure(&rt, kind, tasks);
            std::mem::forget(rt);
            reading
        }
        other => panic!("unknown runtime {other:?}: use kevent or tokio"),
    };
    println!(
        "{:.1} {:.1} {} {:.3}",
        reading.heap_per_task, reading.rss_per_task, reading.future_size, reading.allocs_per_task
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let tasks = args[3].parse().expect("task count");
        child(&args[1], &args[2], tasks);
        std::process::exit(0);
    }
    let tasks: usize = args.first().map_or(100_000, |a| {
        a.parse()
            .unwrap_or_else(|_| panic!("TASKS must be a positive integer, not {a:?}"))
    });
    assert!(tasks > 0, "TASKS must be a positive integer, not 0");

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bytes per idle task: {tasks} tasks, multi-thread runtimes at their default worker count \
         ({cpus} CPUs; KEVENT_WORKERS={}, TOKIO_WORKER_THREADS={}), one child process per row",
        std::env::var("KEVENT_WORKERS").unwrap_or_else(|_| "unset".into()),
        std::env::var("TOKIO_WORKER_THREADS").unwrap_or_else(|_| "unset".into()),
    );
    println!();
    println!(
        "| task waits on | runtime | heap bytes/task (exact) | RSS bytes/task | live allocations/task | future size |"
    );
    println!("|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    let mut heap = std::collections::HashMap::new();
    for kind in KINDS {
        for runtime in RUNTIMES {
            let out = Command::new(&exe)
                .args(["--child", runtime, kind, &tasks.to_string()])
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "{runtime}/{kind} child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let f: Vec<f64> = line
                .split_whitespace()
                .map(|v| v.parse().expect("a number"))
                .collect();
            heap.insert((kind, runtime), f[0]);
            let what = if kind == "pending" {
                "`std::future::pending()`"
            } else {
                "a oneshot receiver"
            };
            println!(
                "| {what} | {runtime} | {:.1} | {:.0} | {:.3} | {} |",
                f[0], f[1], f[3], f[2]
            );
        }
    }
    println!();
    for kind in KINDS {
        println!(
            "kevent ÷ tokio, heap bytes per task waiting on {kind}: {:.2}",
            heap[&(kind, "kevent")] / heap[&(kind, "tokio")]
        );
    }
}
