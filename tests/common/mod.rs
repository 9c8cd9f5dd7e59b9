//! Shared by the runtime integration tests (`rt_*.rs`): the four runtime
//! configurations every behaviour is checked under, a watchdog so a hang
//! fails its test instead of blocking CI, and small helpers.
//!
//! A behaviour is written once, as `async fn name(flavor: Flavor)` (run
//! inside `block_on` under a 20 s `kevent::time::timeout`) or as
//! `fn name(flavor: Flavor)` (builds and drives runtimes itself), and
//! `rt_test!` / `rt_test_sync!` turn it into one `#[test]` per
//! configuration: `name::current_thread`, `name::multi_thread_1`, ...
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use kevent::runtime::{Builder, Runtime};

/// How long an async test body may run before `timeout` fails it.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a whole test (building, driving and dropping its runtimes) may
/// take before the watchdog fails it; catches hangs `timeout` cannot (a
/// blocked `block_on` thread, a `Drop` that never returns).
pub const WATCHDOG: Duration = Duration::from_secs(40);

/// One runtime configuration under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `Builder::new_current_thread()`.
    CurrentThread,
    /// `Builder::new_multi_thread().worker_threads(n)`.
    MultiThread(usize),
}

impl Flavor {
    pub fn current_thread() -> Flavor {
        Flavor::CurrentThread
    }

    pub fn multi_thread_1() -> Flavor {
        Flavor::MultiThread(1)
    }

    pub fn multi_thread_2() -> Flavor {
        Flavor::MultiThread(2)
    }

    pub fn multi_thread_4() -> Flavor {
        Flavor::MultiThread(4)
    }

    /// Worker count the runtime reports.
    pub fn workers(self) -> usize {
        match self {
            Flavor::CurrentThread => 1,
            Flavor::MultiThread(n) => n,
        }
    }

    /// A builder for this configuration (nothing else set).
    pub fn builder(self) -> Builder {
        match self {
            Flavor::CurrentThread => Builder::new_current_thread(),
            Flavor::MultiThread(n) => {
                let mut b = Builder::new_multi_thread();
                b.worker_threads(n);
                b
            }
        }
    }

    /// Builds this configuration with `enable_all`.
    pub fn build(self) -> Runtime {
        self.builder()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("building a {self:?} runtime failed: {e}"))
    }
}

/// Runs `f` on a fresh thread and returns its result, re-raising its
/// panic; fails the test if `f` has not returned after [`WATCHDOG`] (the
/// stuck thread is leaked).
pub fn watchdog<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    watchdog_for(WATCHDOG, f)
}

/// [`watchdog`] with another limit.
pub fn watchdog_for<R: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("rt-test-body".into())
        .spawn(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
        })
        .expect("spawn test thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(r)) => {
            let _ = thread.join();
            r
        }
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("test hung: no result after {limit:?} (watchdog)"),
    }
}

/// Builds `flavor`, runs `body(flavor)` in its `block_on` under
/// [`BODY_TIMEOUT`], then drops the runtime; all under the watchdog.
pub fn run_async<F, Fut>(flavor: Flavor, body: F)
where
    F: FnOnce(Flavor) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    watchdog(move || {
        let rt = flavor.build();
        rt.block_on(async move {
            kevent::time::timeout(BODY_TIMEOUT, body(flavor))
                .await
                .unwrap_or_else(|_| panic!("test body timed out after {BODY_TIMEOUT:?}"))
        });
        drop(rt);
    })
}

/// Runs `body(flavor)` under the watchdog; the body builds its runtimes.
pub fn run_sync(flavor: Flavor, body: fn(Flavor)) {
    watchdog(move || body(flavor));
}

/// One `#[test]` per configuration for `async fn $name(Flavor)`; an
/// optional list (`rt_test!(name: multi_thread_2, multi_thread_4)`)
/// restricts the configurations; `rt_test!(@run path, name: ...)` uses
/// another runner with `run_async`'s signature.
#[allow(unused_macros)]
macro_rules! rt_test {
    ($name:ident) => {
        rt_test!($name: current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
    };
    ($name:ident : $($flavor:ident),+ $(,)?) => {
        rt_test!(@run crate::common::run_async, $name: $($flavor),+);
    };
    (@run $runner:path, $name:ident : $($flavor:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $flavor() {
                    $runner(crate::common::Flavor::$flavor(), super::$name);
                }
            )+
        }
    };
}

/// Like `rt_test!`, for `fn $name(Flavor)` bodies that build their own
/// runtimes (`@run` takes a runner with `run_sync`'s signature).
#[allow(unused_macros)]
macro_rules! rt_test_sync {
    ($name:ident) => {
        rt_test_sync!($name: current_thread, multi_thread_1, multi_thread_2, multi_thread_4);
    };
    ($name:ident : $($flavor:ident),+ $(,)?) => {
        rt_test_sync!(@run crate::common::run_sync, $name: $($flavor),+);
    };
    (@run $runner:path, $name:ident : $($flavor:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $flavor() {
                    $runner(crate::common::Flavor::$flavor(), super::$name);
                }
            )+
        }
    };
}

/// Shorthand for milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts its own drop in a shared counter.
#[derive(Debug)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new(count: &Arc<AtomicUsize>) -> DropCounter {
        DropCounter(count.clone())
    }
}

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (sleeping 1 ms between checks) until `cond` holds; panics with
/// `what` if it does not within `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not reached within {limit:?}: {what}"
        );
        kevent::time::sleep(ms(1)).await;
    }
}

/// Blocking version of [`eventually`] for code outside any runtime.
pub fn eventually_blocking(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not reached within {limit:?}: {what}"
        );
        std::thread::sleep(ms(1));
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic payload>".to_string())
}

/// Runs `f`, which must panic, and returns the panic's message.
#[track_caller]
pub fn panic_message_of<R>(f: impl FnOnce() -> R) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic, but the call returned"),
        Err(payload) => panic_text(&*payload),
    }
}
