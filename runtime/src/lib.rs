//! # kevent-runtime
//!
//! A work-stealing async runtime whose workers sleep in, and take their
//! events from, the kevent ring (`kevent-reactor`). Its API is tokio's, so
//! porting means renaming the crate.
//!
//! ```
//! use kevent_runtime::runtime::Runtime;
//! use std::time::Duration;
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let h = kevent_runtime::spawn(async {
//!         kevent_runtime::time::sleep(Duration::from_millis(1)).await;
//!         "done"
//!     });
//!     assert_eq!(h.await.unwrap(), "done");
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod driver;
pub mod fs;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
mod loom;
pub mod net;
pub mod process;
pub mod runtime;
mod scheduler;
pub mod signal;
pub mod task;
pub mod time;

pub use task::spawn;

/// Synchronization for async code: channels (`mpsc`, `oneshot`, `watch`,
/// `broadcast`), `Mutex`, `RwLock`, `Semaphore`, `Notify`, `Barrier`,
/// `OnceCell`.
///
/// This is tokio's `sync` module itself, built without any of tokio's
/// runtime: its primitives only use wakers, so they work in kevent tasks
/// (and across runtimes) exactly as in tokio. One difference: tokio's
/// channels count against tokio's cooperative budget, which is never set in
/// a kevent task, so a task that only ever finds its channel ready does not
/// yield on its own; kevent's own I/O, timers and `JoinHandle`s do.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// use kevent_runtime::sync::{mpsc, oneshot};
/// use std::time::Duration;
///
/// let task = kevent_runtime::spawn(async {
///     let (tx, mut rx) = mpsc::channel(8);
///     let (done_tx, done_rx) = oneshot::channel();
///     kevent_runtime::spawn(async move {
///         tx.send(42).await.unwrap();
///         done_tx.send(()).unwrap();
///     });
///     let (got, done) = kevent_runtime::join!(rx.recv(), done_rx);
///     done.unwrap();
///     kevent_runtime::select! {
///         _ = kevent_runtime::time::sleep(Duration::from_millis(1)) => got,
///         _ = std::future::pending::<()>() => unreachable!(),
///     }
/// });
/// assert_eq!(task.await.unwrap(), Some(42));
/// # });
/// ```
pub mod sync {
    #[doc(inline)]
    pub use tokio::sync::*;
}

/// tokio's `select!`, `join!`, `try_join!` and `pin!`, with tokio's syntax
/// and semantics. They call into no runtime: `select!` picks its first
/// branch with a thread-local random number (unless `biased;`), and reads
/// tokio's cooperative budget, which outside a tokio runtime never runs out.
#[doc(inline)]
pub use tokio::{join, pin, select, try_join};
