//! Task ids: `task::Id`, `task::id()`, `task::try_id()`, and the ids that
//! `JoinHandle`, `AbortHandle` and `JoinError` report.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::future::pending;
use std::sync::{Arc, Mutex};

use common::{panic_message_of, Flavor};
use futures::channel::oneshot;
use kevent::task::{self, AbortHandle, Id};

fn assert_id_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Display + std::fmt::Debug>() {}

#[test]
fn id_is_copy_eq_hash_display_and_debug() {
    assert_id_traits::<Id>();
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<AbortHandle>();
}

rt_test!(a_task_sees_the_id_its_join_handle_reports);
async fn a_task_sees_the_id_its_join_handle_reports(_: Flavor) {
    let h = kevent::spawn(async {
        kevent::task::yield_now().await;
        (task::id(), task::try_id())
    });
    let id = h.id();
    let (inside, tried) = h.await.unwrap();
    assert_eq!(inside, id);
    assert_eq!(tried, Some(id));
}

rt_test!(spawned_tasks_have_distinct_ids);
async fn spawned_tasks_have_distinct_ids(_: Flavor) {
    let handles: Vec<_> = (0..500)
        .map(|_| kevent::spawn(async { task::id() }))
        .collect();
    let from_handles: HashSet<Id> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(from_handles.len(), 500);
    let mut from_tasks = HashSet::new();
    for h in handles {
        from_tasks.insert(h.await.unwrap());
    }
    assert_eq!(from_tasks, from_handles);
}

rt_test!(a_blocking_closure_runs_with_its_own_id);
async fn a_blocking_closure_runs_with_its_own_id(_: Flavor) {
    let outer = kevent::spawn(async { task::id() });
    let blocking = kevent::task::spawn_blocking(task::id);
    let blocking_id = blocking.id();
    assert_ne!(blocking_id, outer.id());
    assert_eq!(blocking.await.unwrap(), blocking_id);
    outer.await.unwrap();
}

#[test]
fn ids_are_unique_across_runtimes() {
    let a = Flavor::CurrentThread.build();
    let b = Flavor::MultiThread(2).build();
    let ia = a.block_on(async { kevent::spawn(async { task::id() }).await.unwrap() });
    let ib = b.block_on(async { kevent::spawn(async { task::id() }).await.unwrap() });
    assert_ne!(ia, ib);
}

rt_test!(try_id_is_none_in_block_on_itself);
async fn try_id_is_none_in_block_on_itself(_: Flavor) {
    // The body of `block_on` is not a task.
    assert_eq!(task::try_id(), None);
    // ... and the id does not leak out of a task that ran meanwhile.
    kevent::spawn(async {}).await.unwrap();
    assert_eq!(task::try_id(), None);
}

#[test]
fn try_id_is_none_outside_any_runtime() {
    assert_eq!(task::try_id(), None);
}

#[test]
fn id_outside_a_task_panics_and_points_to_try_id() {
    let msg = panic_message_of(task::id);
    assert!(msg.contains("outside a task"), "{msg}");
    assert!(msg.contains("try_id"), "{msg}");
}

/// Records `task::try_id()` when dropped.
struct RecordIdOnDrop(Arc<Mutex<Option<Option<Id>>>>);

impl Drop for RecordIdOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(task::try_id());
    }
}

rt_test!(a_future_dropped_by_abort_sees_its_task_id);
async fn a_future_dropped_by_abort_sees_its_task_id(_: Flavor) {
    let seen = Arc::new(Mutex::new(None));
    let guard = RecordIdOnDrop(seen.clone());
    let (started_tx, started_rx) = oneshot::channel();
    let h = kevent::spawn(async move {
        let _guard = guard;
        started_tx.send(()).unwrap();
        pending::<()>().await
    });
    started_rx.await.unwrap();
    let id = h.id();
    h.abort();
    assert!(h.await.unwrap_err().is_cancelled());
    assert_eq!(*seen.lock().unwrap(), Some(Some(id)));
}

rt_test!(an_abort_handle_reports_the_id_and_aborts_the_task);
async fn an_abort_handle_reports_the_id_and_aborts_the_task(_: Flavor) {
    let (started_tx, started_rx) = oneshot::channel();
    let h = kevent::spawn(async move {
        started_tx.send(()).unwrap();
        pending::<()>().await
    });
    let abort = h.abort_handle();
    assert_eq!(abort.id(), h.id());
    assert!(!abort.is_finished());
    started_rx.await.unwrap();
    abort.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_cancelled());
    assert!(abort.is_finished());
    assert_eq!(err.id(), abort.id());
}

rt_test!(a_join_error_names_the_task_in_id_debug_and_display);
async fn a_join_error_names_the_task_in_id_debug_and_display(_: Flavor) {
    let panicked = kevent::spawn(async { panic!("boom") });
    let pid = panicked.id();
    let err = panicked.await.unwrap_err();
    assert_eq!(err.id(), pid);
    assert_eq!(
        format!("{err:?}"),
        format!("JoinError::Panic(Id({pid}), \"boom\")")
    );
    assert_eq!(
        err.to_string(),
        format!("task {pid} panicked with message \"boom\"")
    );

    let cancelled = kevent::spawn(pending::<()>());
    let cid = cancelled.id();
    cancelled.abort();
    let err = cancelled.await.unwrap_err();
    assert_eq!(err.id(), cid);
    assert_eq!(
        format!("{err:?}"),
        format!("JoinError::Cancelled(Id({cid}))")
    );
    assert_eq!(err.to_string(), format!("task {cid} was cancelled"));
}

#[test]
fn id_display_is_the_number_and_debug_wraps_it() {
    let rt = Flavor::CurrentThread.build();
    let id = rt.block_on(async { kevent::spawn(async { task::id() }).await.unwrap() });
    let n: u64 = id.to_string().parse().expect("Display is a plain number");
    assert!(n > 0);
    assert_eq!(format!("{id:?}"), format!("Id({n})"));
}
