//! tokio's runtime context on kevent's threads (feature `tokio-compat`).
//!
//! Crates written for tokio call its runtime from inside: tower-http's
//! `TimeoutLayer` calls `tokio::time::sleep`, axum's WebSocket upgrade
//! calls `tokio::spawn`, hyper-util's `HttpConnector` (and so reqwest)
//! opens a `tokio::net::TcpStream`. Each of those looks for a tokio
//! runtime in a thread-local, and panics ("there is no reactor running,
//! must be called from the context of a Tokio 1.x runtime") when it finds
//! none.
//!
//! With the feature on and [`Builder::tokio_compat`](super::Builder::tokio_compat)
//! left on, each kevent runtime starts a tokio runtime of one worker
//! thread (`<thread_name>-tokio`) and enters its `Handle` on every thread
//! that runs kevent tasks: the workers and blocking threads (for their
//! whole life) and the thread inside `block_on` (for the call). tokio's
//! lookups then find it, and:
//!
//! - kevent's own work stays on kevent: tasks from `kevent::spawn`, kevent
//!   sockets, timers, signals, the blocking pool;
//! - tokio's work runs on tokio's thread: its timer wheel
//!   (`tokio::time::{sleep, timeout, interval}`), its I/O driver (sockets
//!   from `tokio::net`), tasks from `tokio::spawn`, and closures from
//!   `tokio::task::spawn_blocking` (on tokio's blocking pool). A kevent task
//!   awaiting them is woken by tokio's thread through its kevent waker,
//!   like any cross-thread wakeup.
//!
//! Nothing here touches the ring or the scheduler: without the feature
//! (or with the switch off) kevent is exactly as it was.

use std::fmt;
use std::io;
use std::time::Duration;

use parking_lot::Mutex;

/// The tokio runtime a kevent runtime carries for tokio-built crates.
pub(crate) struct TokioCompat {
    /// Entered on kevent's threads; clones are cheap.
    handle: tokio::runtime::Handle,
    /// Owned here so that kevent's shutdown stops it; `None` once stopped.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl TokioCompat {
    /// Starts tokio's runtime: one worker thread, which also drives tokio's
    /// timers and I/O while it has no task to run.
    pub(crate) fn start(thread_name: &str) -> io::Result<TokioCompat> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{thread_name}-tokio"))
            .enable_all()
            .build()?;
        Ok(TokioCompat {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// The handle entered on kevent's threads.
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Stops tokio's runtime: its tasks are dropped, and its blocking
    /// threads are waited for at most `timeout` (`None`: until they end,
    /// as dropping a tokio runtime does).
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) {
        let Some(runtime) = self.runtime.lock().take() else {
            return;
        };
        match timeout {
            Some(t) => runtime.shutdown_timeout(t),
            None => drop(runtime),
        }
    }
}

impl fmt::Debug for TokioCompat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioCompat")
            .field("running", &self.runtime.lock().is_some())
            .finish()
    }
}
