//! Backends feed the ring with readiness from the operating system.
//!
//! The ring never names epoll, kqueue or io_uring: it sees this trait. A
//! backend is polled by at most one consumer at a time (the harvester), may
//! be woken from any thread while it sleeps, and reports readiness as
//! `(entry, Ready)` pairs, where `entry` is the value given at registration.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use crate::event::{Interest, Ready};
use crate::stream::StreamIo;

mod listen_set;
pub(crate) mod mio;
#[cfg(target_os = "linux")]
pub(crate) mod uring;
pub(crate) mod user;

thread_local! {
    /// The ring (its id) this thread last consumed from; 0: none.
    static CONSUMING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as one that consumes from ring `ring` (it
/// claimed events with one of its consumers). io_uring runs a request's
/// completion work on the thread that submitted it, so its backend lets
/// only such threads submit (`UringBackend::consumes_here`).
pub(crate) fn mark_consuming(ring: usize) {
    CONSUMING.with(|c| c.set(ring));
}

/// Unmarks the calling thread if it was marked for `ring` (its consumer
/// goes away).
pub(crate) fn unmark_consuming(ring: usize) {
    CONSUMING.with(|c| {
        if c.get() == ring {
            c.set(0);
        }
    });
}

/// The calling thread consumes from ring `ring`.
pub(crate) fn consumes(ring: usize) -> bool {
    CONSUMING.with(|c| c.get()) == ring
}

/// An identity of the calling thread, unique among live threads (never
/// 0): the address of its `CONSUMING` cell.
pub(crate) fn thread_tag() -> usize {
    CONSUMING.with(|c| c as *const std::cell::Cell<usize> as usize)
}

/// A source of OS readiness for the ring.
pub(crate) trait Poller: Send + Sync + fmt::Debug {
    /// Starts watching `fd` for `interest`, reporting it as `entry`.
    fn register(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()>;
    /// Starts watching the listening socket `fd`, as `register` does, but
    /// without the backend holding a reference to its file: once `fd` is
    /// closed (or its process exits) its port is free at once, whatever
    /// the backend still has in flight.
    fn register_listener(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        self.register(fd, entry, interest)
    }
    /// A home consumer is attached (`on`) or gone: from now on only its
    /// thread submits requests to the backend and sleeps in it (see
    /// `Consumer::set_home`). Backends where it would change nothing
    /// ignore it and report no home.
    fn set_home(&self, _on: bool) {}
    /// Whether a home consumer is attached (`set_home`).
    fn has_home(&self) -> bool {
        false
    }
    /// The calling thread claims with the home consumer: it is the home
    /// thread from now on.
    fn home_claims(&self) {}

    /// The home consumer, busy, looked at the others: `others_busy` if one
    /// of them was running (see `uring/home.rs`).
    fn home_sample(&self, _others_busy: bool) {}

    /// How many times the home closed to others' requests, busy all the
    /// time (io_uring; see `uring/home.rs`).
    fn home_closings(&self) -> u64 {
        0
    }
    /// Starts watching the stream socket `fd`, as `register` does, except
    /// that a backend that can receive for it (`ring_recv`) may wait to
    /// watch it until [`arm`](Poller::arm) or its first receive: an
    /// accepted connection's first use is then the one request it needs,
    /// made from the thread that serves it.
    fn register_stream(
        &self,
        fd: RawFd,
        entry: u64,
        interest: Interest,
        ring_recv: bool,
    ) -> io::Result<()> {
        let _ = ring_recv;
        self.register(fd, entry, interest)
    }
    /// Watches `entry` now if `register_stream` left it for later; before
    /// anyone waits for its readiness or looks at it.
    fn arm(&self, entry: u64) -> io::Result<()> {
        let _ = entry;
        Ok(())
    }
    /// Changes the interest of a watched `fd`.
    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()>;
    /// Stops watching `fd`, registered as `entry`.
    fn deregister(&self, fd: RawFd, entry: u64) -> io::Result<()>;
    /// The byte path of the stream socket `fd`, registered as `entry`:
    /// on readiness unless the backend moves bytes itself. `ring_recv` and
    /// `ring_send` say whether the ring's config lets it receive and send
    /// for the stream.
    fn stream(
        self: Arc<Self>,
        fd: RawFd,
        entry: u64,
        ring_recv: bool,
        ring_send: bool,
    ) -> StreamIo {
        let _ = (entry, ring_recv, ring_send);
        StreamIo::socket(fd)
    }

    /// Waits up to `timeout` (`None`: forever) for readiness, appending it to
    /// `out`. With `sigmask`, installs that signal mask atomically for the
    /// duration of the wait. Returns early when `wake` is called.
    fn poll(
        &self,
        out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> io::Result<()>;
    /// Collects what the OS already reported, without sleeping. Only the
    /// harvester may call it, as `poll`, unless the backend
    /// `drains_concurrently`.
    fn drain_now(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<()> {
        self.poll(out, Some(Duration::ZERO), None)
    }
    /// Whether `drain_now` may run on any thread at any time, beside a
    /// `poll` sleeping on another: true where reading what the kernel
    /// posted takes nothing from the sleeper (io_uring's completion queue);
    /// false where a poll, even a zero-timeout one, is the harvester's own
    /// (mio's `Poll` is one buffer and one epoll or kqueue descriptor).
    fn drains_concurrently(&self) -> bool {
        false
    }
    /// Where a consumer sleeps instead of a condition variable: a word
    /// the kernel moves when it posts an event from the sleeper's own task
    /// work (io_uring's completion tail, `uring/cq_tail.rs`), with the
    /// value to sleep on, `None` when events wait unread (read them
    /// first). `None` overall: on a condition variable.
    fn sleep_word(&self) -> Option<(&crate::loom::FutexWord, Option<u32>)> {
        None
    }
    /// Whether the consumer about to `poll` is the ring's only one (io_uring
    /// then sleeps in `io_uring_enter`, where no other consumer can be
    /// woken in vain and the kernel runs task work within the wait).
    fn set_sole_consumer(&self, _sole: bool) {}
    /// Makes a concurrent or the next `poll` return promptly.
    fn wake(&self) -> io::Result<()>;
    /// The backend's name, for logs and metrics.
    fn name(&self) -> &'static str;
    /// Syscalls the backend made while polling (waits and wakes).
    fn syscalls(&self) -> u64;
    /// Model checking only: readiness for `entry` as the OS would report
    /// it, seen only by a `poll` (whoever sleeps in it, or the next one).
    #[cfg(loom)]
    fn inject(&self, entry: u64, ready: Ready) {
        let _ = (entry, ready);
    }
}
