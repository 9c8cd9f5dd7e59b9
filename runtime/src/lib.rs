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
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
mod loom;
pub mod net;
pub mod runtime;
mod scheduler;
pub mod signal;
pub mod task;
pub mod time;

pub use task::spawn;
