//! `task_local!`: `scope`, `sync_scope`, `with`, `try_with`, `get`,
//! `try_get`, across awaits, workers, nesting and drops.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use common::{ms, panic_message_of, Flavor};
use kevent::time::sleep;

kevent::task_local! {
    /// A number for the tests.
    static NUMBER: u32;
    pub static NAME: String;
}

kevent::task_local!(static SINGLE: u8);

rt_test!(a_scope_sets_the_value_across_awaits_and_workers);
async fn a_scope_sets_the_value_across_awaits_and_workers(_: Flavor) {
    let tasks: Vec<_> = (0..16u32)
        .map(|i| {
            kevent::spawn(NUMBER.scope(i, async move {
                let mut seen = Vec::new();
                for _ in 0..5 {
                    seen.push(NUMBER.get());
                    sleep(ms(1)).await;
                    kevent::task::yield_now().await;
                }
                (i, seen)
            }))
        })
        .collect();
    for t in tasks {
        let (i, seen) = t.await.unwrap();
        assert_eq!(seen, vec![i; 5], "task {i} saw another task's value");
    }
}

rt_test!(the_value_is_not_visible_outside_its_scope: current_thread, multi_thread_2);
async fn the_value_is_not_visible_outside_its_scope(_: Flavor) {
    assert!(NUMBER.try_with(|_| ()).is_err());
    assert!(NUMBER.try_get().is_err());
    NUMBER.scope(1, async { assert_eq!(NUMBER.get(), 1) }).await;
    assert!(
        NUMBER.try_get().is_err(),
        "the value leaked out of its scope"
    );
    // A task spawned from inside a scope does not inherit it.
    let inner = NUMBER
        .scope(2, async {
            kevent::spawn(async { NUMBER.try_get() }).await.unwrap()
        })
        .await;
    assert!(inner.is_err());
}

rt_test!(nested_scopes_shadow_and_restore: current_thread, multi_thread_2);
async fn nested_scopes_shadow_and_restore(_: Flavor) {
    NAME.scope("outer".to_string(), async {
        assert_eq!(NAME.get(), "outer");
        NAME.scope("inner".to_string(), async {
            sleep(ms(1)).await;
            assert_eq!(NAME.get(), "inner");
        })
        .await;
        assert_eq!(NAME.get(), "outer");
        NUMBER
            .scope(5, async {
                assert_eq!(NAME.with(|n| n.len()), 5);
                assert_eq!(NUMBER.get(), 5);
            })
            .await;
    })
    .await;
}

#[test]
fn sync_scope_sets_the_value_for_a_closure_and_nests() {
    let out = NUMBER.sync_scope(10, || {
        let inner = NUMBER.sync_scope(11, || NUMBER.get());
        (NUMBER.get(), inner)
    });
    assert_eq!(out, (10, 11));
    assert!(NUMBER.try_get().is_err());
    assert_eq!(SINGLE.sync_scope(3, || SINGLE.get()), 3);
}

#[test]
fn sync_scope_restores_the_outer_value_when_the_closure_panics() {
    NUMBER.sync_scope(1, || {
        let r = std::panic::catch_unwind(|| NUMBER.sync_scope(2, || panic!("inside")));
        assert!(r.is_err());
        assert_eq!(NUMBER.get(), 1);
    });
    assert!(NUMBER.try_get().is_err());
}

#[test]
fn with_outside_a_scope_panics_and_says_how_to_set_it() {
    let msg = panic_message_of(|| NUMBER.with(|n| *n));
    assert!(msg.contains("outside its scope"), "{msg}");
    assert!(msg.contains("scope") && msg.contains("try_with"), "{msg}");
}

#[test]
fn a_scope_entered_inside_with_of_the_same_key_panics_clearly() {
    let msg =
        panic_message_of(|| NUMBER.sync_scope(1, || NUMBER.with(|_| NUMBER.sync_scope(2, || ()))));
    assert!(msg.contains("inside `with`"), "{msg}");
}

/// Records `NUMBER` when dropped.
struct RecordOnDrop(Arc<Mutex<Option<Result<u32, kevent::task::AccessError>>>>);

impl Drop for RecordOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(NUMBER.try_get());
    }
}

rt_test!(an_aborted_scope_drops_its_future_with_the_value_set: current_thread, multi_thread_2);
async fn an_aborted_scope_drops_its_future_with_the_value_set(_: Flavor) {
    let seen = Arc::new(Mutex::new(None));
    let guard = RecordOnDrop(seen.clone());
    let (tx, rx) = kevent::sync::oneshot::channel::<()>();
    let task = kevent::spawn(NUMBER.scope(42, async move {
        let _guard = guard;
        tx.send(()).unwrap();
        std::future::pending::<()>().await
    }));
    rx.await.unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(*seen.lock().unwrap(), Some(Ok(42)));
}

rt_test!(take_value_removes_the_value_from_a_scope_future: current_thread);
async fn take_value_removes_the_value_from_a_scope_future(_: Flavor) {
    let fut = NUMBER.scope(9, async { NUMBER.try_get() });
    let mut fut = std::pin::pin!(fut);
    assert_eq!(fut.as_mut().take_value(), Some(9));
    assert!(fut.await.is_err());
}
