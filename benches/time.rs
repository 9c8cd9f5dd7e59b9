//! Timer benchmarks, kevent against tokio.
//!
//! Run with `cargo bench --bench time`.
//!
//! As in `benches/rt.rs`, every group holds two functions, `kevent` and
//! `tokio`, expanded from the same source text by [`suite!`]; both are
//! multi-thread runtimes with 2 workers (or `BENCH_WORKERS`), built once per
//! group and dropped before the other runtime runs. The timed code runs in a
//! spawned task, on a worker, where timers are normally used.
//!
//! # Groups
//!
//! * `sleeps_100k`: 100 000 tasks, each awaiting its own `sleep`, with
//!   deadlines spread evenly over 0..100 ms; the iteration ends when all have
//!   completed. The last deadline sets a floor of 100 ms per iteration, so
//!   the difference between the two runtimes is in what lies above it.
//! * `timeout_create_cancel`: 1 000 × `timeout(10 s, ready)`, each completed
//!   at its first poll, so the timeout is created and dropped. A runtime
//!   that arms its timer lazily, on the first pending poll (kevent and tokio
//!   both do), never touches its timer wheel here.
//! * `timeout_pending_then_cancel`: 1 000 × `timeout(10 s, pending)`, polled
//!   once (so the timer is armed) and then dropped (so it is cancelled).

use std::future::{pending, ready};
use std::hint::black_box;
use std::pin::pin;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};

/// Sleeping tasks per iteration of `sleeps_100k`.
const NUM_SLEEPS: u64 = 100_000;
/// Deadlines of `sleeps_100k` are spread over `0..SLEEP_SPREAD_US` µs.
const SLEEP_SPREAD_US: u64 = 100_000;
/// Timeouts per iteration of the `timeout_*` groups.
const NUM_TIMEOUTS: usize = 1_000;
/// The timeout's duration: far longer than any iteration, so it never fires.
const TIMEOUT: Duration = Duration::from_secs(10);

#[path = "common/mod.rs"]
mod common;
use common::workers;

/// Expands the whole suite for one runtime crate, as a module named `$m`.
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

            pub fn sleeps_100k(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        rt.block_on(rt.spawn(async {
                            let mut handles = Vec::with_capacity(NUM_SLEEPS as usize);
                            for i in 0..NUM_SLEEPS {
                                let sleep =
                                    krate::time::sleep(Duration::from_micros(i % SLEEP_SPREAD_US));
                                handles.push(krate::spawn(sleep));
                            }
                            for handle in handles {
                                handle.await.unwrap();
                            }
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn timeout_create_cancel(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        rt.block_on(rt.spawn(async {
                            for i in 0..NUM_TIMEOUTS {
                                let out = krate::time::timeout(TIMEOUT, ready(i)).await;
                                black_box(out.unwrap());
                            }
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn timeout_pending_then_cancel(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = runtime();

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        rt.block_on(rt.spawn(async {
                            for _ in 0..NUM_TIMEOUTS {
                                let mut t = pin!(krate::time::timeout(TIMEOUT, pending::<()>()));
                                // The first poll finds the inner future
                                // pending and arms the timer; dropping `t`
                                // cancels it.
                                assert!(futures::poll!(t.as_mut()).is_pending());
                            }
                        }))
                        .unwrap();
                    })
                });
            }
        }
    };
}

suite!(on_kevent, kevent);
suite!(on_tokio, tokio);

/// Opens a group configured for a noisy 2-core machine.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g
}

fn sleeps_100k(c: &mut Criterion) {
    let mut g = group(c, "sleeps_100k");
    // An iteration lasts at least 100 ms: flat sampling takes 20 samples of
    // equally many iterations instead of 1 + 2 + … + 20 of them.
    g.sampling_mode(SamplingMode::Flat);
    on_kevent::sleeps_100k(&mut g);
    on_tokio::sleeps_100k(&mut g);
    g.finish();
}

fn timeout_create_cancel(c: &mut Criterion) {
    let mut g = group(c, "timeout_create_cancel");
    on_kevent::timeout_create_cancel(&mut g);
    on_tokio::timeout_create_cancel(&mut g);
    g.finish();
}

fn timeout_pending_then_cancel(c: &mut Criterion) {
    let mut g = group(c, "timeout_pending_then_cancel");
    on_kevent::timeout_pending_then_cancel(&mut g);
    on_tokio::timeout_pending_then_cancel(&mut g);
    g.finish();
}

criterion_group!(
    timers,
    sleeps_100k,
    timeout_create_cancel,
    timeout_pending_then_cancel
);
criterion_main!(timers);
