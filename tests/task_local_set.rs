//! `task::LocalSet` and `task::spawn_local`: `!Send` futures on the thread
//! that drives the set, on both runtime flavors.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use kevent::runtime::{Builder, Runtime};
use kevent::task::{self, JoinSet, LocalSet};

fn runtimes() -> Vec<Runtime> {
    vec![
        Builder::new_current_thread().build().unwrap(),
        Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap(),
    ]
}

#[test]
fn spawn_local_runs_not_send_futures_on_the_driving_thread() {
    for rt in runtimes() {
        let local = LocalSet::new();
        let out = local.block_on(&rt, async {
            let thread = std::thread::current().id();
            let counter = Rc::new(Cell::new(0));
            let mut handles = Vec::new();
            for i in 0..10 {
                let counter = counter.clone();
                handles.push(task::spawn_local(async move {
                    // Timers wake local tasks like any other.
                    kevent::time::sleep(Duration::from_millis(1)).await;
                    counter.set(counter.get() + i);
                    std::thread::current().id()
                }));
            }
            for h in handles {
                assert_eq!(
                    h.await.unwrap(),
                    thread,
                    "a local task ran on another thread"
                );
            }
            counter.get()
        });
        assert_eq!(out, 45);
    }
}

#[test]
fn run_until_inside_a_task_drives_the_set() {
    for rt in runtimes() {
        let n = rt.block_on(async {
            let local = LocalSet::new();
            local
                .run_until(async {
                    let v = Rc::new(RefCell::new(Vec::new()));
                    let v2 = v.clone();
                    task::spawn_local(async move {
                        v2.borrow_mut().push(1);
                        task::yield_now().await;
                        v2.borrow_mut().push(2);
                    })
                    .await
                    .unwrap();
                    let total: i32 = v.borrow().iter().sum();
                    total
                })
                .await
        });
        assert_eq!(n, 3);
    }
}

#[test]
fn awaiting_a_local_set_runs_its_tasks_to_completion() {
    for rt in runtimes() {
        let local = LocalSet::new();
        let done = Rc::new(Cell::new(0));
        for _ in 0..5 {
            let done = done.clone();
            // Spawned before the set runs: queued until it is driven.
            local.spawn_local(async move {
                kevent::time::sleep(Duration::from_millis(2)).await;
                let d = done.clone();
                task::spawn_local(async move { d.set(d.get() + 1) });
                done.set(done.get() + 1);
            });
        }
        rt.block_on(local);
        assert_eq!(done.get(), 10);
    }
}

#[test]
fn a_local_task_woken_from_another_thread_runs() {
    for rt in runtimes() {
        let local = LocalSet::new();
        let got = local.block_on(&rt, async {
            let (tx, rx) = kevent::sync::oneshot::channel();
            let not_send = Rc::new(());
            let h = task::spawn_local(async move {
                let _keep = not_send;
                rx.await.unwrap()
            });
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                tx.send(7).unwrap();
            });
            h.await.unwrap()
        });
        assert_eq!(got, 7);
    }
}

#[test]
fn dropping_a_local_set_drops_its_pending_futures() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let rt = Builder::new_current_thread().build().unwrap();
    let queued = Rc::new(Cell::new(false));
    let waiting = Rc::new(Cell::new(false));
    let local = LocalSet::new();
    let w = Flag(waiting.clone());
    local.block_on(&rt, async move {
        task::spawn_local(async move {
            let _w = w;
            std::future::pending::<()>().await;
        });
        task::yield_now().await;
    });
    let q = Flag(queued.clone());
    local.spawn_local(async move {
        let _q = q;
    });
    assert!(!waiting.get() && !queued.get());
    drop(local);
    assert!(
        waiting.get(),
        "a task waiting on a waker outlived its LocalSet"
    );
    assert!(queued.get(), "a queued task outlived its LocalSet");
}

#[test]
fn abort_and_join_errors_work_for_local_tasks() {
    let rt = Builder::new_current_thread().build().unwrap();
    LocalSet::new().block_on(&rt, async {
        let h = task::spawn_local(std::future::pending::<()>());
        let id = h.id();
        h.abort();
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.id(), id);
        let h = task::spawn_local(async { panic!("local boom") });
        let err = h.await.unwrap_err();
        assert!(err.is_panic());
        // task::id() names the local task while it runs.
        let h = task::spawn_local(async { task::id() });
        let id = h.id();
        assert_eq!(h.await.unwrap(), id);
    });
}

#[test]
fn join_set_spawn_local_joins_not_send_tasks() {
    let rt = Builder::new_current_thread().build().unwrap();
    let local = LocalSet::new();
    let sum = local.block_on(&rt, async {
        let mut set = JoinSet::new();
        for i in 0..4 {
            let rc = Rc::new(i);
            set.spawn_local(async move { *rc });
        }
        let other = LocalSet::new();
        set.spawn_local_on(async { 10 }, &other);
        let mut sum = 0;
        // The task on `other` runs only while `other` is driven.
        other
            .run_until(async {
                while let Some(r) = set.join_next().await {
                    sum += r.unwrap();
                }
            })
            .await;
        sum
    });
    assert_eq!(sum, 16);
}

#[test]
fn spawn_local_outside_a_local_set_panics_saying_what_to_use() {
    let rt = Builder::new_current_thread().build().unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            task::spawn_local(async {});
        })
    }))
    .unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert_eq!(
        msg,
        "`kevent::task::spawn_local` called outside a `LocalSet`: `!Send` tasks need a \
         `kevent::task::LocalSet` to run on. Spawn from inside `LocalSet::run_until`, \
         `LocalSet::block_on` or a task of the set, or use `LocalSet::spawn_local`"
    );
}
