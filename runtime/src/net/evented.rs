//! A nonblocking mio socket tied to the ring: the wait-try-clear loop every
//! socket type shares.
//!
//! The ring reports readiness edges. A socket operation runs once its
//! direction looks ready; when it hits `WouldBlock`, the readiness it acted
//! on is cleared (unless a newer event arrived meanwhile) and the task waits
//! for the next edge.

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::{AsRawFd, FromRawFd};
use std::task::{ready, Context, Poll};

use std::sync::Arc;

use kevent_reactor::{Inbox, Interest, Outbox, Ready};

use crate::driver::slab::{Direction, ReadyEvent};
use crate::driver::Registration;

/// The one direction `interest` names, for `try_io`-style calls.
///
/// # Panics
///
/// With both directions: the caller must say which one `op` needs.
#[track_caller]
pub(crate) fn direction(interest: Interest) -> Direction {
    match (interest.is_readable(), interest.is_writable()) {
        (true, false) => Direction::Read,
        (false, true) => Direction::Write,
        _ => panic!(
            "`try_io`/`async_io` need one direction: pass `Interest::READABLE` or \
             `Interest::WRITABLE`, not {interest:?}"
        ),
    }
}

/// An initialised buffer as the `MaybeUninit` slice the inbox copies into.
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: same layout, and the inbox only ever writes initialised bytes
    // into it, so the caller's slice stays initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// The error for a raw read of a stream that receives through the ring.
fn received_through_ring() -> io::Error {
    io::Error::other(
        "this stream receives through the ring (io_uring), so its bytes are not in the socket \
         any more: read it with read/try_read/peek, or build the runtime with \
         `recv_through_ring(false)` (KEVENT_RECV=readiness) to read its socket directly",
    )
}

/// A nonblocking socket registered with the current runtime's ring.
#[derive(Debug)]
pub(crate) struct Evented<S: AsRawFd> {
    /// The ring registration. Dropped first: the fd leaves the ring while
    /// it is still open.
    reg: ManuallyDrop<Registration>,
    /// The nonblocking socket (an fd wrapper: mio's sockets).
    io: ManuallyDrop<S>,
}

impl<S: AsRawFd> Drop for Evented<S> {
    fn drop(&mut self) {
        let outbox = self.reg.armed_outbox().cloned();
        // SAFETY: `reg` is dropped here only, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.reg) };
        match outbox {
            // Bytes still queued for the ring: the outbox takes the fd and
            // closes it after the last one is sent. `S` is an fd wrapper,
            // so forgetting it leaks nothing but the fd the outbox owns.
            Some(outbox) if matches!(outbox.drained(), Ok(false)) => {
                let fd = self.io.as_raw_fd();
                // SAFETY: `io` owns `fd`, and is never dropped (so never
                // closes it): ownership moves to the outbox.
                outbox.adopt(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
            // SAFETY: `io` is dropped here only, and not used after.
            _ => unsafe { ManuallyDrop::drop(&mut self.io) },
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
        let reg = Registration::new_fd(io.as_raw_fd(), interest)?;
        Ok(Evented {
            reg: ManuallyDrop::new(reg),
            io: ManuallyDrop::new(io),
        })
    }

    /// Registers the listening socket `io` (already nonblocking): its port
    /// is free as soon as it is closed, whatever the ring holds.
    #[track_caller]
    pub(crate) fn new_listener(io: S) -> io::Result<Evented<S>> {
        let reg = Registration::new_listener_fd(io.as_raw_fd(), Interest::READABLE)?;
        Ok(Evented {
            reg: ManuallyDrop::new(reg),
            io: ManuallyDrop::new(io),
        })
    }
}

impl<S: AsRawFd> Evented<S> {
    /// Keeps this stream's reads on readiness (`recv(2)`), never through
    /// the ring.
    pub(crate) fn without_ring_recv(self) -> Evented<S> {
        self.reg.without_ring_recv();
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
    /// no bytes wait in an outbox: `check_raw_write`).
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
        if dir == Direction::Write {
            if let Some(outbox) = self.reg.armed_outbox() {
                return outbox.poll_writable(cx).map(Ok);
            }
        }
        self.reg.poll_ready(cx, dir).map_ok(|_| ())
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
            // Sending through the ring, writable unless a write found the
            // outbox full since the last send completed.
            if let Some(outbox) = self.reg.armed_outbox() {
                if outbox.poll_writable(cx).is_ready() {
                    ready |= Ready::WRITABLE;
                }
            } else if let Poll::Ready(ev) = self.reg.poll_ready(cx, Direction::Write)? {
                ready |= ev.ready;
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

    /// Reads (or peeks at) a stream's bytes received through the ring.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        inbox: &Inbox,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let len = dst.len();
        let res = self.poll_inbox(cx, |ev| self.reg.recv(inbox, dst, peek, ev));
        self.eof_after_own_sends(cx, len, res)
    }

    /// Holds back the peer's end of stream (a read of `len > 0` bytes that
    /// returned 0) while this stream's own sends through the ring are not
    /// seen done: see [`Outbox::poll_peer_eof`].
    pub(crate) fn eof_after_own_sends(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        res: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(0)) = res {
            if len > 0 {
                if let Some(outbox) = self.reg.armed_outbox() {
                    ready!(outbox.poll_peer_eof(cx));
                }
            }
        }
        res
    }

    /// Waits for the read side and runs `take` (an inbox read, which
    /// clears the readiness it acted on when it would block) until it does
    /// not return `WouldBlock`.
    fn poll_inbox(
        &self,
        cx: &mut Context<'_>,
        mut take: impl FnMut(ReadyEvent) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let ev = ready!(self.reg.poll_ready(cx, Direction::Read))?;
            match take(ev) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                res => return Poll::Ready(res),
            }
        }
    }

    /// Reads from the inbox into `bufs` in order, as far as it has bytes.
    fn recv_vectored(
        &self,
        inbox: &Inbox,
        bufs: &mut [IoSliceMut<'_>],
        ev: ReadyEvent,
    ) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            let len = buf.len();
            let n = self.reg.recv(inbox, as_uninit(buf), false, ev)?;
            total += n;
            // Stop before a call that could only block, or consume the
            // error meant for the next read.
            if n < len || inbox.is_empty() {
                break;
            }
        }
        Ok(total)
    }

    /// Fails if reading the socket itself could lose or reorder bytes: the
    /// stream receives through the ring (`try_io`/`async_io` reads,
    /// `into_std`).
    pub(crate) fn check_raw_read(&self) -> io::Result<()> {
        match self.reg.armed_inbox() {
            Some(_) => Err(received_through_ring()),
            None => Ok(()),
        }
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

    /// Like [`Evented::poll_io`] for a byte-stream transfer of `len` bytes.
    /// A short transfer means the kernel buffer was drained (or filled), so
    /// the next attempt would block: the readiness is cleared at once,
    /// saving that syscall. An event arriving meanwhile advances the tick
    /// and survives the clear.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let ev = ready!(self.reg.poll_ready(cx, dir))?;
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
}

impl<S: AsRawFd> Evented<S>
where
    for<'a> &'a S: Read + Write,
{
    /// `AsyncRead::poll_read` for a byte stream.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(inbox) = self.reg.stream_inbox() {
            return self.poll_recv(cx, inbox, as_uninit(buf), false);
        }
        let len = buf.len();
        let res = self.poll_transfer(cx, Direction::Read, len, |mut io| io.read(buf));
        self.eof_after_own_sends(cx, len, res)
    }

    /// `AsyncRead::poll_read_vectored` for a byte stream.
    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        let res = if let Some(inbox) = self.reg.stream_inbox() {
            self.poll_inbox(cx, |ev| self.recv_vectored(inbox, bufs, ev))
        } else {
            self.poll_transfer(cx, Direction::Read, len, |mut io| io.read_vectored(bufs))
        };
        self.eof_after_own_sends(cx, len, res)
    }

    /// `AsyncWrite::poll_write` for a byte stream.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(outbox) = self.reg.stream_outbox() {
            return Self::poll_outbox(cx, outbox, || self.send_now(outbox, buf));
        }
        self.poll_transfer(cx, Direction::Write, buf.len(), |mut io| io.write(buf))
    }

    /// `AsyncWrite::poll_write_vectored` for a byte stream.
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(outbox) = self.reg.stream_outbox() {
            return Self::poll_outbox(cx, outbox, || self.send_vectored_now(outbox, bufs));
        }
        let len = bufs.iter().map(|b| b.len()).sum();
        self.poll_transfer(cx, Direction::Write, len, |mut io| io.write_vectored(bufs))
    }

    /// Reads now if the socket looks readable; `WouldBlock` otherwise.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(inbox) = self.reg.armed_inbox() {
            return self.reg.try_recv(inbox, as_uninit(buf));
        }
        self.try_io(Direction::Read, |mut io| io.read(buf))
    }

    /// Vectored [`Evented::try_read`].
    pub(crate) fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        if let Some(inbox) = self.reg.armed_inbox() {
            return match self.reg.current_read() {
                Some(ev) => self.recv_vectored(inbox, bufs, ev),
                None => Err(io::ErrorKind::WouldBlock.into()),
            };
        }
        self.try_io(Direction::Read, |mut io| io.read_vectored(bufs))
    }

    /// Writes now if the socket looks writable (or, sending through the
    /// ring, if its outbox has room); `WouldBlock` otherwise.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(outbox) = self.reg.stream_outbox() {
            return self.send_now(outbox, buf);
        }
        self.try_io(Direction::Write, |mut io| io.write(buf))
    }

    /// Vectored [`Evented::try_write`].
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let Some(outbox) = self.reg.stream_outbox() {
            return self.send_vectored_now(outbox, bufs);
        }
        self.try_io(Direction::Write, |mut io| io.write_vectored(bufs))
    }

    /// Queues as much of `buf` as the outbox takes and starts a send if
    /// none is in flight; `WouldBlock` when the outbox is full.
    fn send_now(&self, outbox: &Arc<Outbox>, buf: &[u8]) -> io::Result<usize> {
        match outbox.write(buf)? {
            Some((n, start)) => {
                if start {
                    self.reg.start_send(outbox)?;
                }
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// [`send_now`](Evented::send_now) for slices in order, as far as the
    /// outbox takes them, all in one batch (one send for a response handed
    /// over as headers and body); `WouldBlock` only if it took nothing.
    fn send_vectored_now(&self, outbox: &Arc<Outbox>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match outbox.write_vectored(bufs)? {
            Some((n, start)) => {
                if start {
                    self.reg.start_send(outbox)?;
                }
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Runs `send` (a queueing write), waiting for room in the outbox (a
    /// completion of the send in flight) while it would block.
    fn poll_outbox(
        cx: &mut Context<'_>,
        outbox: &Outbox,
        mut send: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match send() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
            ready!(outbox.poll_room(cx))?;
        }
    }

    /// `AsyncWrite::poll_flush`: waits until the ring has sent what was
    /// written through it (at once when the stream writes its socket).
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.reg.armed_outbox() {
            Some(outbox) => outbox.poll_drained(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Shuts down part of the connection with `shutdown`; the write side
    /// only after the bytes queued in the outbox are sent (as the kernel
    /// sends its buffer before the FIN).
    pub(crate) fn shutdown_with(
        &self,
        how: std::net::Shutdown,
        shutdown: impl Fn(std::net::Shutdown) -> io::Result<()>,
    ) -> io::Result<()> {
        use std::net::Shutdown;
        let Some(outbox) = self.reg.armed_outbox() else {
            return shutdown(how);
        };
        if how == Shutdown::Read {
            return shutdown(how);
        }
        if outbox.shutdown_write()? {
            return shutdown(how);
        }
        // Deferred: the outbox shuts the write side once drained.
        if how == Shutdown::Both {
            shutdown(Shutdown::Read)?;
        }
        Ok(())
    }

    /// Fails if writing the socket itself could reorder bytes: bytes
    /// written through the ring are still being sent (`try_io`/`async_io`
    /// writes, `into_std`).
    pub(crate) fn check_raw_write(&self) -> io::Result<()> {
        match self.reg.armed_outbox() {
            Some(outbox) if !outbox.drained()? => Err(io::Error::other(
                "bytes written to this stream are still being sent through the ring (io_uring): \
                 flush it before writing its socket directly, or build the runtime with \
                 `send_through_ring(false)` (KEVENT_SEND=readiness)",
            )),
            _ => Ok(()),
        }
    }
}
