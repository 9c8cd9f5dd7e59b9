//! Time: `sleep`, `sleep_until`, `Sleep::reset`, `timeout`, `interval` and
//! its missed-tick policies, many concurrent timers, dropped timers. Every
//! behaviour runs on current_thread and on multi_thread with 1, 2 and 4
//! workers. Timing assertions are "not before the deadline" and generous
//! upper bounds only.

#[macro_use]
mod common;

use kevent::time::Instant;
use std::future::{pending, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{ms, DropCounter, Flavor};
use futures::poll;
use kevent::time::{
    interval, interval_at, sleep, sleep_until, timeout, timeout_at, MissedTickBehavior,
};

// ---------------------------------------------------------------- sleep

rt_test!(sleep_never_completes_before_its_duration);
async fn sleep_never_completes_before_its_duration(_: Flavor) {
    for d in [0, 1, 2, 5, 10, 25, 50] {
        let d = ms(d);
        let start = Instant::now();
        let s = sleep(d);
        assert!(s.deadline() >= start + d);
        s.await;
        let took = start.elapsed();
        assert!(took >= d, "sleep({d:?}) completed after {took:?}");
    }
    // From many tasks at once.
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            kevent::spawn(async move {
                let d = ms(1 + i % 30);
                let start = Instant::now();
                sleep(d).await;
                (d, start.elapsed())
            })
        })
        .collect();
    for h in handles {
        let (d, took) = h.await.unwrap();
        assert!(took >= d, "sleep({d:?}) in a task completed after {took:?}");
    }
}

rt_test!(sleep_until_waits_for_an_absolute_deadline);
async fn sleep_until_waits_for_an_absolute_deadline(_: Flavor) {
    let deadline = Instant::now() + ms(60);
    let s = sleep_until(deadline);
    assert_eq!(s.deadline(), deadline);
    assert!(!s.is_elapsed());
    s.await;
    let now = Instant::now();
    assert!(now >= deadline, "woke {:?} early", deadline - now);
    assert!(now < deadline + Duration::from_secs(2));

    // A deadline in the past completes at once.
    let past = Instant::now()
        .checked_sub(ms(10))
        .unwrap_or_else(Instant::now);
    let s = sleep_until(past);
    assert!(s.is_elapsed());
    timeout(Duration::from_secs(2), s)
        .await
        .expect("a past deadline did not complete");
}

rt_test!(sleep_reset_moves_the_deadline_earlier_and_later);
async fn sleep_reset_moves_the_deadline_earlier_and_later(_: Flavor) {
    // Earlier: an armed 10 s sleep moved to 50 ms from now.
    let start = Instant::now();
    let mut s = pin!(sleep(Duration::from_secs(10)));
    assert!(poll!(s.as_mut()).is_pending());
    s.as_mut().reset(start + ms(50));
    assert_eq!(s.deadline(), start + ms(50));
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(50), "reset sleep completed after {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "reset earlier was ignored: {took:?}"
    );

    // Later: an armed 20 ms sleep moved to 150 ms.
    let start = Instant::now();
    let mut s = pin!(sleep(ms(20)));
    assert!(poll!(s.as_mut()).is_pending());
    s.as_mut().reset(start + ms(150));
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(150), "sleep reset later fired after {took:?}");

    // After it fired: the same Sleep waits again.
    let mut s = pin!(sleep(ms(5)));
    s.as_mut().await;
    let again = Instant::now();
    s.as_mut().reset(again + ms(50));
    assert!(!s.is_elapsed());
    s.as_mut().await;
    assert!(again.elapsed() >= ms(50));

    // Before its first poll.
    let start = Instant::now();
    let mut s = pin!(sleep(Duration::from_secs(10)));
    s.as_mut().reset(start + ms(20));
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(20) && took < Duration::from_secs(2), "{took:?}");
}

rt_test!(sleep_moved_later_again_and_again_fires_at_its_last_deadline);
async fn sleep_moved_later_again_and_again_fires_at_its_last_deadline(_: Flavor) {
    // hyper's shape: an armed sleep pushed forward on every request. The
    // ring timer keeps its first deadline and is moved on when it fires.
    let start = Instant::now();
    let mut s = pin!(sleep(ms(30)));
    assert!(poll!(s.as_mut()).is_pending());
    for i in 1..=200u64 {
        s.as_mut().reset(start + ms(30 + i));
    }
    assert!(poll!(s.as_mut()).is_pending());
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(230), "fired before its last deadline: {took:?}");
    assert!(took < Duration::from_secs(5), "never re-armed: {took:?}");

    // Far later, then back to a deadline between the armed one and that:
    // the sleep completes at the one it was given last.
    let start = Instant::now();
    let mut s = pin!(sleep(ms(20)));
    assert!(poll!(s.as_mut()).is_pending());
    s.as_mut().reset(start + Duration::from_secs(30));
    s.as_mut().reset(start + ms(80));
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(80), "fired early: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "kept the 30 s deadline: {took:?}"
    );
}

rt_test!(sleep_reset_racing_the_old_expiry_is_never_early);
async fn sleep_reset_racing_the_old_expiry_is_never_early(_: Flavor) {
    // The old deadline expires at about the moment of the reset: its
    // expiry must not complete the moved sleep.
    for round in 0..20u64 {
        let mut s = pin!(sleep(ms(5)));
        assert!(poll!(s.as_mut()).is_pending());
        sleep(ms(4 + round % 3)).await;
        let moved = Instant::now();
        s.as_mut().reset(moved + ms(30));
        s.as_mut().await;
        let took = moved.elapsed();
        assert!(
            took >= ms(30),
            "round {round}: moved sleep fired after {took:?}"
        );
    }
}

rt_test!(ten_thousand_concurrent_sleeps_all_complete);
async fn ten_thousand_concurrent_sleeps_all_complete(_: Flavor) {
    const N: u64 = 10_000;
    let done = Arc::new(AtomicUsize::new(0));
    let early = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (done, early) = (done.clone(), early.clone());
            kevent::spawn(async move {
                let d = ms(1 + i % 200);
                let start = Instant::now();
                sleep(d).await;
                if start.elapsed() < d {
                    early.fetch_add(1, SeqCst);
                }
                done.fetch_add(1, SeqCst);
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(done.load(SeqCst), N as usize);
    assert_eq!(early.load(SeqCst), 0, "sleeps completed early");
}

rt_test!(dropping_an_armed_sleep_does_not_disturb_later_timers);
async fn dropping_an_armed_sleep_does_not_disturb_later_timers(_: Flavor) {
    for round in 0..20 {
        let mut doomed = Box::pin(sleep(ms(5)));
        assert!(poll!(doomed.as_mut()).is_pending());
        drop(doomed);
        // Likely reuses the dropped timer's slot; the old expiry (at 5 ms)
        // must not complete it.
        let start = Instant::now();
        sleep(ms(40)).await;
        let took = start.elapsed();
        assert!(
            took >= ms(40),
            "round {round}: sleep completed after {took:?}"
        );
    }
    // Many armed sleeps dropped from tasks; the runtime keeps timing.
    let handles: Vec<_> = (0..1_000u64)
        .map(|i| {
            kevent::spawn(async move {
                let mut s = Box::pin(sleep(ms(1 + i % 10)));
                let _ = poll!(s.as_mut());
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let start = Instant::now();
    sleep(ms(30)).await;
    assert!(start.elapsed() >= ms(30));
}

rt_test!(a_pooled_timer_armed_for_a_later_deadline_takes_no_timer_lock);
async fn a_pooled_timer_armed_for_a_later_deadline_takes_no_timer_lock(_: Flavor) {
    // hyper's shape: every request arms a timeout and drops it long before
    // it is due. The dropped timer's registration goes back to the pool
    // with its wheel entry in place; the next one, due later, reuses both.
    let filings = || {
        kevent::runtime::Handle::current()
            .metrics()
            .ring_timer_filings
    };
    for _ in 0..4 {
        let mut s = pin!(sleep(Duration::from_secs(30)));
        assert!(poll!(s.as_mut()).is_pending());
    }
    let before = filings();
    for _ in 0..1_000 {
        let mut s = pin!(sleep(Duration::from_secs(30)));
        assert!(poll!(s.as_mut()).is_pending());
    }
    // A few for the runtime's own timers (the stall check) at most.
    let filed = filings() - before;
    assert!(filed <= 10, "{filed} of 1000 request timers took the lock");
    // The entries left behind do not disturb a short timer.
    let start = Instant::now();
    sleep(ms(20)).await;
    assert!(start.elapsed() >= ms(20));
}

rt_test!(timers_dropped_on_workers_are_reused_there_and_still_keep_time);
async fn timers_dropped_on_workers_are_reused_there_and_still_keep_time(_: Flavor) {
    // The same shape from tasks, so on worker threads: each worker keeps
    // the timers dropped on it for its own next ones.
    let filings = || {
        kevent::runtime::Handle::current()
            .metrics()
            .ring_timer_filings
    };
    let tasks = |n: usize| {
        (0..4)
            .map(|_| {
                kevent::spawn(async move {
                    for _ in 0..n {
                        let mut s = pin!(sleep(Duration::from_secs(30)));
                        assert!(poll!(s.as_mut()).is_pending());
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    for h in tasks(8) {
        h.await.unwrap();
    }
    let before = filings();
    for h in tasks(500) {
        h.await.unwrap();
    }
    let filed = filings() - before;
    assert!(filed <= 40, "{filed} of 2000 request timers took the lock");
    // Reused timers, whichever worker they were dropped on, fire when due
    // and not before (their old wheel entries are 30 s away).
    let late = (0..8u64)
        .map(|i| {
            kevent::spawn(async move {
                let d = ms(10 + 5 * i);
                let start = Instant::now();
                sleep(d).await;
                start.elapsed() >= d
            })
        })
        .collect::<Vec<_>>();
    for h in late {
        assert!(h.await.unwrap(), "a reused timer fired early");
    }
}

rt_test_sync!(timers_kept_by_a_worker_outlive_its_runtime_cleanly);
fn timers_kept_by_a_worker_outlive_its_runtime_cleanly(flavor: Flavor) {
    // Workers hold idle timers when their runtime shuts down; a second
    // runtime on the same threads' successors times correctly.
    for round in 0..3 {
        let rt = flavor.build();
        rt.block_on(async {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    kevent::spawn(async {
                        for _ in 0..100 {
                            let mut s = pin!(sleep(Duration::from_secs(30)));
                            assert!(poll!(s.as_mut()).is_pending());
                        }
                        let start = Instant::now();
                        sleep(ms(15)).await;
                        start.elapsed()
                    })
                })
                .collect();
            for h in handles {
                let took = h.await.unwrap();
                assert!(took >= ms(15), "round {round}: slept {took:?}");
            }
        });
        drop(rt);
    }
}

// ---------------------------------------------------------------- timeout

rt_test!(timeout_elapses_when_the_future_is_slow);
async fn timeout_elapses_when_the_future_is_slow(_: Flavor) {
    let start = Instant::now();
    let res = timeout(ms(50), pending::<()>()).await;
    let took = start.elapsed();
    let elapsed = res.expect_err("pending future completed");
    assert!(took >= ms(50), "timeout fired after {took:?}");
    assert_eq!(
        std::io::Error::from(elapsed).kind(),
        std::io::ErrorKind::TimedOut
    );

    let res = timeout(ms(30), sleep(Duration::from_secs(10))).await;
    assert!(res.is_err());

    // The inner future is dropped when the deadline wins.
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter::new(&drops);
    let res = timeout(ms(10), async move {
        let _guard = guard;
        pending::<()>().await
    })
    .await;
    assert!(res.is_err());
    assert_eq!(drops.load(SeqCst), 1);

    let deadline = Instant::now() + ms(20);
    assert!(timeout_at(deadline, pending::<()>()).await.is_err());
    assert!(Instant::now() >= deadline);
}

rt_test!(timeout_returns_the_output_of_a_fast_future);
async fn timeout_returns_the_output_of_a_fast_future(_: Flavor) {
    let start = Instant::now();
    let v = timeout(Duration::from_secs(5), async {
        sleep(ms(10)).await;
        5
    })
    .await;
    assert_eq!(v, Ok(5));
    assert!(start.elapsed() < Duration::from_secs(2));
    // A ready future wins even against a zero timeout.
    assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
    // Completing from another task.
    let v = timeout(Duration::from_secs(5), kevent::spawn(async { 3 })).await;
    assert_eq!(v.unwrap().unwrap(), 3);
}

// ---------------------------------------------------------------- reused timers
//
// A sleep dropped before its deadline leaves its ring timer armed for the
// worker's next sleep (hyper's header-read timeout, once per request): the
// next sleep must still fire at its own deadline, earlier or later, and an
// expiry while the timer is idle must wake nobody.

rt_test!(a_sleep_after_a_dropped_earlier_one_fires_at_its_own_deadline);
async fn a_sleep_after_a_dropped_earlier_one_fires_at_its_own_deadline(_: Flavor) {
    for _ in 0..3 {
        {
            let mut s = pin!(sleep(ms(20)));
            assert!(poll!(s.as_mut()).is_pending());
        }
        let start = Instant::now();
        sleep(ms(80)).await;
        let took = start.elapsed();
        assert!(
            took >= ms(80),
            "fired after {took:?}, at the dropped sleep's deadline"
        );
        assert!(took < ms(2_000), "fired after {took:?}");
    }
}

rt_test!(a_sleep_after_a_dropped_later_one_fires_at_its_own_deadline);
async fn a_sleep_after_a_dropped_later_one_fires_at_its_own_deadline(_: Flavor) {
    {
        let mut s = pin!(sleep(Duration::from_secs(30)));
        assert!(poll!(s.as_mut()).is_pending());
    }
    let start = Instant::now();
    sleep(ms(20)).await;
    let took = start.elapsed();
    assert!(took >= ms(20), "fired after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "waited for the dropped sleep's deadline: {took:?}"
    );
}

rt_test!(an_expiry_while_the_timer_is_idle_ends_no_later_sleep_early);
async fn an_expiry_while_the_timer_is_idle_ends_no_later_sleep_early(_: Flavor) {
    {
        let mut s = pin!(sleep(ms(10)));
        assert!(poll!(s.as_mut()).is_pending());
    }
    // The dropped sleep's deadline passes while its timer waits for reuse.
    std::thread::sleep(ms(40));
    sleep(ms(1)).await;
    let start = Instant::now();
    sleep(ms(50)).await;
    let took = start.elapsed();
    assert!(took >= ms(50), "ended early, after {took:?}");
}

rt_test!(an_expiry_while_the_timer_is_idle_wakes_nobody);
async fn an_expiry_while_the_timer_is_idle_wakes_nobody(_: Flavor) {
    let woken = Arc::new(AtomicUsize::new(0));
    let task = kevent::spawn({
        let woken = woken.clone();
        async move {
            let mut first = true;
            std::future::poll_fn(move |cx| {
                if first {
                    first = false;
                    let mut s = pin!(sleep(ms(10)));
                    assert!(s.as_mut().poll(cx).is_pending());
                    // Dropped here, armed, with this task's waker.
                } else {
                    woken.fetch_add(1, SeqCst);
                }
                std::task::Poll::<()>::Pending
            })
            .await
        }
    });
    sleep(ms(80)).await;
    assert_eq!(
        woken.load(SeqCst),
        0,
        "the idle timer's expiry woke its last owner"
    );
    task.abort();
}

// ---------------------------------------------------------------- interval

rt_test!(interval_first_tick_is_immediate_then_ticks_are_a_period_apart);
async fn interval_first_tick_is_immediate_then_ticks_are_a_period_apart(_: Flavor) {
    let period = ms(300);
    let start = Instant::now();
    let mut iv = interval(period);
    assert_eq!(iv.period(), period);
    let first = iv.tick().await;
    let first_at = Instant::now();
    assert!(first >= start && first <= first_at);
    assert!(
        first_at - start < ms(250),
        "first tick took {:?}",
        first_at - start
    );
    let second = iv.tick().await;
    assert!(Instant::now() >= first + period, "second tick early");
    let third = iv.tick().await;
    assert!(Instant::now() >= first + 2 * period, "third tick early");
    assert_eq!(second - first, period);
    assert_eq!(third - second, period);

    // interval_at: the first tick waits for `start`.
    let at = Instant::now() + ms(50);
    let mut iv = interval_at(at, ms(10));
    assert_eq!(iv.tick().await, at);
    assert!(Instant::now() >= at);
}

rt_test!(interval_burst_fires_missed_ticks_on_the_original_schedule);
async fn interval_burst_fires_missed_ticks_on_the_original_schedule(_: Flavor) {
    let period = ms(100);
    let start = Instant::now();
    let mut iv = interval_at(start, period);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
    assert_eq!(iv.tick().await, start);
    sleep_until(start + ms(250)).await;
    assert_eq!(iv.tick().await, start + period);
    assert_eq!(iv.tick().await, start + 2 * period);
    assert_eq!(iv.tick().await, start + 3 * period);
    assert!(Instant::now() >= start + 3 * period);
}

rt_test!(interval_delay_schedules_a_period_after_the_late_tick);
async fn interval_delay_schedules_a_period_after_the_late_tick(_: Flavor) {
    let period = ms(100);
    let start = Instant::now();
    let mut iv = interval_at(start, period);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Delay);
    assert_eq!(iv.tick().await, start);
    sleep_until(start + ms(250)).await;
    let before_late = Instant::now();
    let late = iv.tick().await;
    assert!(late < before_late, "the missed tick fires at once");
    let next = iv.tick().await;
    // Burst would give start + 200 ms here, already in the past.
    assert!(next >= before_late + period, "next tick not delayed");
    assert!(Instant::now() >= before_late + period);
}

rt_test!(interval_delay_keeps_the_schedule_while_ticks_are_on_time);
async fn interval_delay_keeps_the_schedule_while_ticks_are_on_time(_: Flavor) {
    // As tokio: the policy applies to missed ticks only (tokio: more than
    // 5 ms late); a tick taken on time schedules the next one a period
    // after its own deadline, not after the moment it was polled, so the
    // schedule does not drift.
    let period = ms(50);
    let start = Instant::now();
    let mut iv = interval_at(start, period);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    assert_eq!(iv.tick().await, start);
    assert_eq!(
        iv.tick().await,
        start + period,
        "an on-time tick moved the schedule"
    );
}

rt_test!(interval_skip_jumps_to_the_next_multiple_of_the_period);
async fn interval_skip_jumps_to_the_next_multiple_of_the_period(_: Flavor) {
    let period = ms(100);
    let start = Instant::now();
    let mut iv = interval_at(start, period);
    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
    assert_eq!(iv.tick().await, start);
    sleep_until(start + ms(250)).await;
    let before_late = Instant::now();
    assert_eq!(iv.tick().await, start + period, "the late tick fires");
    let next = iv.tick().await;
    let offset = next - start;
    assert_eq!(
        offset.as_nanos() % period.as_nanos(),
        0,
        "skip left the schedule: {offset:?}"
    );
    assert!(
        next > before_late,
        "a missed tick was not skipped: {offset:?}"
    );
    assert!(next >= start + 3 * period);
    assert!(Instant::now() >= next);
}

// ---------------------------------------------------------------- busy runtimes

/// Runs `body(flavor)` under a 10 s watchdog: a starved timer hangs.
fn run_starved(flavor: Flavor, body: fn(Flavor)) {
    common::watchdog_for(Duration::from_secs(10), move || body(flavor));
}

rt_test_sync!(@run crate::run_starved, a_block_on_future_that_wakes_itself_on_every_poll_still_sees_its_timer:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
fn a_block_on_future_that_wakes_itself_on_every_poll_still_sees_its_timer(flavor: Flavor) {
    let rt = flavor.build();
    let start = Instant::now();
    let polls = rt.block_on(async {
        let mut s = pin!(sleep_until(Instant::now() + ms(30)));
        let mut polls = 0u64;
        std::future::poll_fn(|cx| {
            polls += 1;
            if std::future::Future::poll(s.as_mut(), cx).is_ready() {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
        polls
    });
    assert!(start.elapsed() >= ms(30));
    assert!(polls > 1, "the future was polled {polls} times");
}

rt_test_sync!(@run crate::run_starved, tasks_that_wake_themselves_constantly_do_not_starve_others_timers:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
fn tasks_that_wake_themselves_constantly_do_not_starve_others_timers(flavor: Flavor) {
    let rt = flavor.build();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // More spinners than workers: every worker is always busy.
    let spinners: Vec<_> = (0..flavor.workers() * 2)
        .map(|i| {
            let stop = stop.clone();
            if i % 2 == 0 {
                rt.spawn(async move {
                    while !stop.load(SeqCst) {
                        kevent::task::yield_now().await;
                    }
                })
            } else {
                rt.spawn(std::future::poll_fn(move |cx| {
                    if stop.load(SeqCst) {
                        return std::task::Poll::Ready(());
                    }
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }))
            }
        })
        .collect();
    let sleeper = rt.spawn({
        let stop = stop.clone();
        async move {
            let start = Instant::now();
            sleep(ms(20)).await;
            stop.store(true, SeqCst);
            start.elapsed()
        }
    });
    let took = rt.block_on(async move {
        let took = sleeper.await.unwrap();
        for s in spinners {
            s.await.unwrap();
        }
        took
    });
    assert!(took >= ms(20));
}

// ---------------------------------------------------------------- after shutdown

const SHUT_DOWN: &str = "has shut down";

rt_test_sync!(@run crate::run_starved, a_sleep_on_a_runtime_that_has_shut_down_panics_instead_of_hanging:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
fn a_sleep_on_a_runtime_that_has_shut_down_panics_instead_of_hanging(flavor: Flavor) {
    // Created after the shutdown.
    let rt = flavor.build();
    let handle = rt.handle().clone();
    drop(rt);
    let msg = common::panic_message_of(|| handle.block_on(async { sleep(ms(10)).await }));
    assert!(msg.contains(SHUT_DOWN), "{msg}");
    let msg = common::panic_message_of(|| {
        handle.block_on(async { timeout(ms(10), std::future::pending::<()>()).await })
    });
    assert!(msg.contains(SHUT_DOWN), "{msg}");

    // Created before, first polled after.
    let rt = flavor.build();
    let handle = rt.handle().clone();
    let s = {
        let _enter = rt.enter();
        sleep(ms(10))
    };
    drop(rt);
    let msg = common::panic_message_of(|| handle.block_on(s));
    assert!(msg.contains(SHUT_DOWN), "{msg}");

    // Armed while the runtime ran, polled again after its shutdown.
    let rt = flavor.build();
    let handle = rt.handle().clone();
    let mut s = {
        let _enter = rt.enter();
        Box::pin(sleep(Duration::from_secs(3600)))
    };
    rt.block_on(async {
        assert!(poll!(s.as_mut()).is_pending());
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let msg = common::panic_message_of(|| handle.block_on(s));
    assert!(msg.contains(SHUT_DOWN), "{msg}");
}
