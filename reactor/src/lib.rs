//! # kevent-reactor: the kevent ring
//!
//! A multi-consumer event ring in the shape Ulrich Drepper and Evgeniy
//! Polyakov argued out for Linux's kevent in 2006: ready events are
//! published at the front of a bounded ring, any number of consumer threads
//! claim them and later commit them, idle consumers sleep only in
//! [`Consumer::wait`], a batch of events wakes one sleeper (all of them for
//! an event flagged [`Flags::WAKEUP_ALL`]), and every entry may carry a
//! per-consumer affinity hint.
//!
//! Sources are file descriptors (through mio: epoll or kqueue), user events
//! any thread can post, timers with relative or absolute deadlines, and
//! signals. Readiness coalesces per registration, which sits in the ring at
//! most once and is dispatched to one consumer at a time, so a ring far
//! smaller than the number of ready sources loses nothing.
//!
//! ```
//! use kevent_reactor::{Backend, Config, Flags, Kevent, Token};
//! use std::time::Duration;
//!
//! let kq = Kevent::new(Config::default().backend(Backend::UserSpace))?;
//! let timer = kq.add_timer(Token(1), Duration::from_millis(5), Flags::NONE)?;
//! let mut consumer = kq.consumer()?;
//! let seen = consumer.front();
//! consumer.wait(seen, 1, Duration::from_secs(5))?;
//! let events = consumer.claim(8).to_vec();
//! assert_eq!(events[0].token, Token(1));
//! assert!(events[0].ready.contains(kevent_reactor::Ready::TIMER));
//! consumer.commit(events.len());
//! kq.deregister(timer)?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod backend;
mod config;
mod consumer;
mod event;
#[cfg(target_os = "linux")]
mod futex;
mod harvest;
mod id_hash;
mod kevent;
#[doc(hidden)]
pub mod loom;
mod overflow;
mod registration;
mod ring;
mod signal;
mod stream;
pub mod syscalls;
mod timer;
mod waiters;
mod wakers;
mod wheel;

#[cfg(target_os = "linux")]
pub use crate::backend::uring::{FileRing, FileRingHost, OUTBOX_LIMIT};
pub use crate::config::{Backend, Config};
pub use crate::consumer::{Consumer, ConsumerStats, WaitStatus};
pub use crate::event::{Event, Flags, Hint, Interest, Ready, Token};
#[doc(hidden)]
pub use crate::id_hash::{IdHasher, IdMap};
pub use crate::kevent::{Kevent, RingStats};
pub use crate::registration::Key;
pub use crate::stream::{Direction, Readiness, StreamIo};
pub use crate::timer::{Deadline, Timeout};
pub use crate::waiters::BUSY_CLAIM;
pub use crate::wakers::WakerList;
