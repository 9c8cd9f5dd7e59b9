//! Tasks: spawning, joining, aborting, panics, yielding, the blocking pool,
//! wakeups between tasks, spawning from outside the runtime, and what
//! shutdown does to tasks. Every behaviour runs on current_thread and on
//! multi_thread with 1, 2 and 4 workers unless it is about one flavor.

#[macro_use]
mod common;

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, ms, panic_text, DropCounter, Flavor};
use futures::channel::oneshot;
use kevent::runtime::{Builder, Handle};
use kevent::task::{spawn_blocking, yield_now};
use kevent::time::sleep;

// ---------------------------------------------------------------- spawning

rt_test!(spawn_returns_the_task_output);
async fn spawn_returns_the_task_output(_: Flavor) {
    assert_eq!(kevent::spawn(async { 6 * 7 }).await.unwrap(), 42);
    let s = kevent::spawn(async { String::from("kevent") })
        .await
        .unwrap();
    assert_eq!(s, "kevent");
    let suspended = kevent::spawn(async {
        sleep(ms(2)).await;
        yield_now().await;
        vec![1, 2, 3]
    });
    assert_eq!(suspended.await.unwrap(), vec![1, 2, 3]);
}

rt_test!(ten_thousand_spawned_tasks_all_complete);
async fn ten_thousand_spawned_tasks_all_complete(_: Flavor) {
    const N: u64 = 10_000;
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let ran = ran.clone();
            kevent::spawn(async move {
                if i % 3 == 0 {
                    yield_now().await;
                }
                ran.fetch_add(1, SeqCst);
                i
            })
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(ran.load(SeqCst), N as usize);
    assert_eq!(sum, (0..N).sum::<u64>());
}

rt_test!(dropping_the_join_handle_detaches_the_task);
async fn dropping_the_join_handle_detaches_the_task(_: Flavor) {
    let (tx, rx) = oneshot::channel();
    let handle = kevent::spawn(async move {
        sleep(ms(10)).await;
        tx.send(7).unwrap();
    });
    drop(handle);
    assert_eq!(rx.await.expect("detached task was dropped"), 7);

    // Dropped before its first poll, too.
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    drop(kevent::spawn(async move { r.store(true, SeqCst) }));
    eventually("a detached task runs", Duration::from_secs(2), || {
        ran.load(SeqCst)
    })
    .await;
}

// ---------------------------------------------------------------- abort

rt_test!(abort_on_a_pending_task_gives_cancelled);
async fn abort_on_a_pending_task_gives_cancelled(_: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter::new(&drops);
    let (started_tx, started_rx) = oneshot::channel();
    let handle = kevent::spawn(async move {
        let _guard = guard;
        started_tx.send(()).unwrap();
        pending::<u32>().await
    });
    started_rx.await.unwrap();
    assert!(!handle.is_finished());
    handle.abort();
    let err = handle.await.unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(!err.is_panic());
    assert_eq!(drops.load(SeqCst), 1, "the aborted future must be dropped");
}

rt_test!(abort_before_the_first_poll_gives_cancelled);
async fn abort_before_the_first_poll_gives_cancelled(flavor: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let guard = DropCounter::new(&drops);
    let r = ran.clone();
    let handle = kevent::spawn(async move {
        let _guard = guard;
        r.store(true, SeqCst);
        pending::<()>().await
    });
    handle.abort();
    let err = handle.await.unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(drops.load(SeqCst), 1);
    if flavor == Flavor::CurrentThread {
        // Nothing else ran between spawn and abort on this thread.
        assert!(!ran.load(SeqCst), "an aborted, never-polled task ran");
    }
}

rt_test!(abort_on_a_finished_task_keeps_its_output);
async fn abort_on_a_finished_task_keeps_its_output(_: Flavor) {
    let handle = kevent::spawn(async { 5 });
    eventually("the task finishes", Duration::from_secs(2), || {
        handle.is_finished()
    })
    .await;
    handle.abort();
    handle.abort_handle().abort();
    assert_eq!(handle.await.unwrap(), 5);
}

rt_test!(abort_handle_cancels_the_task);
async fn abort_handle_cancels_the_task(_: Flavor) {
    let handle = kevent::spawn(pending::<()>());
    let abort = handle.abort_handle();
    sleep(ms(5)).await;
    assert!(!abort.is_finished());
    abort.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
    assert!(abort.is_finished());
}

rt_test!(is_finished_tracks_completion);
async fn is_finished_tracks_completion(_: Flavor) {
    let (tx, rx) = oneshot::channel::<u32>();
    let handle = kevent::spawn(async move { rx.await.unwrap() * 2 });
    let abort = handle.abort_handle();
    sleep(ms(20)).await;
    assert!(!handle.is_finished(), "finished while still waiting");
    assert!(!abort.is_finished());
    tx.send(21).unwrap();
    eventually(
        "is_finished after completion",
        Duration::from_secs(2),
        || handle.is_finished(),
    )
    .await;
    assert!(abort.is_finished());
    assert_eq!(handle.await.unwrap(), 42);
}

// ---------------------------------------------------------------- panics

rt_test!(panicking_task_reports_its_payload_and_runtime_keeps_working);
async fn panicking_task_reports_its_payload_and_runtime_keeps_working(flavor: Flavor) {
    let err = kevent::spawn(async {
        if true {
            panic!("boom in task");
        }
        1u32
    })
    .await
    .unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(!err.is_cancelled());
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in task"));

    let err = kevent::spawn(async {
        if true {
            panic!("code {}", 7);
        }
    })
    .await
    .unwrap_err();
    assert_eq!(panic_text(&*err.into_panic()), "code 7");

    // Panics on every worker, then tasks and timers still run everywhere.
    let panickers: Vec<_> = (0..8 * flavor.workers())
        .map(|i| {
            kevent::spawn(async move {
                yield_now().await;
                if i < usize::MAX {
                    panic!("panic {i}");
                }
            })
        })
        .collect();
    for p in panickers {
        assert!(p.await.unwrap_err().is_panic());
    }
    let after: Vec<_> = (0..100u32)
        .map(|i| {
            kevent::spawn(async move {
                sleep(ms(1)).await;
                i
            })
        })
        .collect();
    for (i, h) in after.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u32);
    }
}

/// Panics when dropped; counts drops first.
struct PanicOnDrop(Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("PanicOnDrop dropped");
    }
}

rt_test!(aborting_a_future_whose_drop_panics_leaves_the_runtime_working);
async fn aborting_a_future_whose_drop_panics_leaves_the_runtime_working(flavor: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..4 * flavor.workers() {
        let bomb = PanicOnDrop(drops.clone());
        let (started_tx, started_rx) = oneshot::channel();
        let h = kevent::spawn(async move {
            let _bomb = bomb;
            started_tx.send(()).unwrap();
            pending::<()>().await
        });
        started_rx.await.unwrap();
        handles.push(h);
    }
    // One never polled.
    let bomb = PanicOnDrop(drops.clone());
    handles.push(kevent::spawn(async move {
        let _bomb = bomb;
        pending::<()>().await
    }));
    let total = handles.len();
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled() || err.is_panic(), "{err:?}");
    }
    assert_eq!(drops.load(SeqCst), total);
    // Every worker still runs tasks.
    let after: Vec<_> = (0..50u32)
        .map(|i| {
            kevent::spawn(async move {
                sleep(ms(1)).await;
                i + 1
            })
        })
        .collect();
    for (i, h) in after.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i as u32 + 1);
    }
}

rt_test_sync!(dropping_the_runtime_survives_futures_whose_drop_panics);
fn dropping_the_runtime_survives_futures_whose_drop_panics(flavor: Flavor) {
    let rt = flavor.build();
    let drops = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let bomb = PanicOnDrop(drops.clone());
        let polled = polled.clone();
        rt.spawn(async move {
            let _bomb = bomb;
            polled.fetch_add(1, SeqCst);
            pending::<()>().await
        });
    }
    rt.block_on(eventually(
        "all tasks polled",
        Duration::from_secs(5),
        || polled.load(SeqCst) == 10,
    ));
    drop(rt);
    assert_eq!(drops.load(SeqCst), 10);
}

// ---------------------------------------------------------------- yield_now

rt_test!(yield_now_interleaves_two_tasks_in_order: current_thread, multi_thread_1);
async fn yield_now_interleaves_two_tasks_in_order(_: Flavor) {
    // Spawned from inside a task, so both land, in order, at the back of
    // the one worker's queue.
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    kevent::spawn(async move {
        let player = |name: char| {
            let o = o.clone();
            kevent::spawn(async move {
                for _ in 0..3 {
                    o.lock().unwrap().push(name);
                    yield_now().await;
                }
            })
        };
        let a = player('A');
        let b = player('B');
        a.await.unwrap();
        b.await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(*order.lock().unwrap(), ['A', 'B', 'A', 'B', 'A', 'B']);
}

rt_test!(yield_now_lets_another_task_run);
async fn yield_now_lets_another_task_run(_: Flavor) {
    // On a single worker the spinner only ends if yielding lets the
    // setter run.
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let spinner = kevent::spawn(async move {
        let mut spins = 0u64;
        while !f.load(SeqCst) {
            yield_now().await;
            spins += 1;
        }
        spins
    });
    let f = flag.clone();
    let setter = kevent::spawn(async move { f.store(true, SeqCst) });
    setter.await.unwrap();
    spinner.await.unwrap();
}

/// Runs a current-thread body under a 10 s watchdog (a hang fails fast).
fn run_short(flavor: Flavor, body: fn(Flavor)) {
    common::watchdog_for(Duration::from_secs(10), move || body(flavor));
}

rt_test_sync!(@run crate::run_short, block_on_yield_now_runs_the_tasks_spawned_before_it: current_thread);
fn block_on_yield_now_runs_the_tasks_spawned_before_it(flavor: Flavor) {
    let rt = flavor.build();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let ran = ran.clone();
        rt.spawn(async move {
            ran.fetch_add(1, SeqCst);
        });
    }
    rt.block_on(yield_now());
    assert_eq!(
        ran.load(SeqCst),
        3,
        "a yield must let every queued task run"
    );

    // Spawned inside block_on, before its yield.
    let ran = rt.block_on(async {
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = ran.clone();
            kevent::spawn(async move {
                ran.fetch_add(1, SeqCst);
            });
        }
        yield_now().await;
        ran.load(SeqCst)
    });
    assert_eq!(ran, 3, "a yield must let every queued task run");
}

rt_test_sync!(@run crate::run_short, a_second_thread_in_block_on_gets_its_wakeups_and_timers_while_another_drives: current_thread);
fn a_second_thread_in_block_on_gets_its_wakeups_and_timers_while_another_drives(flavor: Flavor) {
    let rt = Arc::new(flavor.build());
    // The first thread drives the runtime until the second is done: the
    // second's sleep, spawn and yield are served while it does not drive.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = oneshot::channel::<u32>();
    let driver = {
        let rt = rt.clone();
        thread::spawn(move || {
            rt.block_on(async move {
                started_tx.send(()).unwrap();
                done_rx.await.unwrap()
            })
        })
    };
    started_rx.recv().unwrap();
    let v = rt.block_on(async {
        let start = Instant::now();
        sleep(ms(20)).await;
        assert!(start.elapsed() >= ms(20));
        yield_now().await;
        kevent::spawn(async {
            sleep(ms(5)).await;
            6
        })
        .await
        .unwrap()
    });
    done_tx.send(v + 1).unwrap();
    assert_eq!(driver.join().unwrap(), 7);
}

rt_test_sync!(@run crate::run_short, a_second_thread_in_block_on_gets_an_earlier_timer_than_the_driver_sleeps_for: current_thread);
fn a_second_thread_in_block_on_gets_an_earlier_timer_than_the_driver_sleeps_for(flavor: Flavor) {
    let rt = Arc::new(flavor.build());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    // The driver sleeps in the ring until its 3 s deadline unless the
    // other thread finishes first.
    let driver = {
        let rt = rt.clone();
        thread::spawn(move || {
            rt.block_on(async move {
                started_tx.send(()).unwrap();
                kevent::time::timeout(Duration::from_secs(3), done_rx).await
            })
        })
    };
    started_rx.recv().unwrap();
    thread::sleep(ms(20));
    let start = Instant::now();
    rt.block_on(async { sleep(ms(20)).await });
    let took = start.elapsed();
    done_tx.send(()).unwrap();
    assert!(driver.join().unwrap().is_ok(), "the driver timed out");
    assert!(took < Duration::from_secs(1), "a 20 ms sleep took {took:?}");
}

rt_test_sync!(@run crate::run_short, a_thread_waiting_in_block_on_takes_over_when_the_driver_returns: current_thread);
fn a_thread_waiting_in_block_on_takes_over_when_the_driver_returns(flavor: Flavor) {
    let rt = Arc::new(flavor.build());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let driver = {
        let rt = rt.clone();
        thread::spawn(move || {
            rt.block_on(async move {
                started_tx.send(()).unwrap();
                // Hold the core until the other thread waits in block_on.
                go_rx.recv().unwrap();
            })
        })
    };
    started_rx.recv().unwrap();
    let waiter = {
        let rt = rt.clone();
        thread::spawn(move || {
            rt.block_on(async {
                go_tx.send(()).unwrap();
                // Only fires if this thread drives once the first returns.
                sleep(ms(30)).await;
                kevent::spawn(async { 3 }).await.unwrap()
            })
        })
    };
    driver.join().unwrap();
    assert_eq!(waiter.join().unwrap(), 3);
}

// ---------------------------------------------------------------- spawn_blocking

rt_test!(spawn_blocking_returns_the_closure_value);
async fn spawn_blocking_returns_the_closure_value(_: Flavor) {
    assert_eq!(spawn_blocking(|| 6 * 7).await.unwrap(), 42);
    let v = spawn_blocking(|| {
        thread::sleep(ms(10));
        String::from("slow")
    })
    .await
    .unwrap();
    assert_eq!(v, "slow");
    let h = Handle::current().spawn_blocking(|| 1);
    assert_eq!(h.await.unwrap(), 1);
}

rt_test!(spawn_blocking_panic_is_reported);
async fn spawn_blocking_panic_is_reported(_: Flavor) {
    let err = spawn_blocking(|| {
        if true {
            panic!("blocking boom");
        }
    })
    .await
    .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(panic_text(&*err.into_panic()), "blocking boom");
    assert_eq!(spawn_blocking(|| 3).await.unwrap(), 3);
}

rt_test!(spawn_blocking_runs_off_the_worker_thread);
async fn spawn_blocking_runs_off_the_worker_thread(_: Flavor) {
    let driver = thread::current().id();
    let blocking = spawn_blocking(|| thread::current().id()).await.unwrap();
    assert_ne!(driver, blocking);
    let (worker, blocking) = kevent::spawn(async {
        let here = thread::current().id();
        let there = spawn_blocking(|| thread::current().id()).await.unwrap();
        (here, there)
    })
    .await
    .unwrap();
    assert_ne!(worker, blocking, "spawn_blocking ran on the worker");
}

rt_test!(spawn_blocking_pool_grows_for_concurrent_jobs);
async fn spawn_blocking_pool_grows_for_concurrent_jobs(_: Flavor) {
    const JOBS: usize = 64;
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..JOBS)
        .map(|i| {
            let running = running.clone();
            let max_running = max_running.clone();
            spawn_blocking(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                max_running.fetch_max(now, SeqCst);
                thread::sleep(ms(50));
                running.fetch_sub(1, SeqCst);
                i
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.await.unwrap(), i);
    }
    let elapsed = start.elapsed();
    assert!(elapsed >= ms(50));
    let max = max_running.load(SeqCst);
    assert!(
        max >= 16,
        "at most {max} blocking jobs ran at once: the pool did not grow"
    );
    assert!(
        elapsed < ms(1600),
        "{JOBS} jobs of 50 ms took {elapsed:?} (serial would be 3.2 s)"
    );
}

rt_test!(handle_current_works_inside_spawn_blocking);
async fn handle_current_works_inside_spawn_blocking(_: Flavor) {
    // tokio's blocking threads are inside the runtime context, so code
    // there may call `Handle::current()` / `spawn`.
    let inside = spawn_blocking(|| Handle::try_current().is_ok())
        .await
        .unwrap();
    assert!(
        inside,
        "Handle::try_current() failed on a spawn_blocking thread"
    );
    let v = spawn_blocking(|| kevent::spawn(async { 9 }))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(v, 9);
}

rt_test!(handle_block_on_inside_spawn_blocking);
async fn handle_block_on_inside_spawn_blocking(_: Flavor) {
    let handle = Handle::current();
    let v = spawn_blocking(move || {
        handle.block_on(async {
            sleep(ms(5)).await;
            kevent::spawn(async { 11 }).await.unwrap()
        })
    })
    .await
    .unwrap();
    assert_eq!(v, 11);
}

// ---------------------------------------------------------------- wakeups between tasks

/// A ball passed between two players; `back` is where to return it.
struct Ball {
    /// Passes so far.
    hits: u32,
    /// The sender's next receiver.
    back: oneshot::Sender<Ball>,
}

/// Receives the ball and sends it back until `limit` passes; `None` when
/// the other player stopped first.
async fn player(mut rx: oneshot::Receiver<Ball>, limit: u32) -> Option<u32> {
    loop {
        let ball = rx.await.ok()?;
        if ball.hits == limit {
            return Some(ball.hits);
        }
        let (tx, next) = oneshot::channel();
        ball.back
            .send(Ball {
                hits: ball.hits + 1,
                back: tx,
            })
            .ok()?;
        rx = next;
    }
}

rt_test!(two_tasks_ping_pong_over_oneshots);
async fn two_tasks_ping_pong_over_oneshots(_: Flavor) {
    const LIMIT: u32 = 10_000;
    let (to_a, rx_a) = oneshot::channel();
    let (to_b, rx_b) = oneshot::channel();
    let a = kevent::spawn(player(rx_a, LIMIT));
    let b = kevent::spawn(player(rx_b, LIMIT));
    to_a.send(Ball {
        hits: 0,
        back: to_b,
    })
    .ok()
    .unwrap();
    let results = (a.await.unwrap(), b.await.unwrap());
    assert!(
        matches!(results, (Some(LIMIT), None) | (None, Some(LIMIT))),
        "{results:?}"
    );
}

rt_test!(tasks_wake_each_other_along_a_chain);
async fn tasks_wake_each_other_along_a_chain(_: Flavor) {
    const LEN: u32 = 1_000;
    let (first, mut rx) = oneshot::channel::<u32>();
    let mut handles = Vec::new();
    for _ in 0..LEN {
        let (tx, next) = oneshot::channel();
        handles.push(kevent::spawn(async move {
            let v = rx.await.unwrap();
            tx.send(v + 1).unwrap();
        }));
        rx = next;
    }
    first.send(0).unwrap();
    assert_eq!(rx.await.unwrap(), LEN);
    for h in handles {
        h.await.unwrap();
    }
}

// ---------------------------------------------------------------- handles and other threads

rt_test_sync!(runtime_and_handle_spawn_from_a_plain_thread);
fn runtime_and_handle_spawn_from_a_plain_thread(flavor: Flavor) {
    let rt = flavor.build();
    let handle = rt.handle().clone();
    let (a, b) = thread::scope(|s| {
        let a = s
            .spawn(|| {
                assert!(Handle::try_current().is_err());
                rt.spawn(async {
                    sleep(ms(1)).await;
                    1
                })
            })
            .join()
            .unwrap();
        let b = s.spawn(move || handle.spawn(async { 2 })).join().unwrap();
        (a, b)
    });
    let got = rt.block_on(async { (a.await.unwrap(), b.await.unwrap()) });
    assert_eq!(got, (1, 2));

    // A plain thread spawns while the runtime is idle inside block_on: the
    // task must wake it.
    let handle = rt.handle().clone();
    let v = rt.block_on(async move {
        let (tx, rx) = oneshot::channel();
        let t = thread::spawn(move || {
            thread::sleep(ms(20));
            let _ = tx.send(handle.spawn(async { 5 }));
        });
        let v = rx.await.unwrap().await.unwrap();
        t.join().unwrap();
        v
    });
    assert_eq!(v, 5);
}

rt_test!(handle_current_inside_tasks_is_the_runtime);
async fn handle_current_inside_tasks_is_the_runtime(flavor: Flavor) {
    let outer = Handle::current();
    assert_eq!(outer.metrics().num_workers(), flavor.workers());
    let workers = kevent::spawn(async {
        let handle = Handle::current();
        handle
            .spawn(async { Handle::current().metrics().num_workers() })
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(workers, flavor.workers());
    // A plain thread started from a task is outside the runtime.
    let outside = kevent::spawn(async { thread::spawn(Handle::try_current).join().unwrap() })
        .await
        .unwrap();
    assert!(outside.is_err());
}

rt_test_sync!(handle_block_on_from_another_thread);
fn handle_block_on_from_another_thread(flavor: Flavor) {
    let rt = flavor.build();
    // Nobody drives the runtime: the other thread does.
    let handle = rt.handle().clone();
    let v = thread::spawn(move || {
        handle.block_on(async {
            let t = kevent::spawn(async {
                sleep(ms(5)).await;
                20
            });
            t.await.unwrap() + 1
        })
    })
    .join()
    .unwrap();
    assert_eq!(v, 21);

    // While this thread is inside the runtime's own block_on.
    let handle = rt.handle().clone();
    let v = rt.block_on(async move {
        let (tx, rx) = oneshot::channel();
        let t = thread::spawn(move || {
            let r = handle.block_on(async {
                sleep(ms(10)).await;
                kevent::spawn(async { 7 }).await.unwrap()
            });
            tx.send(r).unwrap();
        });
        let v = rx.await.unwrap();
        t.join().unwrap();
        v
    });
    assert_eq!(v, 7);
}

// ---------------------------------------------------------------- shutdown

/// Records, when dropped, whether a runtime was current and whether a
/// panic was unwinding.
struct DropProbe {
    /// Set to (runtime current, panicking) by `drop`.
    seen: Arc<Mutex<Option<(bool, bool)>>>,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.seen.lock().unwrap() =
            Some((Handle::try_current().is_ok(), std::thread::panicking()));
    }
}

rt_test_sync!(a_task_dropped_at_shutdown_sees_its_runtime_as_current);
fn a_task_dropped_at_shutdown_sees_its_runtime_as_current(flavor: Flavor) {
    let rt = flavor.build();
    // One task waiting behind a waker, one never polled (current-thread:
    // nothing runs it before the drop).
    let parked = Arc::new(Mutex::new(None));
    let queued = Arc::new(Mutex::new(None));
    let probe = DropProbe {
        seen: parked.clone(),
    };
    let (polled_tx, polled_rx) = oneshot::channel::<()>();
    rt.spawn(async move {
        let _probe = probe;
        let _ = polled_tx.send(());
        pending::<()>().await;
    });
    rt.block_on(polled_rx).unwrap();
    let probe = DropProbe {
        seen: queued.clone(),
    };
    rt.spawn(async move {
        let _probe = probe;
        pending::<()>().await;
    });
    drop(rt);
    assert_eq!(*parked.lock().unwrap(), Some((true, false)));
    assert_eq!(*queued.lock().unwrap(), Some((true, false)));
}

rt_test!(a_panicking_task_is_dropped_while_its_panic_unwinds);
async fn a_panicking_task_is_dropped_while_its_panic_unwinds(_: Flavor) {
    /// Panics on its first poll, holding a probe.
    struct PanicsWhenPolled {
        _probe: DropProbe,
        /// Whether its own destructor panics too.
        drop_panics: bool,
    }
    impl std::future::Future for PanicsWhenPolled {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            panic!("boom in poll");
        }
    }
    impl Drop for PanicsWhenPolled {
        fn drop(&mut self) {
            if self.drop_panics {
                panic!("boom in drop");
            }
        }
    }
    for drop_panics in [false, true] {
        let seen = Arc::new(Mutex::new(None));
        let task = PanicsWhenPolled {
            _probe: DropProbe { seen: seen.clone() },
            drop_panics,
        };
        let err = kevent::spawn(task).await.unwrap_err();
        // Dropped before the JoinHandle saw the error, during the unwind,
        // with the runtime current.
        assert_eq!(
            *seen.lock().unwrap(),
            Some((true, true)),
            "drop_panics: {drop_panics}"
        );
        assert_eq!(panic_text(&*err.into_panic()), "boom in poll");
    }
    assert_eq!(kevent::spawn(async { 4 }).await.unwrap(), 4);
}

rt_test_sync!(dropping_the_runtime_drops_every_pending_future_once);
fn dropping_the_runtime_drops_every_pending_future_once(flavor: Flavor) {
    const POLLED: usize = 5_000;
    const UNPOLLED: usize = 5_000;
    let rt = flavor.build();
    let drops = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    let spawn_guarded = |i: usize| {
        let guard = DropCounter::new(&drops);
        let polled = polled.clone();
        rt.spawn(async move {
            let _guard = guard;
            polled.fetch_add(1, SeqCst);
            if i % 2 == 0 {
                pending::<()>().await
            } else {
                sleep(Duration::from_secs(3600)).await
            }
        })
    };
    // First batch: every task polled once and now waiting.
    for i in 0..POLLED {
        drop(spawn_guarded(i));
    }
    rt.block_on(eventually(
        "first batch polled",
        Duration::from_secs(10),
        || polled.load(SeqCst) == POLLED,
    ));
    // Second batch: never polled. On multi_thread, occupy every worker so
    // none can run it; the workers are released after shutdown began.
    let release = Arc::new(AtomicBool::new(false));
    // Sets `release` when dropped: a failing assertion must not leave the
    // workers blocked (dropping the runtime would then wait forever).
    struct Release(Arc<AtomicBool>);
    impl Drop for Release {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let _release_on_unwind = Release(release.clone());
    if let Flavor::MultiThread(n) = flavor {
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (started, release) = (started.clone(), release.clone());
            drop(rt.spawn(async move {
                started.fetch_add(1, SeqCst);
                while !release.load(SeqCst) {
                    thread::sleep(ms(1));
                }
            }));
        }
        // Not asserted: that each worker takes one blocker is
        // `rt_stall::each_worker_takes_one_of_as_many_blocking_tasks`;
        // here it only makes the second batch less likely to be polled.
        let deadline = Instant::now() + ms(500);
        while started.load(SeqCst) < n && Instant::now() < deadline {
            thread::sleep(ms(1));
        }
    }
    for i in 0..UNPOLLED {
        drop(spawn_guarded(i));
    }
    let r = release.clone();
    let releaser = thread::spawn(move || {
        thread::sleep(ms(200));
        r.store(true, SeqCst);
    });
    drop(rt);
    releaser.join().unwrap();
    let unpolled_ran = polled.load(SeqCst) - POLLED;
    assert_eq!(
        drops.load(SeqCst),
        POLLED + UNPOLLED,
        "{unpolled_ran} of the second batch were polled"
    );
}

rt_test_sync!(shutdown_timeout_returns_while_a_task_blocks_its_worker: multi_thread_1, multi_thread_2, multi_thread_4);
fn shutdown_timeout_returns_while_a_task_blocks_its_worker(flavor: Flavor) {
    let rt = flavor.build();
    let drops = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let guard = DropCounter::new(&drops);
        let polled = polled.clone();
        rt.spawn(async move {
            let _guard = guard;
            polled.fetch_add(1, SeqCst);
            pending::<()>().await
        });
    }
    rt.block_on(eventually("tasks polled", Duration::from_secs(5), || {
        polled.load(SeqCst) == 100
    }));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        thread::sleep(Duration::from_secs(2));
    });
    started_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("blocking task started");
    let start = Instant::now();
    rt.shutdown_timeout(ms(200));
    let took = start.elapsed();
    assert!(
        took < ms(1500),
        "shutdown_timeout(200ms) took {took:?} with a worker blocked for 2 s"
    );
    assert_eq!(drops.load(SeqCst), 100, "waiting tasks not dropped");
}

rt_test_sync!(join_handle_awaited_after_shutdown_is_cancelled);
fn join_handle_awaited_after_shutdown_is_cancelled(flavor: Flavor) {
    let rt = flavor.build();
    let (started_tx, started_rx) = oneshot::channel();
    let polled = rt.spawn(async move {
        started_tx.send(()).unwrap();
        pending::<u32>().await
    });
    rt.block_on(started_rx).unwrap();
    let queued = rt.spawn(pending::<u32>());
    let sleeping = rt.spawn(async {
        sleep(Duration::from_secs(3600)).await;
        1u32
    });
    drop(rt);
    let other = Builder::new_current_thread().build().unwrap();
    for (what, h) in [
        ("polled", polled),
        ("queued", queued),
        ("sleeping", sleeping),
    ] {
        let err = other
            .block_on(h)
            .expect_err("task completed after shutdown");
        assert!(err.is_cancelled(), "{what}: {err:?}");
    }
}

rt_test_sync!(spawn_on_a_handle_after_shutdown_is_cancelled);
fn spawn_on_a_handle_after_shutdown_is_cancelled(flavor: Flavor) {
    let rt = flavor.build();
    let handle = rt.handle().clone();
    drop(rt);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let task = handle.spawn(async move { r.store(true, SeqCst) });
    let blocking = handle.spawn_blocking(|| 1);
    let other = Builder::new_current_thread().build().unwrap();
    assert!(other.block_on(task).unwrap_err().is_cancelled());
    assert!(other.block_on(blocking).unwrap_err().is_cancelled());
    assert!(!ran.load(SeqCst));
}
