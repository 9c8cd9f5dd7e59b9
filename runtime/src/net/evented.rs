//! A nonblocking mio socket tied to the ring: its registration, and the
//! wait-try-clear loop every socket type shares.
//!
//! The ring reports readiness edges. A socket operation runs once its
//! direction looks ready; when it hits `WouldBlock`, the readiness it acted
//! on is cleared (unless a newer event arrived meanwhile) and the task waits
//! for the next edge. A stream's reads and writes go through the
//! [`StreamIo`] its backend handed out (see `byte_stream.rs`), which does
//! the same on readiness or moves the bytes through the ring
//! (ARCHITECTURE.md, section 4), with the registration as its
//! [`Readiness`](kevent_reactor::Readiness).

use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::task::{Context, Poll};

use kevent_reactor::{Interest, Ready, StreamIo};

use crate::driver::slab::Direction;
use crate::driver::Registration;

/// The one direction `interest` names, for `try_io`-style calls.
///
/// # Panics
///
/// With both directions: the caller must say which one `op` needs.
#[track_caller]
pub(crate) fn direction(interest: Interest) -> Direction {
    let one = |i: Interest| interest == i;
    if one(Interest::READABLE) {
        Direction::Read
    } else if one(Interest::WRITABLE) {
        Direction::Write
    } else if one(Interest::PRIORITY) {
        Direction::Priority
    } else if one(Interest::ERROR) {
        Direction::Error
    } else {
        panic!(
            "`try_io`/`async_io` need one direction: pass `Interest::READABLE`, \
             `WRITABLE`, `PRIORITY` or `ERROR`, not {interest:?}"
        )
    }
}

/// A nonblocking socket registered with the current runtime's ring.
#[derive(Debug)]
pub(crate) struct Evented<S: AsRawFd> {
    /// The ring registration. Dropped first: the fd leaves the ring while
    /// it is still open.
    pub(super) reg: ManuallyDrop<Registration>,
    /// The nonblocking socket (an fd wrapper: mio's sockets).
    io: ManuallyDrop<S>,
    /// How a stream's bytes move (a plain socket's for listeners and
    /// datagram sockets, which use only the readiness above); a byte
    /// stream's reads and writes go through it (`byte_stream.rs`).
    pub(super) bytes: StreamIo,
}

impl<S: AsRawFd> Drop for Evented<S> {
    fn drop(&mut self) {
        // SAFETY: `reg` is dropped here only, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.reg) };
        let fd = self.io.as_raw_fd();
        // Bytes still queued for the ring: the byte path takes the fd and
        // closes it after the last one is sent. `S` is an fd wrapper, so
        // forgetting it leaks nothing but the fd handed over.
        // SAFETY: `io` owns `fd`, and is then never dropped (so never
        // closes it): ownership moves to the byte path.
        let handed_over = self
            .bytes
            .close_after_sends(|| unsafe { OwnedFd::from_raw_fd(fd) });
        if !handed_over {
            // SAFETY: `io` is dropped here only, and not used after.
            unsafe { ManuallyDrop::drop(&mut self.io) };
        }
    }
}

impl<S: AsRawFd> Evented<S> {
    /// Registers `io` (already nonblocking) with the current runtime.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub(crate) fn new(io: S, interest: Interest) -> io::Result<Evented<S>> {
        let fd = io.as_raw_fd();
        let reg = Registration::new_fd(fd, interest)?;
        Ok(Evented {
            reg: ManuallyDrop::new(reg),
            io: ManuallyDrop::new(io),
            bytes: StreamIo::socket(fd),
        })
    }

    /// Registers the stream socket `io` (already nonblocking) with the
    /// current runtime, its bytes moving as the ring's backend moves them.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub(crate) fn new_stream(io: S) -> io::Result<Evented<S>> {
        let (reg, bytes) = Registration::new_stream(io.as_raw_fd(), Interest::BOTH)?;
        Ok(Evented {
            reg: ManuallyDrop::new(reg),
            io: ManuallyDrop::new(io),
            bytes,
        })
    }

    /// Registers the listening socket `io` (already nonblocking): its port
    /// is free as soon as it is closed, whatever the ring holds.
    #[track_caller]
    pub(crate) fn new_listener(io: S) -> io::Result<Evented<S>> {
        let fd = io.as_raw_fd();
        let reg = Registration::new_listener_fd(fd, Interest::READABLE)?;
        Ok(Evented {
            reg: ManuallyDrop::new(reg),
            io: ManuallyDrop::new(io),
            bytes: StreamIo::socket(fd),
        })
    }
}

impl<S: AsRawFd> Evented<S> {
    /// Keeps this stream's reads on readiness (`recv(2)`), never through
    /// the ring.
    pub(crate) fn without_ring_recv(self) -> Evented<S> {
        self.bytes.without_ring_recv();
        self
    }

    /// The socket.
    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The ring registration.
    pub(crate) fn registration(&self) -> &Registration {
        &self.reg
    }

    /// Leaves the ring and hands back the socket (callers check first that
    /// no bytes wait in the ring: `check_raw`).
    pub(crate) fn into_inner(self) -> S {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so each field is taken once:
        // `reg` dropped here, `io` moved out.
        unsafe {
            ManuallyDrop::drop(&mut this.reg);
            ManuallyDrop::take(&mut this.io)
        }
    }

    /// Readiness in `dir`, or registers the task to be woken.
    pub(crate) fn poll_ready_dir(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
    ) -> Poll<io::Result<()>> {
        match dir {
            Direction::Read | Direction::Priority | Direction::Error => {
                self.reg.poll_ready(cx, dir).map_ok(|_| ())
            }
            Direction::Write => self.bytes.poll_write_ready(cx, &*self.reg).map_ok(|_| ()),
        }
    }

    /// Waits until `dir` looks ready.
    pub(crate) async fn ready_dir(&self, dir: Direction) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready_dir(cx, dir)).await
    }

    /// Readiness for any direction in `interest`, or registers the task to
    /// be woken by either.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<Ready>> {
        let mut ready = Ready::EMPTY;
        if interest.is_readable() {
            if let Poll::Ready(ev) = self.reg.poll_ready(cx, Direction::Read)? {
                ready |= ev.ready;
            }
        }
        if interest.is_writable() {
            if let Poll::Ready(r) = self.bytes.poll_write_ready(cx, &*self.reg)? {
                ready |= r;
            }
        }
        if ready.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(Ok(ready))
        }
    }

    /// Waits until any direction in `interest` looks ready.
    pub(crate) async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        poll_fn(|cx| self.poll_ready(cx, interest)).await
    }

    /// Runs `op` when `dir` is ready, waiting again whenever it would block.
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.reg.poll_io(cx, dir, || {
            kevent_reactor::syscalls::count(1);
            op(&self.io)
        })
    }

    /// Awaits `op` succeeding or failing with something other than
    /// `WouldBlock`.
    pub(crate) async fn io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_io(cx, dir, &mut op)).await
    }

    /// Waits for `dir` and runs `op` (a `read(2)`/`write(2)` of `len`
    /// bytes on a descriptor that is no socket: a pipe) until it does not
    /// block. A short transfer means the kernel buffer was drained (or
    /// filled), so the readiness is cleared at once, saving the syscall
    /// that would block; an event arriving meanwhile survives the clear.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let ev = std::task::ready!(self.reg.poll_ready(cx, dir))?;
            kevent_reactor::syscalls::count(1);
            match op(&self.io) {
                Ok(n) if n > 0 && n < len => {
                    self.reg.clear_readiness(ev);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.reg.clear_readiness(ev),
                res => return Poll::Ready(res),
            }
        }
    }

    /// Runs `op` now if `dir` looks ready; `WouldBlock` otherwise.
    pub(crate) fn try_io<R>(
        &self,
        dir: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.reg.try_io(dir, || {
            kevent_reactor::syscalls::count(1);
            op(&self.io)
        })
    }
}
