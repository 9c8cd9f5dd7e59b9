//! tokio's own multi-thread scheduler suite (`benches/rt_multi_threaded.rs`
//! in tokio's repository), run on kevent and on tokio side by side.
//!
//! Run with `cargo bench --bench rt`.
//!
//! Every group holds two functions, `kevent` and `tokio`, whose bodies are
//! the same source text: the [`suite!`] macro expands it once per crate, so
//! only the runtime differs. Both runtimes are multi-thread runtimes with
//! the same number of workers: 2 (the cores of the reference machine), or
//! the value of the `BENCH_WORKERS` environment variable. The constants are
//! tokio's (10 000 spawns, 200 tasks × 1 000 yields, 1 000 ping-pongs, a
//! spawn chain 1 000 deep, a 10 µs stall); the worker count is not (tokio
//! uses 4). Synchronisation outside the runtime is the same for both: std
//! atomics, `std::sync::mpsc`, and `futures::channel::oneshot` for the
//! ping-pongs (tokio's suite uses tokio's own oneshot).
//!
//! Each runtime is built once per group, and dropped before the other
//! runtime's function runs, so that one runtime's threads (and, in
//! `spawn_many_remote_busy`, its busy tasks) never compete with the other's.
//!
//! # Groups
//!
//! * `spawn_many_local`: a task spawns 10 000 tasks; each decrements a
//!   counter, the last one signals the `block_on` thread.
//! * `spawn_many_remote_idle`: the bench thread spawns 10 000 empty tasks
//!   from outside the runtime, then awaits their handles.
//! * `spawn_many_remote_busy`: the same while `2 × workers` background tasks
//!   keep every worker busy (yield, then stall 10 µs, in a loop).
//!   (tokio's `spawn_many_remote_busy1`; its `busy2` variant is not ported.)
//! * `yield_many`: 200 tasks, spawned from outside, yield 1 000 times each.
//! * `ping_pong`: 1 000 tasks each spawn a partner and exchange a ping and a
//!   pong with it over two oneshot channels.
//! * `chained_spawn`: a task spawns a task that spawns a task … 1 000 deep;
//!   the last one signals.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

/// Tasks spawned per iteration by the `spawn_many_*` groups.
const NUM_SPAWN: usize = 10_000;
/// Tasks in `yield_many`.
const YIELD_TASKS: usize = 200;
/// Yields per task in `yield_many`.
const NUM_YIELD: usize = 1_000;
/// Ping-pong pairs in `ping_pong`.
const NUM_PINGS: usize = 1_000;
/// Depth of the spawn chain in `chained_spawn`.
const CHAIN_DEPTH: usize = 1_000;
/// How long a background task in `spawn_many_remote_busy` holds its worker
/// between two yields.
const STALL_DUR: Duration = Duration::from_micros(10);

#[path = "common/mod.rs"]
mod common;
use common::workers;

/// Keeps the calling thread busy for [`STALL_DUR`], as tokio's suite does
/// (spinning on `thread::yield_now`, so a co-scheduled thread may run).
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

/// Expands the whole suite for one runtime crate, as a module named `$m`.
/// Each function builds its runtime, registers one bench function named
/// after the crate in the given group, and drops the runtime.
macro_rules! suite {
    ($m:ident, $krate:ident) => {
        mod $m {
            use super::*;
            use ::$krate as krate;

            /// The function's name inside each group.
            const NAME: &str = stringify!($krate);

            fn runtime() -> krate::runtime::Runtime {
                krate::runtime::Builder::new_multi_thread()
                    .worker_threads(workers())
                    .enable_all()
                    .build()
                    .expect("build the runtime")
            }

            pub fn spawn_many_local(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();
                let (tx, rx) = mpsc::sync_channel(1000);
                let rem = Arc::new(AtomicUsize::new(0));

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        rem.store(NUM_SPAWN, Relaxed);
                        rt.block_on(async {
                            for _ in 0..NUM_SPAWN {
                                let tx = tx.clone();
                                let rem = rem.clone();
                                krate::spawn(async move {
                                    if rem.fetch_sub(1, Relaxed) == 1 {
                                        tx.send(()).unwrap();
                                    }
                                });
                            }
                            rx.recv().unwrap();
                        });
                    })
                });
            }

            pub fn spawn_many_remote_idle(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();
                let mut handles = Vec::with_capacity(NUM_SPAWN);

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        for _ in 0..NUM_SPAWN {
                            handles.push(rt.spawn(async {}));
                        }
                        rt.block_on(async {
                            for handle in handles.drain(..) {
                                handle.await.unwrap();
                            }
                        });
                    })
                });
            }

            pub fn spawn_many_remote_busy(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();
                let mut handles = Vec::with_capacity(NUM_SPAWN);
                let busy = Arc::new(AtomicBool::new(true));

                // Keep every worker busy. Yielding is a lower notification
                // priority than spawning.
                for _ in 0..2 * workers() {
                    let busy = busy.clone();
                    rt.spawn(async move {
                        while busy.load(Relaxed) {
                            krate::task::yield_now().await;
                            stall();
                        }
                    });
                }

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        for _ in 0..NUM_SPAWN {
                            handles.push(rt.handle().spawn(async {}));
                        }
                        rt.block_on(async {
                            for handle in handles.drain(..) {
                                handle.await.unwrap();
                            }
                        });
                    })
                });

                busy.store(false, Relaxed);
            }

            pub fn yield_many(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();
                let (tx, rx) = mpsc::sync_channel(YIELD_TASKS);

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        for _ in 0..YIELD_TASKS {
                            let tx = tx.clone();
                            rt.spawn(async move {
                                for _ in 0..NUM_YIELD {
                                    krate::task::yield_now().await;
                                }
                                tx.send(()).unwrap();
                            });
                        }
                        for _ in 0..YIELD_TASKS {
                            rx.recv().unwrap();
                        }
                    })
                });
            }

            pub fn ping_pong(g: &mut BenchmarkGroup<'_, WallTime>) {
                use futures::channel::oneshot;

                let rt = runtime();
                let (done_tx, done_rx) = mpsc::sync_channel(1000);
                let rem = Arc::new(AtomicUsize::new(0));

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let done_tx = done_tx.clone();
                        let rem = rem.clone();
                        rem.store(NUM_PINGS, Relaxed);

                        rt.block_on(async {
                            krate::spawn(async move {
                                for _ in 0..NUM_PINGS {
                                    let rem = rem.clone();
                                    let done_tx = done_tx.clone();
                                    krate::spawn(async move {
                                        let (tx1, rx1) = oneshot::channel();
                                        let (tx2, rx2) = oneshot::channel();
                                        krate::spawn(async move {
                                            rx1.await.unwrap();
                                            tx2.send(()).unwrap();
                                        });
                                        tx1.send(()).unwrap();
                                        rx2.await.unwrap();
                                        if rem.fetch_sub(1, Relaxed) == 1 {
                                            done_tx.send(()).unwrap();
                                        }
                                    });
                                }
                            });
                            done_rx.recv().unwrap();
                        });
                    })
                });
            }

            pub fn chained_spawn(g: &mut BenchmarkGroup<'_, WallTime>) {
                fn iter(done_tx: mpsc::SyncSender<()>, n: usize) {
                    if n == 0 {
                        done_tx.send(()).unwrap();
                    } else {
                        krate::spawn(async move {
                            iter(done_tx, n - 1);
                        });
                    }
                }

                let rt = runtime();
                let (done_tx, done_rx) = mpsc::sync_channel(1000);

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let done_tx = done_tx.clone();
                        rt.block_on(async {
                            krate::spawn(async move {
                                iter(done_tx, CHAIN_DEPTH);
                            });
                            done_rx.recv().unwrap();
                        });
                    })
                });
            }
        }
    };
}

suite!(on_kevent, kevent);
suite!(on_tokio, tokio);

/// One criterion group per workload, configured for a noisy 2-core machine.
macro_rules! groups {
    ($($bench:ident),* $(,)?) => {
        $(
            fn $bench(c: &mut Criterion) {
                let mut g = c.benchmark_group(stringify!($bench));
                g.sample_size(20)
                    .measurement_time(Duration::from_secs(3))
                    .warm_up_time(Duration::from_secs(1));
                on_kevent::$bench(&mut g);
                on_tokio::$bench(&mut g);
                g.finish();
            }
        )*
        criterion_group!(rt_multi_threaded, $($bench),*);
    };
}

groups!(
    spawn_many_local,
    spawn_many_remote_idle,
    spawn_many_remote_busy,
    yield_many,
    ping_pong,
    chained_spawn,
);

criterion_main!(rt_multi_threaded);
