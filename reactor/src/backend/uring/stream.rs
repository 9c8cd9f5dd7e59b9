//! io_uring's byte path for one stream: the receive into its inbox and the
//! write-behind from its outbox, each armed at the stream's first read or
//! first write, and the decisions that go with them (pausing, resuming and
//! moving the receive, starting the next send, holding the peer's end of
//! stream back until our own sends are seen done). A direction the ring
//! does not carry falls back to the readiness path ([`Socket`]).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use super::recv::Inbox;
use super::send::Outbox;
use super::UringBackend;
use crate::event::{Interest, Ready};
use crate::stream::{poll_until_done, try_now, Direction, Readiness, Socket};

/// How a stream's reads go.
#[derive(Debug)]
enum RecvPath {
    /// `recv(2)` on readiness.
    Socket,
    /// From the inbox the ring receives into.
    Inbox(Arc<Inbox>),
    /// Arming the receive failed. The socket's poll may already watch
    /// writability only, so reading it on readiness could wait for an
    /// event that never comes: every read reports the error instead.
    Failed(io::ErrorKind, String),
}

/// One stream socket's byte path on io_uring.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The backend that receives and sends for it.
    backend: Arc<UringBackend>,
    /// The socket, for the directions on readiness.
    socket: Socket,
    /// The registration's entry: receive completions name it.
    entry: u64,
    /// May receive through the ring (the ring's config, and a buffer pool).
    ring_recv: bool,
    /// May send through the ring (the ring's config).
    ring_send: bool,
    /// Chosen at the first read.
    recv: OnceLock<RecvPath>,
    /// Chosen at the first write: the outbox, or `None` for `send(2)`.
    send: OnceLock<Option<Arc<Outbox>>>,
}

/// The error for a raw read of a stream that receives through the ring.
fn received_through_ring() -> io::Error {
    io::Error::other(
        "this stream receives through the ring (io_uring), so its bytes are not in the socket \
         any more: read it with read/try_read/peek, or build the runtime with \
         `recv_through_ring(false)` (KEVENT_RECV=readiness) to read its socket directly",
    )
}

impl Stream {
    pub(crate) fn new(
        backend: Arc<UringBackend>,
        fd: std::os::fd::RawFd,
        entry: u64,
        ring_recv: bool,
        ring_send: bool,
    ) -> Stream {
        let ring_recv = ring_recv && backend.pool.is_some();
        Stream {
            backend,
            socket: Socket { fd },
            entry,
            ring_recv,
            ring_send,
            recv: OnceLock::new(),
            send: OnceLock::new(),
        }
    }

    pub(crate) fn without_ring_recv(&self) {
        let _ = self.recv.set(RecvPath::Socket);
    }

    /// The read path, arming the receive at the first read.
    fn recv_path(&self) -> &RecvPath {
        self.recv.get_or_init(|| {
            if !self.ring_recv {
                return RecvPath::Socket;
            }
            match self.backend.arm_recv(self.socket.fd, self.entry) {
                Ok(inbox) => RecvPath::Inbox(inbox),
                Err(e) => RecvPath::Failed(e.kind(), e.to_string()),
            }
        })
    }

    /// The outbox once the stream sends through the ring.
    fn armed_outbox(&self) -> Option<&Arc<Outbox>> {
        self.send.get().and_then(Option::as_ref)
    }

    /// The outbox, made at the first write; `None`: write the socket.
    fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.send
            .get_or_init(|| {
                self.ring_send
                    .then(|| Arc::new(Outbox::new(self.socket.fd, self.entry)))
            })
            .as_ref()
    }

    /// Reads (or peeks at) bytes the ring received into `inbox`; on
    /// `WouldBlock` forgets the read readiness `ev` acted on, closed bits
    /// included (the receive reports end-of-stream itself). Carries out
    /// the inbox's decisions about the receive: resume it, or cancel it so
    /// that this thread re-arms it.
    fn take<R: Readiness>(
        &self,
        r: &R,
        inbox: &Inbox,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
        ev: R::Event,
    ) -> io::Result<usize> {
        let taken = inbox.take(dst, peek, self.backend.receive_home());
        if taken.cancel || taken.resume {
            let here = self.backend.consumes_here();
            if taken.cancel {
                self.backend.cancel_recv(self.entry, here)?;
            }
            if taken.resume {
                self.backend.resume_recv(self.entry, here)?;
            }
        }
        // Forgotten once nothing is left to read: the next read then
        // waits at once, rather than finding the inbox empty first. A
        // receive that lands meanwhile is a newer event, which stays.
        if taken.drained || matches!(&taken.result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        {
            r.clear_with_closed(ev);
        }
        taken.result
    }

    /// Reads from the inbox into `bufs` in order, as far as it has bytes.
    fn take_vectored<R: Readiness>(
        &self,
        r: &R,
        inbox: &Inbox,
        bufs: &mut [IoSliceMut<'_>],
        ev: R::Event,
    ) -> io::Result<usize> {
        let mut total = 0;
        for buf in bufs.iter_mut().filter(|b| !b.is_empty()) {
            let len = buf.len();
            // SAFETY: same layout, and the inbox only writes initialised
            // bytes into it, so the slice stays initialised.
            let dst = unsafe { &mut *(&mut **buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            let n = self.take(r, inbox, dst, false, ev)?;
            total += n;
            // Stop before a call that could only block, or consume the
            // error meant for the next read.
            if n < len || inbox.is_empty() {
                break;
            }
        }
        Ok(total)
    }

    /// Holds back the peer's end of stream (a read of `len > 0` bytes that
    /// returned 0) while this stream's own sends through the ring are not
    /// seen done: see [`Outbox::poll_peer_eof`].
    fn eof_after_own_sends(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        res: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(0)) = res {
            if len > 0 {
                if let Some(outbox) = self.armed_outbox() {
                    ready!(outbox.poll_peer_eof(cx));
                }
            }
        }
        res
    }

    pub(crate) fn poll_read<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let len = dst.len();
        let res = match self.recv_path() {
            RecvPath::Inbox(inbox) => poll_until_done(cx, r, Direction::Read, |ev| {
                self.take(r, inbox, dst, peek, ev)
            }),
            RecvPath::Socket if peek => return self.socket.poll_read(cx, r, dst, true),
            RecvPath::Socket => self.socket.poll_read(cx, r, dst, false),
            RecvPath::Failed(kind, msg) => return Poll::Ready(Err(io::Error::new(*kind, &**msg))),
        };
        self.eof_after_own_sends(cx, len, res)
    }

    pub(crate) fn poll_read_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        let res = match self.recv_path() {
            RecvPath::Inbox(inbox) => poll_until_done(cx, r, Direction::Read, |ev| {
                self.take_vectored(r, inbox, bufs, ev)
            }),
            RecvPath::Socket => self.socket.poll_read_vectored(cx, r, bufs),
            RecvPath::Failed(kind, msg) => return Poll::Ready(Err(io::Error::new(*kind, &**msg))),
        };
        self.eof_after_own_sends(cx, len, res)
    }

    pub(crate) fn try_read<R: Readiness>(
        &self,
        r: &R,
        dst: &mut [MaybeUninit<u8>],
    ) -> io::Result<usize> {
        match self.recv.get() {
            Some(RecvPath::Inbox(inbox)) => {
                try_now(r, Direction::Read, |ev| self.take(r, inbox, dst, false, ev))
            }
            _ => self.socket.try_read(r, dst),
        }
    }

    pub(crate) fn try_read_vectored<R: Readiness>(
        &self,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> io::Result<usize> {
        match self.recv.get() {
            Some(RecvPath::Inbox(inbox)) => try_now(r, Direction::Read, |ev| {
                self.take_vectored(r, inbox, bufs, ev)
            }),
            _ => self.socket.try_read_vectored(r, bufs),
        }
    }

    /// Queues as much of `bufs` as the outbox takes, all in one batch (one
    /// send for a response handed over as headers and body), and starts a
    /// send if none is in flight; `WouldBlock` when the outbox is full.
    fn queue(&self, outbox: &Arc<Outbox>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match outbox.write_vectored(bufs)? {
            Some((n, batch)) => {
                if let Some(batch) = batch {
                    self.backend.start_send(outbox, batch)?;
                }
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Runs `queue` (a queueing write), waiting for room in the outbox (a
    /// completion of the send in flight) while it would block.
    fn poll_queue(
        &self,
        cx: &mut Context<'_>,
        outbox: &Arc<Outbox>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.queue(outbox, bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return Poll::Ready(res),
            }
            ready!(outbox.poll_room(cx))?;
        }
    }

    pub(crate) fn poll_write<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.outbox() {
            Some(outbox) => self.poll_queue(cx, outbox, &[IoSlice::new(buf)]),
            None => self.socket.poll_write(cx, r, buf),
        }
    }

    pub(crate) fn poll_write_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.outbox() {
            Some(outbox) => self.poll_queue(cx, outbox, bufs),
            None => self.socket.poll_write_vectored(cx, r, bufs),
        }
    }

    /// A `try_write` (one slice, or `vectored`).
    pub(crate) fn try_write<R: Readiness>(
        &self,
        r: &R,
        bufs: &[IoSlice<'_>],
        vectored: bool,
    ) -> io::Result<usize> {
        match self.outbox() {
            Some(outbox) => self.queue(outbox, bufs),
            None if vectored => self.socket.try_write_vectored(r, bufs),
            None => self.socket.try_write(r, &bufs[0]),
        }
    }

    pub(crate) fn poll_write_ready<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
    ) -> Poll<io::Result<Ready>> {
        match self.armed_outbox() {
            Some(outbox) => outbox.poll_writable(cx).map(|()| Ok(Ready::WRITABLE)),
            None => r.poll_ready(cx, Direction::Write).map_ok(R::ready),
        }
    }

    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.armed_outbox() {
            Some(outbox) => outbox.poll_drained(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    pub(crate) fn flush_behind(&self) -> io::Result<()> {
        match self.armed_outbox() {
            Some(outbox) => outbox.failed(),
            None => Ok(()),
        }
    }

    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        let Some(outbox) = self.armed_outbox() else {
            return self.socket.shutdown(how);
        };
        if how == Shutdown::Read || outbox.shutdown_write()? {
            return self.socket.shutdown(how);
        }
        // Deferred: the outbox shuts the write side once drained.
        if how == Shutdown::Both {
            self.socket.shutdown(Shutdown::Read)?;
        }
        Ok(())
    }

    pub(crate) fn check_raw(&self, interest: Interest) -> io::Result<()> {
        if interest.is_readable() && matches!(self.recv.get(), Some(RecvPath::Inbox(_))) {
            return Err(received_through_ring());
        }
        if interest.is_writable() {
            if let Some(outbox) = self.armed_outbox() {
                if !outbox.drained()? {
                    return Err(io::Error::other(
                        "bytes written to this stream are still being sent through the ring \
                         (io_uring): flush it before writing its socket directly, or build the \
                         runtime with `send_through_ring(false)` (KEVENT_SEND=readiness)",
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn close_after_sends(&self, fd: impl FnOnce() -> OwnedFd) -> bool {
        match self.armed_outbox() {
            // Bytes still queued: the outbox takes the fd and closes it
            // after the last one is sent.
            Some(outbox) if matches!(outbox.drained(), Ok(false)) => {
                outbox.adopt(fd());
                true
            }
            _ => false,
        }
    }
}
