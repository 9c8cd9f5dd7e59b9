//! `Builder`'s thread knobs: `thread_name_fn`, `thread_stack_size`,
//! `on_thread_start`, `on_thread_stop`, on worker and blocking threads.

#[macro_use]
mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use common::{eventually_blocking, ms, Flavor};
use kevent::time::sleep;

thread_local! {
    /// Set by the start hook on the thread it runs on.
    static STARTED_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Where a task and a blocking closure ran: (thread names, whether the
/// start hook had run on each thread first).
fn run_some_work(rt: &kevent::runtime::Runtime) -> (HashSet<String>, bool) {
    let names = Arc::new(Mutex::new(HashSet::new()));
    let all_started = Arc::new(Mutex::new(true));
    let record = {
        let names = names.clone();
        let all_started = all_started.clone();
        move || {
            let name = thread::current().name().unwrap_or("<unnamed>").to_string();
            names.lock().unwrap().insert(name);
            if !STARTED_HERE.with(Cell::get) {
                *all_started.lock().unwrap() = false;
            }
        }
    };
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let record = record.clone();
                kevent::spawn(async move {
                    record();
                    sleep(ms(1)).await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let record = record.clone();
        kevent::task::spawn_blocking(record).await.unwrap();
    });
    let names = names.lock().unwrap().clone();
    let started = *all_started.lock().unwrap();
    (names, started)
}

rt_test_sync!(thread_name_fn_names_workers_and_blocking_threads: multi_thread_1, multi_thread_2, multi_thread_4);
fn thread_name_fn_names_workers_and_blocking_threads(flavor: Flavor) {
    let next = Arc::new(AtomicUsize::new(0));
    let rt = flavor
        .builder()
        .thread_name("ignored")
        .thread_name_fn(move || format!("app-thread-{}", next.fetch_add(1, SeqCst)))
        .build()
        .unwrap();
    let (names, _) = run_some_work(&rt);
    // The tasks ran on workers, the closure on a blocking thread; all of
    // them were named by the function.
    assert!(names.len() >= 2, "{names:?}");
    for name in &names {
        assert!(
            name.starts_with("app-thread-"),
            "thread {name:?} not named by thread_name_fn"
        );
    }
}

#[test]
fn thread_name_fn_names_the_blocking_threads_of_a_current_thread_runtime() {
    let rt = Flavor::CurrentThread
        .builder()
        .thread_name_fn(|| "ct-blocking".to_string())
        .build()
        .unwrap();
    let name = rt.block_on(async {
        kevent::task::spawn_blocking(|| thread::current().name().map(str::to_string))
            .await
            .unwrap()
    });
    assert_eq!(name.as_deref(), Some("ct-blocking"));
}

rt_test_sync!(on_thread_start_runs_on_each_thread_before_its_work_and_on_thread_stop_as_it_ends: multi_thread_1, multi_thread_2, multi_thread_4);
fn on_thread_start_runs_on_each_thread_before_its_work_and_on_thread_stop_as_it_ends(
    flavor: Flavor,
) {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (starts, stops) = (starts.clone(), stops.clone());
        flavor
            .builder()
            .on_thread_start(move || {
                STARTED_HERE.with(|s| s.set(true));
                starts.fetch_add(1, SeqCst);
            })
            .on_thread_stop(move || {
                stops.fetch_add(1, SeqCst);
            })
            .build()
            .unwrap()
    };
    // Every worker has started (and run its hook) once build returns
    // tasks; give them a moment to reach it.
    eventually_blocking("every worker ran the start hook", ms(5000), || {
        starts.load(SeqCst) >= flavor.workers()
    });
    let (_, all_started) = run_some_work(&rt);
    assert!(all_started, "work ran on a thread before its start hook");
    let started = starts.load(SeqCst);
    assert!(
        started > flavor.workers(),
        "the blocking thread ran no start hook"
    );
    assert_eq!(
        stops.load(SeqCst),
        0,
        "a thread stopped while the runtime runs"
    );
    drop(rt);
    // Workers stop before drop returns; blocking threads right after.
    eventually_blocking("every thread ran the stop hook", ms(5000), || {
        stops.load(SeqCst) == starts.load(SeqCst)
    });
    assert_eq!(
        starts.load(SeqCst),
        started,
        "a thread started after shutdown"
    );
}

/// The stack size of the calling thread, as pthreads reports it.
fn current_stack_size() -> usize {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before it is
    // read, and destroyed once; `pthread_self` is always valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
        let mut size = 0usize;
        assert_eq!(libc::pthread_attr_getstacksize(&attr, &mut size), 0);
        libc::pthread_attr_destroy(&mut attr);
        size
    }
}

rt_test_sync!(thread_stack_size_applies_to_workers_and_blocking_threads);
fn thread_stack_size_applies_to_workers_and_blocking_threads(flavor: Flavor) {
    const SIZE: usize = 6 * 1024 * 1024;
    let rt = flavor.builder().thread_stack_size(SIZE).build().unwrap();
    let (worker, blocking) = rt.block_on(async {
        let worker = kevent::spawn(async { current_stack_size() }).await.unwrap();
        let blocking = kevent::task::spawn_blocking(current_stack_size)
            .await
            .unwrap();
        (worker, blocking)
    });
    // pthreads may round up (guard page, alignment), never down.
    assert!(blocking >= SIZE, "blocking thread stack {blocking}");
    if flavor != Flavor::CurrentThread {
        assert!(worker >= SIZE, "worker stack {worker}");
    }
}
