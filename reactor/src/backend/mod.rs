//! Backends feed the ring with readiness from the operating system.
//!
//! The ring never names epoll, kqueue or io_uring: it sees this trait. A
//! backend is polled by at most one consumer at a time (the harvester), may
//! be woken from any thread while it sleeps, and reports readiness as
//! `(entry, Ready)` pairs, where `entry` is the value given at registration.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::event::{Interest, Ready};
use crate::inbox::Inbox;

mod listen_set;
pub(crate) mod mio;
#[cfg(target_os = "linux")]
mod send_ring;
#[cfg(target_os = "linux")]
pub(crate) mod uring;
pub(crate) mod user;

/// A source of OS readiness for the ring.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// Starts watching `fd` for `interest`, reporting it as `entry`.
    /// `here`: the calling thread consumes from the ring (see
    /// [`Backend::arm_recv`]). A thread that does not must never enter the
    /// kernel for the ring: its enter would submit whatever other threads
    /// queued and make it their owner, and the kernel then runs their
    /// completion work on it (interrupting its own blocking calls: a
    /// `read` with a timeout returns `EINTR`).
    fn register(&self, fd: RawFd, entry: u64, interest: Interest, here: bool) -> io::Result<()>;
    /// Starts watching the listening socket `fd`, as `register` does, but
    /// without the backend holding a reference to its file: once `fd` is
    /// closed (or its process exits) its port is free at once, whatever
    /// the backend still has in flight.
    fn register_listener(
        &self,
        fd: RawFd,
        entry: u64,
        interest: Interest,
        here: bool,
    ) -> io::Result<()> {
        self.register(fd, entry, interest, here)
    }
    /// Changes the interest of a watched `fd` (`here` as for `register`).
    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest, here: bool) -> io::Result<()>;
    /// Stops watching `fd`, registered as `entry`.
    /// `here` as for `register`.
    fn deregister(&self, fd: RawFd, entry: u64, here: bool) -> io::Result<()>;
    /// Makes the stream socket `fd` (registered as `entry`) receive
    /// through the ring into the returned inbox. `None`: this backend
    /// cannot; the caller keeps reading on readiness.
    ///
    /// `here`: the calling thread consumes from the ring, so the backend
    /// may make it the owner of the request (io_uring runs a request's
    /// completion work on the thread that submitted it; a worker that runs
    /// the socket's task then posts its completions itself).
    fn arm_recv(
        &self,
        fd: RawFd,
        entry: u64,
        here: bool,
    ) -> io::Result<Option<std::sync::Arc<Inbox>>> {
        let _ = (fd, entry, here);
        Ok(None)
    }
    /// Receives again for `entry` (its inbox drained below the mark, or
    /// its receive moves to this thread); `here` as for `arm_recv`.
    fn resume_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        let _ = (entry, here);
        Ok(())
    }
    /// Cancels `entry`'s receive; its last completion wakes the reader,
    /// who re-arms it from its own thread (see `Inbox::take`).
    fn cancel_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        let _ = (entry, here);
        Ok(())
    }
    /// An outbox for the stream socket `fd` registered as `entry`, to send
    /// through the ring; `None` where the backend cannot.
    fn new_outbox(
        &self,
        _fd: RawFd,
        _entry: u64,
    ) -> io::Result<Option<std::sync::Arc<crate::outbox::Outbox>>> {
        Ok(None)
    }

    /// Starts sending what `outbox` holds, unless a send is in flight.
    fn start_send(
        &self,
        _outbox: &std::sync::Arc<crate::outbox::Outbox>,
        _here: bool,
    ) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backend does not send through the ring",
        ))
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
    /// Collects what the OS already reported, without sleeping and without
    /// the harvester role (any thread, any time). `None`: this backend can
    /// only harvest in `poll`, under the role.
    fn drain_now(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<Option<usize>> {
        let _ = out;
        Ok(None)
    }
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
