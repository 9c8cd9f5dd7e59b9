//! `task::block_in_place`: blocking on a worker hands its queued tasks to
//! the other workers; a current-thread runtime refuses with a clear panic.

use std::sync::mpsc;
use std::time::Duration;

use kevent::runtime::{Builder, Handle, Runtime};
use kevent::task::block_in_place;

fn multi(workers: usize) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .unwrap()
}

/// Tasks spawned by a task go to its worker's own queue; they must run
/// while that task blocks, waiting for them, inside `block_in_place`.
fn queued_tasks_run_while_their_worker_blocks(workers: usize) {
    let rt = multi(workers);
    let got = rt.block_on(async {
        kevent::spawn(async {
            let (tx, rx) = mpsc::channel();
            for i in 0..8 {
                let tx = tx.clone();
                kevent::spawn(async move { tx.send(i).unwrap() });
            }
            block_in_place(|| {
                let mut got: Vec<i32> = (0..8)
                    .map(|_| {
                        rx.recv_timeout(Duration::from_secs(5))
                            .expect("a queued task never ran")
                    })
                    .collect();
                got.sort();
                got
            })
        })
        .await
        .unwrap()
    });
    assert_eq!(got, (0..8).collect::<Vec<_>>());
}

#[test]
fn queued_tasks_run_while_the_only_worker_blocks() {
    queued_tasks_run_while_their_worker_blocks(1);
}

#[test]
fn queued_tasks_run_while_their_worker_blocks_2_workers() {
    queued_tasks_run_while_their_worker_blocks(2);
}

#[test]
fn queued_tasks_run_while_their_worker_blocks_4_workers() {
    queued_tasks_run_while_their_worker_blocks(4);
}

#[test]
fn timers_and_io_of_other_tasks_go_on_while_a_worker_blocks() {
    timers_and_io_go_on(2);
}

#[test]
fn timers_and_io_of_other_tasks_go_on_while_the_only_worker_blocks() {
    timers_and_io_go_on(1);
}

#[test]
fn the_only_worker_lent_again_and_again_never_stalls_the_others() {
    let rt = multi(1);
    rt.block_on(async {
        kevent::spawn(async {
            for i in 0..20 {
                let (tx, rx) = mpsc::channel();
                kevent::spawn(async move {
                    kevent::time::sleep(Duration::from_millis(1)).await;
                    tx.send(i).unwrap();
                });
                let got = block_in_place(|| rx.recv_timeout(Duration::from_secs(5)));
                assert_eq!(
                    got,
                    Ok(i),
                    "round {i}: the task did not run while the worker blocked"
                );
            }
        })
        .await
        .unwrap();
    });
}

fn timers_and_io_go_on(workers: usize) {
    let rt = multi(workers);
    rt.block_on(async {
        let (tx, rx) = mpsc::channel();
        let listener = kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tx2 = tx.clone();
        kevent::spawn(async move {
            kevent::time::sleep(Duration::from_millis(10)).await;
            tx2.send("timer").unwrap();
        });
        kevent::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            use kevent::io::AsyncReadExt;
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await.unwrap();
            tx.send("io").unwrap();
        });
        let blocked = kevent::spawn(async move {
            block_in_place(|| {
                use std::io::Write;
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.write_all(b"hi").unwrap();
                let mut got = vec![
                    rx.recv_timeout(Duration::from_secs(5)).unwrap(),
                    rx.recv_timeout(Duration::from_secs(5)).unwrap(),
                ];
                got.sort();
                got
            })
        });
        assert_eq!(blocked.await.unwrap(), vec!["io", "timer"]);
    });
}

#[test]
fn block_on_is_allowed_inside_block_in_place() {
    let rt = multi(2);
    let n = rt.block_on(async {
        kevent::spawn(async {
            block_in_place(|| {
                Handle::current().block_on(async {
                    kevent::time::sleep(Duration::from_millis(1)).await;
                    5
                })
            })
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 5);
}

#[test]
fn the_thread_is_a_worker_again_after_block_in_place() {
    let rt = multi(1);
    let n = rt.block_on(async {
        kevent::spawn(async {
            let a = block_in_place(|| 1);
            // Still inside the runtime: spawning and timers work.
            let b = kevent::spawn(async { 2 }).await.unwrap();
            kevent::time::sleep(Duration::from_millis(1)).await;
            a + b
        })
        .await
        .unwrap()
    });
    assert_eq!(n, 3);
}

#[test]
fn block_in_place_outside_workers_just_runs_the_closure() {
    assert_eq!(block_in_place(|| 1), 1);
    let rt = multi(1);
    // A multi-thread runtime's `block_on` caller is no worker.
    assert_eq!(rt.block_on(async { block_in_place(|| 2) }), 2);
    let n = rt.block_on(async { kevent::task::spawn_blocking(|| block_in_place(|| 3)).await });
    assert_eq!(n.unwrap(), 3);
}

#[test]
fn block_in_place_on_a_current_thread_runtime_panics_saying_what_to_use() {
    let rt = Builder::new_current_thread().build().unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { block_in_place(|| ()) })
    }))
    .unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert_eq!(
        msg,
        "`kevent::task::block_in_place` cannot be called on a current-thread runtime: its only \
         thread runs every task, so they would all stop. Use `kevent::task::spawn_blocking`, or \
         a multi-thread runtime (`#[kevent::main]`, `#[kevent::test(flavor = \"multi_thread\")]`, \
         `Builder::new_multi_thread`)"
    );
    // The runtime still works after the panic.
    assert_eq!(
        rt.block_on(async { kevent::spawn(async { 4 }).await.unwrap() }),
        4
    );
}
