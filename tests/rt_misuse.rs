//! Misuse panics with a message that says what went wrong: nested
//! `block_on`, spawning or creating timers outside a runtime, dropping a
//! runtime inside async code. After the panic, the runtime (and the
//! thread) must still work.

#[macro_use]
mod common;

use std::thread;
use std::time::Duration;

use common::{ms, panic_message_of, panic_text, watchdog, watchdog_for, Flavor};
use kevent::runtime::{Builder, Handle};
use kevent::time::sleep;

const NESTED: &str = "Cannot start a runtime from within a runtime";
const OUTSIDE: &str = "outside a kevent runtime";
const DROP_INSIDE: &str = "Cannot drop a runtime";
const NO_RUNTIME: &str = "no kevent runtime";

/// Spawns a task, sleeps and joins: the runtime still works.
fn assert_runtime_works(rt: &kevent::runtime::Runtime) {
    let v = rt.block_on(async {
        sleep(ms(1)).await;
        kevent::spawn(async {
            sleep(ms(1)).await;
            3
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 3);
}

// ---------------------------------------------------------------- nested block_on

rt_test_sync!(nested_block_on_panics);
fn nested_block_on_panics(flavor: Flavor) {
    let rt = flavor.build();
    let msg = panic_message_of(|| rt.block_on(async { rt.block_on(async {}) }));
    assert!(msg.contains(NESTED), "{msg}");
    assert_runtime_works(&rt);

    let other = Builder::new_current_thread().build().unwrap();
    let msg = panic_message_of(|| rt.block_on(async { other.block_on(async {}) }));
    assert!(msg.contains(NESTED), "{msg}");
    let msg = panic_message_of(|| rt.block_on(async { Handle::current().block_on(async { 1 }) }));
    assert!(msg.contains(NESTED), "{msg}");
    assert_runtime_works(&rt);
    assert_runtime_works(&other);
}

rt_test!(block_on_inside_a_task_panics);
async fn block_on_inside_a_task_panics(_: Flavor) {
    let err = kevent::spawn(async { Handle::current().block_on(async { 1 }) })
        .await
        .unwrap_err();
    assert!(err.is_panic());
    let msg = panic_text(&*err.into_panic());
    assert!(msg.contains(NESTED), "{msg}");
    assert_eq!(kevent::spawn(async { 2 }).await.unwrap(), 2);
}

/// `run_sync` with a 10 s watchdog: a failure here is a livelock that
/// keeps a core busy, so give up on it early.
fn run_short(flavor: Flavor, body: fn(Flavor)) {
    watchdog_for(Duration::from_secs(10), move || body(flavor));
}

rt_test_sync!(@run crate::run_short, panic_inside_block_on_leaves_the_thread_usable:
    current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
fn panic_inside_block_on_leaves_the_thread_usable(flavor: Flavor) {
    let rt = flavor.build();
    let msg = panic_message_of(|| {
        rt.block_on(async {
            // Spend some cooperative budget first.
            for _ in 0..10 {
                kevent::spawn(async {}).await.unwrap();
            }
            if true {
                panic!("user panic in block_on");
            }
        })
    });
    assert_eq!(msg, "user panic in block_on");
    assert_runtime_works(&rt);
    // Many budget-consuming polls afterwards, on this runtime and on a
    // multi-thread one driven from this same thread.
    let joins = |rt: &kevent::runtime::Runtime| {
        rt.block_on(async {
            for i in 0..1_000u32 {
                assert_eq!(kevent::spawn(async move { i }).await.unwrap(), i);
            }
            sleep(ms(1)).await;
        })
    };
    joins(&rt);
    let multi = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    joins(&multi);
}

// ---------------------------------------------------------------- outside a runtime

#[test]
fn spawn_outside_a_runtime_panics() {
    watchdog(|| {
        let msg = panic_message_of(|| kevent::spawn(async {}));
        assert!(msg.contains(OUTSIDE), "{msg}");
        let msg = panic_message_of(|| kevent::task::spawn_blocking(|| ()));
        assert!(msg.contains(OUTSIDE), "{msg}");
    });
}

rt_test_sync!(spawn_after_block_on_returned_panics_but_enter_allows_it);
fn spawn_after_block_on_returned_panics_but_enter_allows_it(flavor: Flavor) {
    let rt = flavor.build();
    rt.block_on(async {});
    let msg = panic_message_of(|| kevent::spawn(async {}));
    assert!(msg.contains(OUTSIDE), "{msg}");

    // A plain thread started from inside a task is outside the runtime.
    let msg = rt.block_on(async {
        kevent::spawn(async {
            thread::spawn(|| panic_message_of(|| kevent::spawn(async {})))
                .join()
                .unwrap()
        })
        .await
        .unwrap()
    });
    assert!(msg.contains(OUTSIDE), "{msg}");

    // `enter` makes the runtime current without driving it.
    let handle = {
        let _guard = rt.enter();
        assert!(Handle::try_current().is_ok());
        kevent::spawn(async { 6 })
    };
    assert!(Handle::try_current().is_err());
    assert_eq!(rt.block_on(handle).unwrap(), 6);
    let msg = panic_message_of(|| kevent::spawn(async {}));
    assert!(msg.contains(OUTSIDE), "{msg}");
}

#[test]
fn timers_outside_a_runtime_panic() {
    watchdog(|| {
        let msg = panic_message_of(|| sleep(ms(1)));
        assert!(msg.contains(NO_RUNTIME), "sleep: {msg}");
        let msg = panic_message_of(|| kevent::time::sleep_until(kevent::time::Instant::now()));
        assert!(msg.contains(NO_RUNTIME), "sleep_until: {msg}");
        let msg = panic_message_of(|| kevent::time::timeout(ms(1), async {}));
        assert!(msg.contains(NO_RUNTIME), "timeout: {msg}");
        let msg = panic_message_of(|| kevent::time::interval(ms(1)));
        assert!(msg.contains(NO_RUNTIME), "interval: {msg}");
    });
}

#[test]
fn handle_current_outside_a_runtime_panics() {
    watchdog(|| {
        let msg = panic_message_of(Handle::current);
        assert!(msg.contains(NO_RUNTIME), "{msg}");
        let err = Handle::try_current().unwrap_err();
        assert!(err.to_string().contains(NO_RUNTIME), "{err}");
    });
}

// ---------------------------------------------------------------- dropping a runtime in async code

rt_test_sync!(dropping_a_runtime_inside_block_on_panics);
fn dropping_a_runtime_inside_block_on_panics(flavor: Flavor) {
    let rt = flavor.build();
    let msg = panic_message_of(|| {
        rt.block_on(async {
            let inner = Builder::new_current_thread().build().unwrap();
            drop(inner);
        })
    });
    assert!(msg.contains(DROP_INSIDE), "{msg}");
    assert_runtime_works(&rt);
    // `shutdown_background` is the way to do it there.
    rt.block_on(async {
        let inner = Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        inner.shutdown_background();
    });
    assert_runtime_works(&rt);
}

rt_test!(dropping_a_runtime_inside_a_task_panics);
async fn dropping_a_runtime_inside_a_task_panics(_: Flavor) {
    let err = kevent::spawn(async {
        let inner = Builder::new_current_thread().build().unwrap();
        drop(inner);
    })
    .await
    .unwrap_err();
    assert!(err.is_panic());
    let msg = panic_text(&*err.into_panic());
    assert!(msg.contains(DROP_INSIDE), "{msg}");
    assert_eq!(kevent::spawn(async { 2 }).await.unwrap(), 2);
}

/// The whole text of each misuse message, as users see it: what went
/// wrong and what to do instead.
#[test]
fn misuse_messages_say_what_to_do() {
    let rt = Builder::new_current_thread().build().unwrap();
    let msg = panic_message_of(|| rt.block_on(async { rt.block_on(async {}) }));
    assert_eq!(
        msg,
        "Cannot start a runtime from within a runtime: `block_on` was called on a thread that \
         is already driving asynchronous tasks (inside `block_on`, `#[kevent::main]` or a \
         task). Use `.await` instead, or run the blocking code with \
         `kevent::task::spawn_blocking` (or, on a multi-thread runtime, inside \
         `kevent::task::block_in_place`)."
    );
    let msg = panic_message_of(Handle::current);
    assert_eq!(
        msg,
        "there is no kevent runtime on this thread: `Handle::current()` must be called from \
         inside `#[kevent::main]`, `Runtime::block_on`, a task, or after `Runtime::enter`"
    );
    let msg = panic_message_of(|| kevent::spawn(async {}));
    assert_eq!(
        msg,
        "`kevent::spawn` called outside a kevent runtime: call it from inside \
         `#[kevent::main]`, `Runtime::block_on` or another task, or keep a \
         `kevent::runtime::Handle` and use `Handle::spawn`"
    );
    let msg = panic_message_of(|| sleep(ms(1)));
    assert_eq!(
        msg,
        "there is no kevent runtime on this thread: I/O resources and timers must be created \
         inside `#[kevent::main]`, `Runtime::block_on`, a task, or after `Runtime::enter`"
    );
}

#[test]
fn enter_guards_dropped_out_of_order_panic_clearly() {
    let a = Builder::new_current_thread().build().unwrap();
    let b = Builder::new_current_thread().build().unwrap();
    let guard_a = a.enter();
    let guard_b = b.enter();
    let msg = panic_message_of(move || drop(guard_a));
    assert_eq!(
        msg,
        "runtime enter guards dropped out of order: an `EnterGuard` (from `Runtime::enter` or \
         `Handle::enter`) was dropped while a guard entered after it was still alive. Drop \
         guards in the reverse order of their creation (keep each in a scope of its own)."
    );
    // The later guard still holds: `b` is current until it drops, then none.
    assert_eq!(Handle::current().id(), b.handle().id());
    drop(guard_b);
    assert!(Handle::try_current().is_err());
    // In order, nothing to say.
    let ga = a.enter();
    let gb = b.enter();
    assert_eq!(Handle::current().id(), b.handle().id());
    drop(gb);
    assert_eq!(Handle::current().id(), a.handle().id());
    drop(ga);
    assert!(Handle::try_current().is_err());
}
