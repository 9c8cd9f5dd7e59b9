//! `kevent::sync` (tokio's runtime-agnostic primitives) and the
//! `select!` / `join!` / `try_join!` / `pin!` macros, used inside kevent
//! tasks with no tokio runtime anywhere.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{ms, Flavor};
use kevent::sync::{
    broadcast, mpsc, oneshot, watch, Barrier, Mutex, Notify, OnceCell, RwLock, Semaphore,
};
use kevent::time::sleep;

/// Runs `body` as a kevent task (not in `block_on`'s own future) and
/// checks that no tokio runtime is around it.
async fn in_a_task<F>(body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    kevent::spawn(async move {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "a tokio runtime is entered; the test would prove nothing"
        );
        body.await
    })
    .await
    .unwrap();
}

rt_test!(bounded_mpsc_carries_every_message_from_many_tasks: current_thread, multi_thread_2, multi_thread_4);
async fn bounded_mpsc_carries_every_message_from_many_tasks(_: Flavor) {
    in_a_task(async {
        let (tx, mut rx) = mpsc::channel::<(usize, usize)>(4);
        for p in 0..8 {
            let tx = tx.clone();
            kevent::spawn(async move {
                for i in 0..200 {
                    tx.send((p, i)).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut next = [0usize; 8];
        let mut total = 0;
        while let Some((p, i)) = rx.recv().await {
            assert_eq!(next[p], i, "producer {p} out of order");
            next[p] += 1;
            total += 1;
        }
        assert_eq!(total, 8 * 200);
    })
    .await;
}

rt_test!(a_full_bounded_mpsc_refuses_try_send_until_a_receive: current_thread, multi_thread_2);
async fn a_full_bounded_mpsc_refuses_try_send_until_a_receive(_: Flavor) {
    in_a_task(async {
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.try_send(1).unwrap();
        assert!(matches!(
            tx.try_send(2),
            Err(mpsc::error::TrySendError::Full(2))
        ));
        // A sender blocked on the full channel is released by a receive.
        let blocked = kevent::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await.unwrap() }
        });
        sleep(ms(5)).await;
        assert!(!blocked.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        blocked.await.unwrap();
        assert_eq!(rx.recv().await, Some(3));
    })
    .await;
}

rt_test!(unbounded_mpsc_and_blocking_recv_from_the_blocking_pool: current_thread, multi_thread_2);
async fn unbounded_mpsc_and_blocking_recv_from_the_blocking_pool(_: Flavor) {
    in_a_task(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        let consumer = kevent::task::spawn_blocking(move || {
            let mut sum = 0;
            while let Some(v) = rx.blocking_recv() {
                sum += v;
            }
            sum
        });
        for i in 1..=100 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(consumer.await.unwrap(), 5050);
    })
    .await;
}

rt_test!(oneshot_delivers_once_and_reports_a_dropped_sender: current_thread, multi_thread_2);
async fn oneshot_delivers_once_and_reports_a_dropped_sender(_: Flavor) {
    in_a_task(async {
        let (tx, rx) = oneshot::channel();
        kevent::spawn(async move {
            sleep(ms(2)).await;
            tx.send("hello").unwrap();
        });
        assert_eq!(rx.await.unwrap(), "hello");
        let (tx, rx) = oneshot::channel::<()>();
        kevent::spawn(async move { drop(tx) });
        assert!(rx.await.is_err());
    })
    .await;
}

rt_test!(watch_receivers_see_the_latest_value: current_thread, multi_thread_2, multi_thread_4);
async fn watch_receivers_see_the_latest_value(_: Flavor) {
    in_a_task(async {
        let (tx, rx) = watch::channel(0u32);
        let watchers: Vec<_> = (0..4)
            .map(|_| {
                let mut rx = rx.clone();
                kevent::spawn(async move {
                    while *rx.borrow_and_update() != 100 {
                        rx.changed().await.unwrap();
                    }
                })
            })
            .collect();
        for v in 1..=100 {
            tx.send(v).unwrap();
            if v % 10 == 0 {
                kevent::task::yield_now().await;
            }
        }
        for w in watchers {
            w.await.unwrap();
        }
    })
    .await;
}

rt_test!(broadcast_gives_every_receiver_every_message: current_thread, multi_thread_2);
async fn broadcast_gives_every_receiver_every_message(_: Flavor) {
    in_a_task(async {
        let (tx, _) = broadcast::channel::<u32>(64);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let mut rx = tx.subscribe();
                kevent::spawn(async move {
                    let mut got = Vec::new();
                    while let Ok(v) = rx.recv().await {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for v in 0..50 {
            tx.send(v).unwrap();
        }
        drop(tx);
        for r in receivers {
            assert_eq!(r.await.unwrap(), (0..50).collect::<Vec<_>>());
        }
    })
    .await;
}

rt_test!(mutex_held_across_awaits_serializes_tasks: current_thread, multi_thread_2, multi_thread_4);
async fn mutex_held_across_awaits_serializes_tasks(_: Flavor) {
    in_a_task(async {
        let counter = Arc::new(Mutex::new(0u64));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let counter = counter.clone();
                kevent::spawn(async move {
                    for _ in 0..100 {
                        let mut g = counter.lock().await;
                        let v = *g;
                        kevent::task::yield_now().await;
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*counter.lock().await, 800);
    })
    .await;
}

rt_test!(rwlock_lets_readers_share_and_writers_exclude: current_thread, multi_thread_2);
async fn rwlock_lets_readers_share_and_writers_exclude(_: Flavor) {
    in_a_task(async {
        let lock = Arc::new(RwLock::new(0u32));
        let r1 = lock.read().await;
        let r2 = lock.read().await;
        assert!(lock.try_write().is_err());
        let writer = kevent::spawn({
            let lock = lock.clone();
            async move { *lock.write().await += 1 }
        });
        sleep(ms(5)).await;
        assert!(!writer.is_finished());
        drop((r1, r2));
        writer.await.unwrap();
        assert_eq!(*lock.read().await, 1);
    })
    .await;
}

rt_test!(semaphore_bounds_concurrency_with_owned_permits: current_thread, multi_thread_2, multi_thread_4);
async fn semaphore_bounds_concurrency_with_owned_permits(_: Flavor) {
    in_a_task(async {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                kevent::spawn(async move {
                    let _permit = sem.acquire_owned().await.unwrap();
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    sleep(ms(1)).await;
                    inside.fetch_sub(1, SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let most = most.load(SeqCst);
        assert!((1..=3).contains(&most), "{most} tasks held permits at once");
        assert_eq!(sem.available_permits(), 3);
    })
    .await;
}

rt_test!(notify_one_wakes_a_waiting_task: current_thread, multi_thread_2);
async fn notify_one_wakes_a_waiting_task(_: Flavor) {
    in_a_task(async {
        let notify = Arc::new(Notify::new());
        let waiter = kevent::spawn({
            let notify = notify.clone();
            async move { notify.notified().await }
        });
        sleep(ms(5)).await;
        assert!(!waiter.is_finished());
        notify.notify_one();
        waiter.await.unwrap();
        // A permit stored before anyone waits is taken by the next wait.
        notify.notify_one();
        notify.notified().await;
    })
    .await;
}

rt_test!(barrier_releases_all_tasks_together_with_one_leader: current_thread, multi_thread_2, multi_thread_4);
async fn barrier_releases_all_tasks_together_with_one_leader(_: Flavor) {
    in_a_task(async {
        let barrier = Arc::new(Barrier::new(5));
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let barrier = barrier.clone();
                kevent::spawn(async move { barrier.wait().await.is_leader() })
            })
            .collect();
        let mut leaders = 0;
        for t in tasks {
            leaders += usize::from(t.await.unwrap());
        }
        assert_eq!(leaders, 1);
    })
    .await;
}

rt_test!(once_cell_initializes_once_under_concurrent_callers: current_thread, multi_thread_2, multi_thread_4);
async fn once_cell_initializes_once_under_concurrent_callers(_: Flavor) {
    in_a_task(async {
        let cell = Arc::new(OnceCell::new());
        let inits = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (cell, inits) = (cell.clone(), inits.clone());
                kevent::spawn(async move {
                    *cell
                        .get_or_init(|| async {
                            inits.fetch_add(1, SeqCst);
                            sleep(ms(2)).await;
                            7u32
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(inits.load(SeqCst), 1);
    })
    .await;
}

// ---------------------------------------------------------------- macros

rt_test!(select_takes_the_ready_branch_and_drops_the_other: current_thread, multi_thread_2, multi_thread_4);
async fn select_takes_the_ready_branch_and_drops_the_other(_: Flavor) {
    in_a_task(async {
        let (tx, rx) = oneshot::channel::<u32>();
        kevent::spawn(async move {
            sleep(ms(2)).await;
            tx.send(5).unwrap();
        });
        let got = kevent::select! {
            v = rx => v.unwrap(),
            _ = sleep(Duration::from_secs(10)) => panic!("the sleep won"),
        };
        assert_eq!(got, 5);
    })
    .await;
}

rt_test!(select_supports_biased_patterns_preconditions_and_else: current_thread, multi_thread_2);
async fn select_supports_biased_patterns_preconditions_and_else(_: Flavor) {
    in_a_task(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<u32>>();
        tx.send(None).unwrap();
        tx.send(Some(4)).unwrap();
        // A branch whose pattern does not match is disabled for that
        // select; with every branch disabled, `else` runs.
        let mut seen = Vec::new();
        let mut skipped = 0;
        loop {
            kevent::select! {
                Some(Some(v)) = rx.recv() => { seen.push(v); break; }
                else => skipped += 1,
            }
        }
        assert_eq!((seen, skipped), (vec![4], 1));

        // Preconditions disable branches; with all disabled, `else` runs.
        let enabled = false;
        let out = kevent::select! {
            _ = sleep(ms(1)), if enabled => "sleep",
            else => "else",
        };
        assert_eq!(out, "else");

        // `biased;` polls in order: both ready, the first always wins.
        for _ in 0..100 {
            let out = kevent::select! {
                biased;
                _ = std::future::ready(()) => 1,
                _ = std::future::ready(()) => 2,
            };
            assert_eq!(out, 1);
        }
    })
    .await;
}

rt_test!(unbiased_select_picks_among_ready_branches_at_random: current_thread, multi_thread_2);
async fn unbiased_select_picks_among_ready_branches_at_random(_: Flavor) {
    in_a_task(async {
        let mut picked = HashSet::new();
        for _ in 0..200 {
            picked.insert(kevent::select! {
                _ = std::future::ready(()) => 1,
                _ = std::future::ready(()) => 2,
                _ = std::future::ready(()) => 3,
            });
        }
        assert_eq!(picked, HashSet::from([1, 2, 3]));
    })
    .await;
}

rt_test!(join_runs_futures_concurrently_and_try_join_stops_at_the_first_error: current_thread, multi_thread_2);
async fn join_runs_futures_concurrently_and_try_join_stops_at_the_first_error(_: Flavor) {
    in_a_task(async {
        let started = std::time::Instant::now();
        let (a, b, c) = kevent::join!(
            async {
                sleep(ms(30)).await;
                1
            },
            async {
                sleep(ms(30)).await;
                "two"
            },
            kevent::spawn(async { 3.0 }),
        );
        assert_eq!((a, b, c.unwrap()), (1, "two", 3.0));
        assert!(
            started.elapsed() < ms(55),
            "{:?}: not concurrent",
            started.elapsed()
        );

        let ok: Result<(u8, u8), &str> = kevent::try_join!(async { Ok(1) }, async { Ok(2) });
        assert_eq!(ok, Ok((1, 2)));
        let never_done = Arc::new(AtomicUsize::new(0));
        let err: Result<((), ()), &str> = kevent::try_join!(async { Err("first") }, async {
            sleep(Duration::from_secs(10)).await;
            never_done.fetch_add(1, SeqCst);
            Ok(())
        });
        assert_eq!(err, Err("first"));
        assert_eq!(never_done.load(SeqCst), 0);
    })
    .await;
}

rt_test!(pin_lets_a_future_be_polled_by_reference_in_select: current_thread, multi_thread_2);
async fn pin_lets_a_future_be_polled_by_reference_in_select(_: Flavor) {
    in_a_task(async {
        let slow = sleep(ms(20));
        kevent::pin!(slow);
        let mut ticks = 0;
        loop {
            kevent::select! {
                _ = &mut slow => break,
                _ = sleep(ms(1)) => ticks += 1,
            }
        }
        assert!(
            ticks >= 1,
            "the long sleep was restarted or never polled by reference"
        );
    })
    .await;
}
