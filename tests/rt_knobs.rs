//! Builder knobs and runtime facts under tokio's names: `on_thread_park` /
//! `on_thread_unpark`, `global_queue_interval`, `event_interval`,
//! `Handle::id`, `runtime::is_rt_shutdown_err`, and the metrics
//! `num_workers`, `num_alive_tasks`, `global_queue_depth`,
//! `worker_park_count`, `worker_park_unpark_count`,
//! `worker_total_busy_duration`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kevent::runtime::{self, Builder, Handle, Runtime};

fn multi(n: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(n)
        .build()
        .unwrap()
}

/// Waits up to 5 s for `cond`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn park_hooks_run_on_the_workers_as_they_sleep_and_wake() {
    let parks = Arc::new(AtomicUsize::new(0));
    let unparks = Arc::new(AtomicUsize::new(0));
    let off_worker = Arc::new(AtomicBool::new(false));
    let (p, u, o1, o2) = (
        parks.clone(),
        unparks.clone(),
        off_worker.clone(),
        off_worker.clone(),
    );
    let on_worker = || {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("hooked-"))
    };
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hooked")
        .on_thread_park(move || {
            o1.fetch_or(!on_worker(), Ordering::SeqCst);
            p.fetch_add(1, Ordering::SeqCst);
        })
        .on_thread_unpark(move || {
            o2.fetch_or(!on_worker(), Ordering::SeqCst);
            u.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..5 {
            kevent::spawn(kevent::time::sleep(Duration::from_millis(2)))
                .await
                .unwrap();
        }
    });
    eventually("workers park", || parks.load(Ordering::SeqCst) >= 2);
    assert!(unparks.load(Ordering::SeqCst) >= 1);
    assert!(
        !off_worker.load(Ordering::SeqCst),
        "a park hook ran off a worker thread"
    );
    // Every unpark follows a park.
    assert!(unparks.load(Ordering::SeqCst) <= parks.load(Ordering::SeqCst));
}

#[test]
fn park_hooks_run_on_the_current_thread_runtimes_block_on_thread() {
    let parks = Arc::new(AtomicUsize::new(0));
    let p = parks.clone();
    let rt = Builder::new_current_thread()
        .on_thread_park(move || {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    rt.block_on(async { kevent::time::sleep(Duration::from_millis(5)).await });
    assert!(parks.load(Ordering::SeqCst) >= 1);
}

/// A task spawned from outside waits in the injector; a task on the
/// worker yields forever. The injector is looked at first every
/// `global_queue_interval` ticks: the yields counted when the outside task
/// runs show the interval.
fn yields_before_injected_task_runs(interval: u32) -> usize {
    let rt = Builder::new_current_thread()
        .global_queue_interval(interval)
        .build()
        .unwrap();
    let yields = Arc::new(AtomicUsize::new(0));
    let y = yields.clone();
    let injected = rt.spawn(async move { y.load(Ordering::SeqCst) });
    rt.block_on(async move {
        let y = yields.clone();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        kevent::spawn(async move {
            while !d.load(Ordering::SeqCst) {
                y.fetch_add(1, Ordering::SeqCst);
                kevent::task::yield_now().await;
            }
        });
        let seen = injected.await.unwrap();
        done.store(true, Ordering::SeqCst);
        seen
    })
}

#[test]
fn global_queue_interval_sets_how_often_the_injector_goes_first() {
    assert!(yields_before_injected_task_runs(1) <= 1);
    let n = yields_before_injected_task_runs(1000);
    assert!(
        n >= 900,
        "the injector went first after {n} ticks, not 1000"
    );
}

#[test]
fn event_interval_sets_how_often_a_busy_worker_harvests_the_ring() {
    let rt = Builder::new_current_thread()
        .event_interval(5000)
        .build()
        .unwrap();
    let seen = rt.block_on(async {
        let yields = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (y, d) = (yields.clone(), done.clone());
        kevent::spawn(async move {
            while !d.load(Ordering::SeqCst) {
                y.fetch_add(1, Ordering::SeqCst);
                kevent::task::yield_now().await;
            }
        });
        // Only a harvest of the ring fires this timer; with tasks always
        // runnable that happens every 5000 ticks.
        let timer = kevent::spawn(kevent::time::sleep(Duration::from_millis(1)));
        timer.await.unwrap();
        done.store(true, Ordering::SeqCst);
        yields.load(Ordering::SeqCst)
    });
    assert!(
        seen >= 4000,
        "the timer fired after {seen} ticks, before the 5000th"
    );
}

#[test]
#[should_panic(expected = "global_queue_interval must be greater than 0")]
fn a_zero_global_queue_interval_is_refused() {
    Builder::new_multi_thread().global_queue_interval(0);
}

#[test]
#[should_panic(expected = "event_interval must be greater than 0")]
fn a_zero_event_interval_is_refused() {
    Builder::new_multi_thread().event_interval(0);
}

#[test]
fn handle_id_names_one_runtime() {
    let a = multi(1);
    let b = Builder::new_current_thread().build().unwrap();
    assert_ne!(a.handle().id(), b.handle().id());
    assert_eq!(a.handle().id(), a.handle().clone().id());
    let inside = a.block_on(async { Handle::current().id() });
    assert_eq!(inside, a.handle().id());
    assert!(!a.handle().id().to_string().is_empty());
}

#[test]
fn io_on_a_socket_of_a_shut_down_runtime_fails_with_the_shutdown_error() {
    let old = Builder::new_current_thread().build().unwrap();
    let listener =
        old.block_on(async { kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    drop(old);
    let rt = Builder::new_current_thread().build().unwrap();
    let err = rt.block_on(async { listener.accept().await.unwrap_err() });
    assert!(runtime::is_rt_shutdown_err(&err), "{err}");
    assert!(err.to_string().contains("has shut down"), "{err}");
    let other = std::io::Error::other("something else");
    assert!(!runtime::is_rt_shutdown_err(&other));
}

#[test]
fn metrics_under_tokios_names() {
    let rt = multi(2);
    let m = rt.metrics();
    assert_eq!(m.num_workers(), 2);
    assert_eq!(rt.handle().metrics().num_workers(), 2);

    // Tasks spawned from outside a current-thread runtime wait in the
    // injector until it runs.
    let ct = Builder::new_current_thread().build().unwrap();
    let handles: Vec<_> = (0..5).map(|_| ct.spawn(async {})).collect();
    assert_eq!(ct.metrics().global_queue_depth(), 5);
    ct.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(ct.metrics().global_queue_depth(), 0);

    // Alive tasks: three waiting forever, counted until aborted.
    let waiting: Vec<_> = (0..3)
        .map(|_| rt.spawn(std::future::pending::<()>()))
        .collect();
    eventually("3 alive tasks", || rt.metrics().num_alive_tasks() == 3);
    for h in &waiting {
        h.abort();
    }
    eventually("no alive task", || rt.metrics().num_alive_tasks() == 0);
}

#[test]
fn park_counts_and_busy_time_per_worker() {
    let rt = multi(1);
    rt.block_on(async {
        kevent::spawn(async {
            // 30 ms of work without yielding, then a sleep.
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            kevent::time::sleep(Duration::from_millis(2)).await;
        })
        .await
        .unwrap();
    });
    // Idle now: asleep in the ring, so the park/unpark count is odd.
    eventually("the worker sleeps", || {
        rt.metrics().worker_park_unpark_count(0) % 2 == 1
    });
    let m = rt.metrics();
    assert!(m.worker_park_count(0) >= 1);
    assert_eq!(
        m.worker_park_unpark_count(0),
        2 * m.worker_park_count(0) - 1
    );
    assert!(
        m.worker_total_busy_duration(0) >= Duration::from_millis(30),
        "busy {:?}",
        m.worker_total_busy_duration(0)
    );
}
