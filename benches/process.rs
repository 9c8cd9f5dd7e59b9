//! Child processes, run on kevent and on tokio side by side.
//!
//! Run with `cargo bench --bench process`.
//!
//! One group, `process`, with two functions, `kevent` and `tokio`, whose
//! bodies are the same source text (the [`suite!`] macro expands it once
//! per crate). Both runtimes are multi-thread runtimes with 2 workers, or
//! `BENCH_WORKERS`. An iteration is [`SPAWNS`] times, one after the other in
//! one task on the runtime: spawn `true` (no pipes, inherited standard
//! streams) and wait for its exit. Most of an iteration is the kernel's
//! `fork`/`exec`/`exit`; what the runtimes add is noticing the exit (kevent:
//! a pidfd registered with the ring; tokio 1.54: a pidfd on its epoll
//! driver, `SIGCHLD` where it cannot) and reaping.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};

/// Children spawned and waited for per iteration.
const SPAWNS: usize = 200;

#[path = "common/mod.rs"]
mod common;
use common::workers;

macro_rules! suite {
    ($m:ident, $krate:ident) => {
        mod $m {
            use super::*;
            use ::$krate as krate;

            pub fn spawn_wait(g: &mut BenchmarkGroup<'_, WallTime>) {
                let rt = krate::runtime::Builder::new_multi_thread()
                    .worker_threads(workers())
                    .enable_all()
                    .build()
                    .expect("build the runtime");
                g.bench_function(stringify!($krate), |b| {
                    b.iter(|| {
                        let task = rt.spawn(async {
                            for _ in 0..SPAWNS {
                                let status = krate::process::Command::new("true")
                                    .status()
                                    .await
                                    .expect("run true");
                                assert!(status.success());
                            }
                        });
                        rt.block_on(task).unwrap();
                    })
                });
            }
        }
    };
}

suite!(on_kevent, kevent);
suite!(on_tokio, tokio);

fn process(c: &mut Criterion) {
    let mut g = c.benchmark_group("process");
    // An iteration lasts tens of milliseconds.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    on_kevent::spawn_wait(&mut g);
    on_tokio::spawn_wait(&mut g);
    g.finish();
}

criterion_group!(benches, process);
criterion_main!(benches);
