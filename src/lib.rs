//! # kevent
//!
//! An async runtime for Rust whose reactor is a kevent-style multi-consumer
//! event ring: ready events are published into a shared ring every worker
//! consumes from, idle workers sleep only in the ring's `wait`, a batch of
//! events wakes one sleeper, and each event carries an affinity hint so its
//! task runs where its cache is warm. On top sits a work-stealing scheduler
//! with tokio's API: porting a tokio program means renaming the crate.
//!
//! ```
//! #[kevent::main(flavor = "current_thread")]
//! async fn main() {
//!     let task = kevent::spawn(async { 6 * 7 });
//!     kevent::time::sleep(std::time::Duration::from_millis(1)).await;
//!     assert_eq!(task.await.unwrap(), 42);
//! }
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub use kevent_macros::{main, test};
pub use kevent_runtime::{fs, io, net, process, runtime, signal, spawn, sync, task, time};
pub use kevent_runtime::{join, pin, select, task_local, try_join};

/// hyper integration: executor and timer (feature `hyper`, on by default).
#[cfg(feature = "hyper")]
pub use kevent_runtime::hyper;

/// The kevent ring itself, usable without the runtime.
pub use kevent_reactor as reactor;
