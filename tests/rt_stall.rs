//! Invariant 6 of ARCHITECTURE.md: a task that blocks its worker stalls
//! only itself.
//! With two or more workers, while one worker is stuck in a 1 s
//! `std::thread::sleep`:
//!
//! * timers of other tasks keep firing, even a timer last armed on the
//!   stuck worker;
//! * a task woken by the blocker just before it blocked (which sits in the
//!   stuck worker's LIFO slot) runs on another worker within 100 ms;
//!   tokio leaves it waiting the full second because its LIFO slot cannot
//!   be stolen;
//! * wakeups from threads outside the runtime still reach their tasks;
//! * tasks queued on the stuck worker run on another within 100 ms even
//!   when no worker ever sleeps (the other one busy with a task that keeps
//!   yielding), as they must when the kernel preempts a worker.
//!
//! And one that needs no blocked worker: a backlog of long tasks that one
//! worker's events woke spreads to its sleeping sibling (`SPREAD_AFTER`).
//!
//! With one worker none of this can hold, so these run on multi_thread
//! with 2 and 4 workers only. The tests run one at a time (`SERIAL`) so
//! their latencies are not measured while the other tests load the cores.

#[macro_use]
mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{ms, Flavor};
use futures::channel::{mpsc, oneshot};
use futures::StreamExt;
use kevent::time::sleep;

/// How long the blocker holds its worker.
const BLOCK: Duration = Duration::from_secs(1);
/// Most a ticker's 10 ms sleeps may be apart while a worker is blocked.
const MAX_TICK_GAP: Duration = Duration::from_millis(300);
/// Most a woken task may wait for a worker while another is blocked.
const MAX_WAKE_LATENCY: Duration = Duration::from_millis(100);

/// Serializes this file's tests.
static SERIAL: Mutex<()> = Mutex::new(());

/// `run_async`, one test at a time.
fn run_serial<F, Fut>(flavor: Flavor, body: F)
where
    F: FnOnce(Flavor) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    common::run_async(flavor, body);
}

/// Blocks the worker it runs on for [`BLOCK`]; returns when it started and
/// ended.
fn block_worker() -> (Instant, Instant) {
    let start = Instant::now();
    thread::sleep(BLOCK);
    (start, Instant::now())
}

/// A task that records a timestamp after every 10 ms sleep until `stop`.
/// At tick 5 it calls `at_tick_5` (from inside the task, on its worker).
fn spawn_ticker(
    stop: Arc<AtomicBool>,
    at_tick_5: impl FnOnce() + Send + 'static,
) -> kevent::task::JoinHandle<Vec<Instant>> {
    kevent::spawn(async move {
        let mut at_tick_5 = Some(at_tick_5);
        let mut ticks = vec![Instant::now()];
        while !stop.load(SeqCst) {
            if ticks.len() == 5 {
                (at_tick_5.take().unwrap())();
            }
            sleep(ms(10)).await;
            ticks.push(Instant::now());
        }
        ticks
    })
}

/// The longest gap between consecutive ticks that overlaps `window`, and
/// how many ticks fell inside it.
fn gaps_during(ticks: &[Instant], (start, end): (Instant, Instant)) -> (Duration, usize) {
    let max_gap = ticks
        .windows(2)
        .filter(|w| w[1] > start && w[0] < end)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let inside = ticks.iter().filter(|&&t| t > start && t < end).count();
    (max_gap, inside)
}

rt_test!(@run crate::run_serial, blocked_worker_does_not_delay_timers_of_other_tasks: multi_thread_2, multi_thread_4);
async fn blocked_worker_does_not_delay_timers_of_other_tasks(_: Flavor) {
    // The blocker comes from outside the workers, onto any of them.
    let stop = Arc::new(AtomicBool::new(false));
    let (tick5_tx, tick5_rx) = oneshot::channel();
    let ticker = spawn_ticker(stop.clone(), move || {
        let _ = tick5_tx.send(());
    });
    tick5_rx.await.unwrap();
    let window = kevent::spawn(async { block_worker() }).await.unwrap();
    sleep(ms(50)).await;
    stop.store(true, SeqCst);
    let ticks = ticker.await.unwrap();
    let (max_gap, inside) = gaps_during(&ticks, window);
    assert!(
        max_gap < MAX_TICK_GAP,
        "a 10 ms sleep loop stalled for {max_gap:?} while another worker was blocked"
    );
    assert!(inside >= 3, "only {inside} ticks during the 1 s block");
}

rt_test!(@run crate::run_serial, timer_armed_on_a_worker_that_then_blocks_still_fires: multi_thread_2, multi_thread_4);
async fn timer_armed_on_a_worker_that_then_blocks_still_fires(_: Flavor) {
    // At tick 5 the ticker wakes the blocker (into its own worker's LIFO
    // slot) and arms its next timer there; that worker then runs the
    // blocker. The timer's affinity names the stuck worker.
    let stop = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (armed_tx, armed_rx) = oneshot::channel::<()>();
    let blocker = kevent::spawn(async move {
        let _ = armed_tx.send(());
        go_rx.await.unwrap();
        block_worker()
    });
    armed_rx.await.unwrap();
    sleep(ms(20)).await; // the blocker is parked on `go_rx`
    let ticker = spawn_ticker(stop.clone(), move || {
        go_tx.send(()).unwrap();
    });
    let window = blocker.await.unwrap();
    sleep(ms(50)).await;
    stop.store(true, SeqCst);
    let ticks = ticker.await.unwrap();
    let (max_gap, inside) = gaps_during(&ticks, window);
    assert!(
        max_gap < MAX_TICK_GAP,
        "a timer armed on the now-blocked worker stalled its task for {max_gap:?}"
    );
    assert!(inside >= 3, "only {inside} ticks during the 1 s block");
}

rt_test!(@run crate::run_serial, task_woken_just_before_its_waker_blocks_runs_promptly: multi_thread_2, multi_thread_4);
async fn task_woken_just_before_its_waker_blocks_runs_promptly(_: Flavor) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (wake_tx, wake_rx) = oneshot::channel::<Instant>();
    let woken = kevent::spawn(async move {
        ready_tx.send(()).unwrap();
        let sent = wake_rx.await.unwrap();
        sent.elapsed()
    });
    ready_rx.await.unwrap();
    sleep(ms(20)).await; // `woken` is parked on `wake_rx`
    let waker = kevent::spawn(async move {
        wake_tx.send(Instant::now()).unwrap();
        block_worker()
    });
    let latency = woken.await.unwrap();
    waker.await.unwrap();
    assert!(
        latency < MAX_WAKE_LATENCY,
        "the woken task waited {latency:?} behind its waker's blocking poll"
    );
}

rt_test!(@run crate::run_serial, tasks_woken_by_a_task_spawned_on_a_worker_run_promptly: multi_thread_2, multi_thread_4);
async fn tasks_woken_by_a_task_spawned_on_a_worker_run_promptly(_: Flavor) {
    // Three tasks woken in a row (the last in the LIFO slot, the others in
    // the queue), by a task spawned from a task rather than from outside.
    let mut senders = Vec::new();
    let mut woken = Vec::new();
    for _ in 0..3 {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (wake_tx, wake_rx) = oneshot::channel::<Instant>();
        woken.push(kevent::spawn(async move {
            ready_tx.send(()).unwrap();
            wake_rx.await.unwrap().elapsed()
        }));
        ready_rx.await.unwrap();
        senders.push(wake_tx);
    }
    sleep(ms(20)).await;
    let waker = kevent::spawn(async move {
        kevent::spawn(async move {
            for tx in senders {
                tx.send(Instant::now()).unwrap();
            }
            block_worker()
        })
        .await
        .unwrap()
    });
    let mut latencies = Vec::new();
    for w in woken {
        latencies.push(w.await.unwrap());
    }
    waker.await.unwrap();
    assert!(
        latencies.iter().all(|&l| l < MAX_WAKE_LATENCY),
        "woken tasks waited {latencies:?} behind their waker's blocking poll"
    );
}

rt_test!(@run crate::run_serial, blocked_worker_does_not_stop_wakeups_from_outside: multi_thread_2, multi_thread_4);
async fn blocked_worker_does_not_stop_wakeups_from_outside(_: Flavor) {
    const MESSAGES: usize = 5;
    let (msg_tx, mut msg_rx) = mpsc::unbounded::<Instant>();
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (parked_tx, parked_rx) = oneshot::channel::<()>();
    let blocker = kevent::spawn(async move {
        let _ = parked_tx.send(());
        go_rx.await.unwrap();
        block_worker()
    });
    parked_rx.await.unwrap();
    sleep(ms(20)).await;
    // The responder wakes the blocker into its own worker's LIFO slot and
    // then waits on the channel: the worker it last ran on blocks.
    let responder = kevent::spawn(async move {
        go_tx.send(()).unwrap();
        let mut latencies = Vec::new();
        while let Some(sent) = msg_rx.next().await {
            latencies.push((sent, sent.elapsed()));
        }
        latencies
    });
    let sender = thread::spawn(move || {
        thread::sleep(ms(200));
        for _ in 0..MESSAGES {
            msg_tx.unbounded_send(Instant::now()).unwrap();
            thread::sleep(ms(100));
        }
    });
    let (block_start, block_end) = blocker.await.unwrap();
    let latencies = responder.await.unwrap();
    sender.join().unwrap();
    assert_eq!(latencies.len(), MESSAGES);
    let during = latencies
        .iter()
        .filter(|(sent, _)| *sent > block_start && *sent < block_end)
        .count();
    assert!(
        during >= 3,
        "only {during} messages were sent during the block"
    );
    let worst = latencies.iter().map(|&(_, l)| l).max().unwrap();
    assert!(
        worst < MAX_WAKE_LATENCY,
        "a task woken from outside waited {worst:?} while one worker was blocked: {:?}",
        latencies.iter().map(|&(_, l)| l).collect::<Vec<_>>()
    );
}

rt_test!(@run crate::run_serial, each_worker_takes_one_of_as_many_blocking_tasks: multi_thread_2, multi_thread_4);
async fn each_worker_takes_one_of_as_many_blocking_tasks(flavor: Flavor) {
    // As many blocking tasks as workers, spawned from outside onto an idle
    // runtime: none may wait in a blocked worker's queue while another
    // worker is idle.
    sleep(ms(20)).await; // every worker parks
    let spawned = Instant::now();
    let blockers: Vec<_> = (0..flavor.workers())
        .map(|_| kevent::spawn(async { block_worker() }))
        .collect();
    let mut waits = Vec::new();
    for b in blockers {
        let (start, _) = b.await.unwrap();
        waits.push(start - spawned);
    }
    assert!(
        waits.iter().all(|&w| w < MAX_WAKE_LATENCY),
        "blocking tasks started after {waits:?}: one waited behind another's blocked worker"
    );
}

rt_test!(@run crate::run_serial, tasks_queued_behind_a_blocked_worker_run_while_the_other_never_sleeps: multi_thread_2);
async fn tasks_queued_behind_a_blocked_worker_run_while_the_other_never_sleeps(_: Flavor) {
    // The other worker runs a task that yields forever, so it always has
    // work and never sleeps: the stall check, armed only by a sleeping
    // worker, never fires, and a worker with work of its own never steals.
    // What finds the stuck worker's queue is the busy worker's own look at
    // its siblings' poll counts. A preempted worker looks the same to it.
    //
    // Two tasks yield until each has seen the other run on another thread
    // (an idle worker steals one of them), so both workers are busy and
    // neither sleeps; then one blocks its worker with tasks queued behind
    // it and the other keeps spinning.
    const QUEUED: usize = 3;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new([None, None]));
    let meet = |me: usize| {
        let seen = seen.clone();
        async move {
            let start = Instant::now();
            loop {
                let here = thread::current().id();
                let met = {
                    let mut seen = seen.lock().unwrap();
                    seen[me] = Some(here);
                    seen[1 - me].is_some_and(|other| other != here)
                };
                if met {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "two yielding tasks never ran on two workers"
                );
                kevent::task::yield_now().await;
            }
        }
    };
    let spinner = kevent::spawn({
        let (stop, meet) = (stop.clone(), meet(0));
        async move {
            meet.await;
            while !stop.load(SeqCst) {
                kevent::task::yield_now().await;
            }
        }
    });
    let blocker = kevent::spawn({
        let meet = meet(1);
        async move {
            meet.await;
            let queued: Vec<_> = (0..QUEUED)
                .map(|_| {
                    let spawned = Instant::now();
                    kevent::spawn(async move { spawned.elapsed() })
                })
                .collect();
            block_worker();
            queued
        }
    });
    let mut latencies = Vec::new();
    for q in blocker.await.unwrap() {
        latencies.push(q.await.unwrap());
    }
    stop.store(true, SeqCst);
    spinner.await.unwrap();
    assert!(
        latencies.iter().all(|&l| l < MAX_WAKE_LATENCY),
        "tasks queued on a blocked worker waited {latencies:?} while the other worker was busy"
    );
}

rt_test!(@run crate::run_serial, a_backlog_of_long_tasks_spreads_to_a_sleeping_worker: multi_thread_2);
async fn a_backlog_of_long_tasks_spreads_to_a_sleeping_worker(_: Flavor) {
    // Tasks woken by the events one worker dispatches queue on that worker,
    // and fewer than a claim batch of them wake no sibling (the ring
    // already shared the events out). When each runs long, the backlog
    // lasts: after `SPREAD_AFTER` (500 µs) the worker wakes its sleeping
    // sibling to steal. Here one timer wakes TASKS tasks of WORK each
    // (6 ms of work in all), well inside the stall check's 10 ms, which is
    // disarmed while both workers sleep before the timer fires and is
    // armed only when the batch starts: without the rule the whole batch
    // runs on one worker, as it did at 2 workers before the rule. Several
    // rounds, so one round's unlucky timing (a preempted CPU) cannot fail
    // the test alone.
    const TASKS: usize = 30;
    const WORK: Duration = Duration::from_micros(200);
    const ROUNDS: usize = 5;
    let mut spread = Vec::new();
    for _ in 0..ROUNDS {
        // Both workers fall asleep and the stall check runs out.
        sleep(ms(40)).await;
        let at = kevent::time::Instant::now() + ms(20);
        let ran = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..TASKS {
            let ran = ran.clone();
            kevent::spawn(async move {
                kevent::time::sleep_until(at).await;
                let start = Instant::now();
                while start.elapsed() < WORK {
                    std::hint::spin_loop();
                }
                ran.lock().unwrap().push(thread::current().id());
            });
        }
        // Not awaiting the tasks: a join handle's wakeup is not a task the
        // rule is about.
        kevent::time::sleep_until(at + ms(100)).await;
        let ran = ran.lock().unwrap();
        assert_eq!(
            ran.len(),
            TASKS,
            "a task of the batch did not run in 100 ms"
        );
        let first = ran[0];
        let elsewhere = ran.iter().filter(|&&t| t != first).count();
        spread.push(elsewhere.min(TASKS - elsewhere));
    }
    // Tasks the less busy worker ran, per round.
    let rounds_spread = spread.iter().filter(|&&n| n >= 3).count();
    assert!(
        rounds_spread >= 3,
        "tasks the second worker ran, per round of {TASKS}: {spread:?}; a backlog of long tasks stayed on one worker"
    );
}
