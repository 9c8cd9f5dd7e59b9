//! What feature `tokio-compat` costs: tokio's timer and spawner called from
//! kevent tasks, against the same calls on tokio and kevent's own.
//!
//! Run with `cargo bench --features tokio-compat --bench tokio_compat`.
//!
//! Every group has three functions: `tokio` (the call on a tokio runtime,
//! from a tokio task), `kevent_compat` (the same tokio call from a kevent
//! task: it goes to the tokio thread the kevent runtime carries and comes
//! back by waking the kevent task) and `kevent` (kevent's own call from a
//! kevent task). Runtimes are multi-thread with 2 workers (or
//! `BENCH_WORKERS`), built once per function. The timed loop runs in a
//! spawned task, on a worker.
//!
//! # Groups
//!
//! * `sleep_1ms`: one `sleep(1 ms)` awaited per iteration. Both tokio's
//!   wheel and kevent's round up to their millisecond tick, so this is
//!   mostly the tick; what lies above it is the hand-off.
//! * `timeout_armed_x100`: 100 × `timeout(10 s, yield_now())`: the first
//!   poll arms the timer (on tokio's wheel for `tokio` and `kevent_compat`,
//!   from another thread for the latter), the second completes and
//!   cancels it. No deadline passes, so this is the cost of registering
//!   and cancelling, without the timer's tick. (A `sleep(0)` would measure
//!   the tick: tokio's zero sleep waits for the driver's next millisecond.)
//! * `spawn_await_x100`: 100 × spawn a task that returns a number, await
//!   its `JoinHandle`.
//! * `build_runtime`: build a runtime and drop it: what the switch costs a
//!   program that never calls tokio (kevent with and without the switch).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

/// Calls per iteration in the `_x100` groups.
const CALLS: usize = 100;

#[path = "common/mod.rs"]
mod common;
use common::workers;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .enable_all()
        .build()
        .unwrap()
}

fn kevent_rt(compat: bool) -> kevent::runtime::Runtime {
    kevent::runtime::Builder::new_multi_thread()
        .worker_threads(workers())
        .tokio_compat(compat)
        .build()
        .unwrap()
}

/// Adds the three functions to group `name`; `$op` is the awaited body of
/// one iteration, written once per runtime's spawn/sleep names.
macro_rules! three {
    ($c:expr, $name:expr, |$spawn:ident, $sleep:ident, $timeout:ident| $op:expr) => {{
        let mut g = $c.benchmark_group($name);
        /// One bench function: `$op` in a task of `rt`, with `spawn`,
        /// `sleep` and `timeout` taken from `$krate`.
        macro_rules! timed {
            ($rt:expr, $fname:expr, $krate:ident) => {{
                let rt = $rt;
                g.bench_function($fname, |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(rt.spawn(async move {
                            #[allow(unused_imports)]
                            use $krate::spawn as $spawn;
                            #[allow(unused_imports)]
                            use $krate::time::sleep as $sleep;
                            #[allow(unused_imports)]
                            use $krate::time::timeout as $timeout;
                            let start = Instant::now();
                            for _ in 0..iters {
                                $op;
                            }
                            start.elapsed()
                        }))
                        .unwrap()
                    })
                });
            }};
        }
        timed!(tokio_rt(), "tokio", tokio);
        // kevent with the compat context: the same tokio calls.
        timed!(kevent_rt(true), "kevent_compat", tokio);
        timed!(kevent_rt(false), "kevent", kevent);
        g.finish();
    }};
}

fn sleep_1ms(c: &mut Criterion) {
    three!(c, "sleep_1ms", |_spawn, sleep, _timeout| sleep(
        Duration::from_millis(1)
    )
    .await);
}

fn timeout_armed_x100(c: &mut Criterion) {
    three!(
        c,
        "timeout_armed_x100",
        |_spawn, _sleep, timeout| for _ in 0..CALLS {
            let done = timeout(Duration::from_secs(10), yield_now()).await;
            std::hint::black_box(done.is_ok());
        }
    );
}

/// Returns pending once (waking itself), then ready: a future that makes
/// its caller arm a timer and then complete without it.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

fn spawn_await_x100(c: &mut Criterion) {
    three!(
        c,
        "spawn_await_x100",
        |spawn, _sleep, _timeout| for i in 0..CALLS {
            let n = spawn(async move { i }).await.unwrap();
            std::hint::black_box(n);
        }
    );
}

fn build_runtime(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_runtime");
    g.bench_function("tokio", |b| b.iter(|| drop(tokio_rt())));
    g.bench_function("kevent_compat", |b| b.iter(|| drop(kevent_rt(true))));
    g.bench_function("kevent", |b| b.iter(|| drop(kevent_rt(false))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = sleep_1ms, timeout_armed_x100, spawn_await_x100, build_runtime
}
criterion_main!(benches);
