//! `task::JoinSet`: spawning into a set, joining in completion order,
//! aborting, shutting down, detaching, and what dropping it does.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, ms, panic_message_of, panic_text, DropCounter, Flavor};
use kevent::sync::oneshot;
use kevent::task::JoinSet;
use kevent::time::sleep;

rt_test!(join_next_returns_every_output_then_none);
async fn join_next_returns_every_output_then_none(_: Flavor) {
    let mut set = JoinSet::new();
    assert!(set.is_empty());
    for i in 0..200u64 {
        set.spawn(async move {
            if i % 3 == 0 {
                kevent::task::yield_now().await;
            }
            i
        });
    }
    assert_eq!(set.len(), 200);
    let mut seen = HashSet::new();
    while let Some(res) = set.join_next().await {
        assert!(seen.insert(res.unwrap()));
        assert_eq!(set.len(), 200 - seen.len());
    }
    assert_eq!(seen, (0..200).collect());
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
}

rt_test!(join_next_gives_tasks_in_the_order_they_finish: current_thread, multi_thread_2, multi_thread_4);
async fn join_next_gives_tasks_in_the_order_they_finish(_: Flavor) {
    let mut set = JoinSet::new();
    let mut ids = Vec::new();
    for delay in [60u64, 20, 40] {
        ids.push((
            set.spawn(async move {
                sleep(ms(delay)).await;
                delay
            })
            .id(),
            delay,
        ));
    }
    let mut order = Vec::new();
    while let Some(res) = set.join_next_with_id().await {
        let (id, delay) = res.unwrap();
        assert!(
            ids.contains(&(id, delay)),
            "id {id} does not match delay {delay}"
        );
        order.push(delay);
    }
    assert_eq!(order, [20, 40, 60]);
}

rt_test!(try_join_next_is_none_until_a_task_has_finished);
async fn try_join_next_is_none_until_a_task_has_finished(_: Flavor) {
    let mut set = JoinSet::new();
    assert!(set.try_join_next().is_none(), "empty set");
    let (tx, rx) = oneshot::channel::<u32>();
    set.spawn(async move { rx.await.unwrap() });
    kevent::task::yield_now().await;
    assert!(set.try_join_next().is_none(), "the task is still waiting");
    tx.send(9).unwrap();
    let mut got = None;
    eventually(
        "try_join_next returns the output",
        Duration::from_secs(5),
        || {
            got = set.try_join_next();
            got.is_some()
        },
    )
    .await;
    assert_eq!(got.unwrap().unwrap(), 9);
    assert!(set.is_empty());
}

rt_test!(abort_all_cancels_every_waiting_task);
async fn abort_all_cancels_every_waiting_task(_: Flavor) {
    let mut set = JoinSet::new();
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..50 {
        let guard = DropCounter::new(&drops);
        set.spawn(async move {
            let _guard = guard;
            pending::<()>().await
        });
    }
    set.spawn(async {});
    kevent::task::yield_now().await;
    set.abort_all();
    let (mut cancelled, mut finished) = (0, 0);
    while let Some(res) = set.join_next().await {
        match res {
            Ok(()) => finished += 1,
            Err(e) => {
                assert!(e.is_cancelled(), "{e:?}");
                cancelled += 1;
            }
        }
    }
    // The task with nothing to wait for may have finished before the abort.
    assert_eq!(cancelled + finished, 51);
    assert!(cancelled >= 50);
    assert_eq!(drops.load(SeqCst), 50);
}

rt_test!(an_abort_handle_from_spawn_cancels_only_its_task);
async fn an_abort_handle_from_spawn_cancels_only_its_task(_: Flavor) {
    let mut set = JoinSet::new();
    let doomed = set.spawn(pending::<u32>());
    set.spawn(async {
        sleep(ms(5)).await;
        1
    });
    doomed.abort();
    let first = set.join_next_with_id().await.unwrap();
    let err = first.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.id(), doomed.id());
    assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
}

rt_test!(shutdown_aborts_and_waits_for_every_task);
async fn shutdown_aborts_and_waits_for_every_task(_: Flavor) {
    let mut set = JoinSet::new();
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let guard = DropCounter::new(&drops);
        set.spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(60)).await;
        });
    }
    set.shutdown().await;
    assert!(set.is_empty());
    // Every future has been dropped by the time shutdown returns.
    assert_eq!(drops.load(SeqCst), 100);
}

rt_test!(dropping_the_set_aborts_its_tasks);
async fn dropping_the_set_aborts_its_tasks(_: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let guard = DropCounter::new(&drops);
        set.spawn(async move {
            let _guard = guard;
            pending::<()>().await
        });
    }
    kevent::task::yield_now().await;
    drop(set);
    eventually("every task dropped", Duration::from_secs(5), || {
        drops.load(SeqCst) == 20
    })
    .await;
}

rt_test!(detach_all_lets_the_tasks_run_on);
async fn detach_all_lets_the_tasks_run_on(_: Flavor) {
    let done = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let done = done.clone();
        set.spawn(async move {
            sleep(ms(5)).await;
            done.fetch_add(1, SeqCst);
        });
    }
    set.detach_all();
    assert!(set.is_empty());
    assert!(set.join_next().await.is_none());
    drop(set);
    eventually("every detached task ran", Duration::from_secs(5), || {
        done.load(SeqCst) == 20
    })
    .await;
}

rt_test!(a_panicking_task_reports_its_panic_through_join_next);
async fn a_panicking_task_reports_its_panic_through_join_next(_: Flavor) {
    let mut set = JoinSet::new();
    let id = set.spawn(async { panic!("set member failed") }).id();
    let err = set.join_next().await.unwrap().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.id(), id);
    assert_eq!(panic_text(&*err.into_panic()), "set member failed");
}

rt_test!(blocking_closures_join_the_set);
async fn blocking_closures_join_the_set(_: Flavor) {
    let mut set = JoinSet::new();
    for i in 0..8u32 {
        set.spawn_blocking(move || {
            std::thread::sleep(ms(2));
            i
        });
    }
    set.spawn(async { 100 });
    let mut sum = 0;
    while let Some(res) = set.join_next().await {
        sum += res.unwrap();
    }
    assert_eq!(sum, 28 + 100);
}

rt_test!(join_next_is_cancel_safe_in_select: current_thread, multi_thread_2);
async fn join_next_is_cancel_safe_in_select(_: Flavor) {
    // In a task: on a current-thread runtime, timers never fire while the
    // `block_on` future wakes itself on every poll (a separate, known bug).
    kevent::spawn(async {
        let mut set = JoinSet::new();
        for i in 0..20u64 {
            set.spawn(async move {
                sleep(ms(i % 7)).await;
                i
            });
        }
        let mut got = Vec::new();
        while !set.is_empty() {
            // Each time the yield wins, a pending `join_next` is dropped.
            kevent::select! {
                res = set.join_next() => got.push(res.unwrap().unwrap()),
                _ = kevent::task::yield_now() => {}
            }
        }
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    })
    .await
    .unwrap();
}

rt_test!(join_all_returns_every_output);
async fn join_all_returns_every_output(_: Flavor) {
    let set: JoinSet<u32> = (0..10u32).map(|i| async move { i + 1 }).collect();
    assert_eq!(set.len(), 10);
    let mut out = set.join_all().await;
    out.sort_unstable();
    assert_eq!(out, (1..=10).collect::<Vec<_>>());
}

rt_test!(join_all_resumes_a_task_panic: current_thread, multi_thread_2);
async fn join_all_resumes_a_task_panic(_: Flavor) {
    let mut set = JoinSet::new();
    set.spawn(async { panic!("inner failure") });
    let outer = kevent::spawn(set.join_all());
    let err = outer.await.unwrap_err();
    assert_eq!(panic_text(&*err.into_panic()), "inner failure");
}

#[test]
fn spawn_on_a_handle_works_from_outside_the_runtime() {
    let rt = Flavor::MultiThread(2).build();
    let mut set = JoinSet::new();
    for i in 0..10u32 {
        set.spawn_on(async move { i }, rt.handle());
    }
    set.spawn_blocking_on(|| 10u32, rt.handle());
    let sum = rt.block_on(async {
        let mut sum = 0;
        while let Some(res) = set.join_next().await {
            sum += res.unwrap();
        }
        sum
    });
    assert_eq!(sum, 55);
}

#[test]
fn spawn_outside_a_runtime_panics_and_points_to_spawn_on() {
    let mut set = JoinSet::<()>::new();
    let msg = panic_message_of(|| set.spawn(async {}));
    assert!(msg.contains("outside a kevent runtime"), "{msg}");
    assert!(msg.contains("spawn_on"), "{msg}");
}

rt_test!(a_set_with_many_waiting_tasks_joins_each_finisher: current_thread, multi_thread_2, multi_thread_4);
async fn a_set_with_many_waiting_tasks_joins_each_finisher(_: Flavor) {
    // 20 000 tasks wait on their own channel; they are released one at a
    // time and each join must return exactly the released one. A
    // `join_next` that polled every task in the set would make this
    // 200 million polls, far past the test's 20 s limit; polling only the
    // woken ones makes it 40 000.
    let started = std::time::Instant::now();
    let mut set = JoinSet::new();
    let mut senders = Vec::new();
    for i in 0..20_000u32 {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        set.spawn(async move {
            rx.await.unwrap();
            i
        });
    }
    for (i, tx) in senders.into_iter().enumerate().rev() {
        tx.send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), i as u32);
    }
    assert!(set.join_next().await.is_none());
    eprintln!("20 000 joins one at a time: {:?}", started.elapsed());
}
