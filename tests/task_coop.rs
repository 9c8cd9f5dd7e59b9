//! The cooperative budget: `task::consume_budget`, `task::unconstrained`,
//! and kevent's timers and I/O returning `Pending` once a task has spent
//! its budget (so a task that always finds them ready still yields).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kevent::runtime::{Builder, Runtime};
use kevent::task::{consume_budget, unconstrained};

fn runtimes() -> Vec<Runtime> {
    vec![
        Builder::new_current_thread().build().unwrap(),
        Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap(),
    ]
}

/// How many `consume_budget` polls in a row complete before one yields.
async fn units_before_yield() -> usize {
    for n in 0..10_000 {
        if futures::poll!(std::pin::pin!(consume_budget())).is_pending() {
            return n;
        }
    }
    10_000
}

#[test]
fn consume_budget_yields_once_the_budget_is_spent() {
    for rt in runtimes() {
        let n = rt.block_on(async { kevent::spawn(units_before_yield()).await.unwrap() });
        assert!(n > 0 && n <= 128, "{n} units before yielding");
    }
}

#[test]
fn unconstrained_lifts_the_budget() {
    for rt in runtimes() {
        let n = rt.block_on(async {
            kevent::spawn(unconstrained(units_before_yield()))
                .await
                .unwrap()
        });
        assert_eq!(n, 10_000);
        // The budget applies again outside `unconstrained`.
        let n = rt.block_on(async { kevent::spawn(units_before_yield()).await.unwrap() });
        assert!(n <= 128, "{n}");
    }
}

#[test]
fn a_busy_loop_of_consume_budget_lets_other_tasks_run() {
    // One worker: the loop below would starve the flag's task forever if
    // `consume_budget` never yielded.
    for rt in runtimes() {
        let spins = rt.block_on(async {
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            let looping = kevent::spawn(async move {
                let mut spins = 0u64;
                while !f.load(Ordering::SeqCst) {
                    consume_budget().await;
                    spins += 1;
                }
                spins
            });
            kevent::spawn(async move { flag.store(true, Ordering::SeqCst) });
            looping.await.unwrap()
        });
        assert!(spins >= 1);
    }
}

#[test]
fn sleeps_already_due_yield_once_the_budget_is_spent() {
    for rt in runtimes() {
        rt.block_on(async {
            kevent::spawn(async {
                while futures::poll!(std::pin::pin!(consume_budget())).is_ready() {}
                // Budget spent: even a sleep that is due returns Pending.
                let due = kevent::time::sleep(Duration::ZERO);
                assert!(futures::poll!(std::pin::pin!(due)).is_pending());
                // After the yield, a fresh budget: it completes.
                kevent::time::sleep(Duration::ZERO).await;
            })
            .await
            .unwrap();
        });
    }
}

#[test]
fn ready_io_yields_once_the_budget_is_spent() {
    for rt in runtimes() {
        rt.block_on(async {
            kevent::spawn(async {
                let a = kevent::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let b = kevent::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                b.send_to(b"x", a.local_addr().unwrap()).await.unwrap();
                let mut buf = [0u8; 4];
                // Wait until the datagram is there and readiness known.
                a.readable().await.unwrap();
                while futures::poll!(std::pin::pin!(consume_budget())).is_ready() {}
                let recv = a.recv_from(&mut buf);
                assert!(
                    futures::poll!(std::pin::pin!(recv)).is_pending(),
                    "I/O ignored the budget"
                );
                let (n, _) = a.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"x");
            })
            .await
            .unwrap();
        });
    }
}
