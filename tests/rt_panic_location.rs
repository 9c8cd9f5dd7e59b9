//! Misuse panics point at the caller: every API that panics on misuse is
//! `#[track_caller]`, so the panic's location is the line in this file
//! that misused it, not a line inside kevent.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Duration;

use kevent::net::UnixStream;
use kevent::reactor::Interest;
use kevent::runtime::{Builder, Handle, Runtime};

thread_local! {
    /// The file of the last panic on this thread.
    static LAST_PANIC_FILE: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether this thread is inside `panic_file` (other panics, a failed
    /// assertion among them, are reported as usual).
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which must panic, and returns the file its panic names.
fn panic_file<R>(f: impl FnOnce() -> R) -> String {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if EXPECTING.with(|e| e.get()) {
                let file = info.location().map(|l| l.file().to_string());
                LAST_PANIC_FILE.with(|p| *p.borrow_mut() = file);
            } else {
                default(info);
            }
        }));
    });
    LAST_PANIC_FILE.with(|p| p.borrow_mut().take());
    EXPECTING.with(|e| e.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|e| e.set(false));
    assert!(outcome.is_err(), "expected a panic, but the call returned");
    LAST_PANIC_FILE
        .with(|p| p.borrow_mut().take())
        .expect("the panic hook saw no location")
}

/// Asserts that `f` panics at a line of this file.
#[track_caller]
fn assert_panics_here<R>(what: &str, f: impl FnOnce() -> R) {
    let file = panic_file(f);
    assert_eq!(
        file,
        file!(),
        "{what} panicked inside kevent, not at its caller"
    );
}

fn runtime() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn builder_misuse_panics_at_the_caller() {
    assert_panics_here("worker_threads(0)", || {
        Builder::new_multi_thread().worker_threads(0);
    });
    assert_panics_here("max_blocking_threads(0)", || {
        Builder::new_multi_thread().max_blocking_threads(0);
    });
}

#[test]
fn join_error_into_panic_of_a_cancelled_task_panics_at_the_caller() {
    let rt = runtime();
    let err = rt.block_on(async {
        let t = kevent::spawn(std::future::pending::<()>());
        t.abort();
        t.await.unwrap_err()
    });
    assert!(err.is_cancelled());
    assert_panics_here("JoinError::into_panic", || err.into_panic());
}

// Closures, not fn items: passed as a function, the call's location would
// be the `FnOnce` shim's.
#[allow(clippy::redundant_closure)]
#[test]
fn using_the_runtime_from_outside_it_panics_at_the_caller() {
    assert_panics_here("Handle::current", || Handle::current());
    assert_panics_here("kevent::spawn", || kevent::spawn(async {}));
    assert_panics_here("spawn_blocking", || kevent::task::spawn_blocking(|| ()));
    assert_panics_here("sleep", || kevent::time::sleep(Duration::from_millis(1)));
    assert_panics_here("sleep_until", || {
        kevent::time::sleep_until(kevent::time::Instant::now())
    });
    assert_panics_here("timeout", || {
        kevent::time::timeout(Duration::from_millis(1), async {})
    });
    assert_panics_here("interval", || {
        kevent::time::interval(Duration::from_millis(1))
    });
    assert_panics_here("signal", || {
        kevent::signal::unix::signal(kevent::signal::unix::SignalKind::hangup())
    });
    assert_panics_here("UnixStream::pair", || UnixStream::pair());
}

#[test]
fn a_zero_interval_panics_at_the_caller() {
    let rt = runtime();
    let _enter = rt.enter();
    assert_panics_here("interval(0)", || kevent::time::interval(Duration::ZERO));
}

#[test]
fn nested_block_on_panics_at_the_caller() {
    let rt = runtime();
    let other = runtime();
    assert_panics_here("Runtime::block_on", || {
        rt.block_on(async { other.block_on(async {}) })
    });
    assert_panics_here("Handle::block_on", || {
        rt.block_on(async { Handle::current().block_on(async {}) })
    });
}

#[test]
fn io_with_both_directions_panics_at_the_caller() {
    let rt = runtime();
    let _enter = rt.enter();
    let (a, _b) = UnixStream::pair().unwrap();
    assert_panics_here("try_io(BOTH)", || a.try_io(Interest::BOTH, || Ok(())));
    assert_panics_here("async_io(BOTH)", || {
        let _future = a.async_io(Interest::BOTH, || Ok(()));
    });
}
