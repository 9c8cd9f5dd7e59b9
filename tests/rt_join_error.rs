//! `JoinError`: it is `Send + Sync` (so `?` turns it into the usual boxed
//! and `anyhow` errors), and an aborted task whose destructor panics
//! reports that panic.

#[macro_use]
mod common;

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use common::{panic_text, Flavor};
use futures::channel::oneshot;
use kevent::task::JoinError;

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn join_error_is_send_and_sync() {
    assert_send_sync::<JoinError>();
}

/// `?` on a `JoinHandle`'s result inside a function returning a boxed
/// `Send + Sync` error: the conversion has to compile.
async fn boxed_question_mark(fail: bool) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    let v = kevent::spawn(async move {
        assert!(!fail, "the task failed on purpose");
        7
    })
    .await?;
    Ok(v)
}

/// The same with `anyhow`, the way most applications write it.
async fn anyhow_question_mark(fail: bool) -> anyhow::Result<u32> {
    let v = kevent::spawn(async move {
        assert!(!fail, "the task failed on purpose");
        8
    })
    .await?;
    Ok(v)
}

rt_test!(question_mark_converts_a_join_error_into_boxed_and_anyhow_errors);
async fn question_mark_converts_a_join_error_into_boxed_and_anyhow_errors(_: Flavor) {
    assert_eq!(boxed_question_mark(false).await.unwrap(), 7);
    assert_eq!(anyhow_question_mark(false).await.unwrap(), 8);

    let boxed = boxed_question_mark(true).await.unwrap_err();
    let join = boxed
        .downcast_ref::<JoinError>()
        .expect("a JoinError inside");
    assert!(join.is_panic());
    assert!(
        boxed.to_string().contains("the task failed on purpose"),
        "{boxed}"
    );

    let any = anyhow_question_mark(true).await.unwrap_err();
    assert!(any.downcast_ref::<JoinError>().unwrap().is_panic());
    assert!(
        any.to_string().contains("the task failed on purpose"),
        "{any}"
    );
}

/// Panics with `"bomb"` when dropped.
struct PanicOnDrop(Arc<AtomicUsize>);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        panic!("bomb");
    }
}

rt_test!(aborting_a_waiting_task_whose_drop_panics_reports_that_panic);
async fn aborting_a_waiting_task_whose_drop_panics_reports_that_panic(_: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let bomb = PanicOnDrop(drops.clone());
    let (started_tx, started_rx) = oneshot::channel();
    let h = kevent::spawn(async move {
        let _bomb = bomb;
        started_tx.send(()).unwrap();
        pending::<()>().await
    });
    started_rx.await.unwrap();
    h.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert!(!err.is_cancelled(), "{err:?}");
    assert_eq!(panic_text(&*err.into_panic()), "bomb");
    assert_eq!(drops.load(SeqCst), 1);
}

rt_test!(aborting_a_never_polled_task_whose_drop_panics_reports_that_panic);
async fn aborting_a_never_polled_task_whose_drop_panics_reports_that_panic(_: Flavor) {
    let drops = Arc::new(AtomicUsize::new(0));
    let bomb = PanicOnDrop(drops.clone());
    let h = kevent::spawn(async move {
        let _bomb = bomb;
        pending::<()>().await
    });
    // Aborted before any worker could poll it (current_thread: certainly;
    // multi_thread: nearly always, and either way the drop panics).
    h.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(panic_text(&*err.into_panic()), "bomb");
    assert_eq!(drops.load(SeqCst), 1);
}

rt_test!(aborting_a_task_whose_drop_is_quiet_still_reports_a_cancellation);
async fn aborting_a_task_whose_drop_is_quiet_still_reports_a_cancellation(_: Flavor) {
    let (started_tx, started_rx) = oneshot::channel();
    let h = kevent::spawn(async move {
        started_tx.send(()).unwrap();
        pending::<()>().await
    });
    started_rx.await.unwrap();
    h.abort();
    let err = h.await.unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(!err.is_panic(), "{err:?}");
}
