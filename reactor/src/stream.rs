//! A stream socket's byte path, as its backend hands it out.
//!
//! [`Kevent::register_stream`](crate::Kevent::register_stream) returns a
//! [`StreamIo`] beside the registration's key: every read, write, flush and
//! shutdown of the stream goes through it, and it alone knows how the bytes
//! move. There are two ways:
//!
//! - **On readiness** ([`Socket`], below): wait until the socket looks
//!   ready, call `recv(2)`/`send(2)`, forget the readiness when the call
//!   would block or transfers less than asked. mio always works this way,
//!   io_uring does when its own byte path is off for the stream.
//! - **Through the ring** (io_uring, `backend/uring/stream.rs`): the kernel
//!   receives into the stream's inbox and sends from its outbox; see
//!   ARCHITECTURE.md, section 4.
//!
//! Readiness itself (the waker lists, the tick that keeps a clear from
//! erasing a newer event) belongs to whoever polls the stream: a runtime
//! passes its per-socket state in as a [`Readiness`]. The methods are
//! generic over it, so the dispatch costs one `match`, no virtual call.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{OwnedFd, RawFd};
use std::task::{ready, Context, Poll};

use crate::event::{Interest, Ready};

/// A direction of a stream's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Readable, or the read side closed.
    Read,
    /// Writable, or the write side closed.
    Write,
}

/// A stream's readiness as its owner tracks it: what [`StreamIo`] waits on
/// and clears. A runtime implements it with its per-socket state.
pub trait Readiness {
    /// An observed readiness: what a clear forgets (and only that).
    type Event: Copy;

    /// The readiness in `dir`, or registers the task to be woken by the
    /// next event in that direction.
    fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<io::Result<Self::Event>>;
    /// The readiness in `dir` now, registering nobody.
    fn current(&self, dir: Direction) -> Option<Self::Event>;
    /// Forgets `ev` (the operation it allowed would block), unless newer
    /// readiness arrived since; the closed bits stay.
    fn clear(&self, ev: Self::Event);
    /// As [`clear`](Readiness::clear), the closed bits included (a stream
    /// receiving through the ring learns of the end from its receive).
    fn clear_with_closed(&self, ev: Self::Event);
    /// The readiness bits `ev` carries.
    fn ready(ev: Self::Event) -> Ready;
}

/// A stream socket's byte path: reads, writes, flush and shutdown, either
/// on readiness or through the ring (see the module doc).
///
/// The socket's descriptor stays owned by the caller, which keeps it open
/// while this lives (see [`StreamIo::close_after_sends`]).
#[derive(Debug)]
pub struct StreamIo {
    /// Which implementation moves the bytes.
    path: Path,
}

#[derive(Debug)]
enum Path {
    /// `recv(2)`/`send(2)` on readiness.
    Socket(Socket),
    /// io_uring's byte path (each direction may still fall back to the
    /// socket).
    #[cfg(target_os = "linux")]
    Uring(crate::backend::uring::Stream),
}

impl StreamIo {
    /// A stream that moves its bytes on readiness, with `recv(2)` and
    /// `send(2)` on `fd`: what a backend without a byte path of its own
    /// hands out, and the path of listeners and datagram sockets.
    pub fn socket(fd: RawFd) -> StreamIo {
        StreamIo {
            path: Path::Socket(Socket { fd }),
        }
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn uring(stream: crate::backend::uring::Stream) -> StreamIo {
        StreamIo {
            path: Path::Uring(stream),
        }
    }

    /// Keeps the stream's reads on readiness (`recv(2)`), never through the
    /// ring. Call it before the first read.
    pub fn without_ring_recv(&self) {
        match &self.path {
            Path::Socket(_) => {}
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.without_ring_recv(),
        }
    }

    /// `AsyncRead::poll_read` (or, with `peek`, a read that leaves the
    /// bytes in place) into `dst`, which it only writes.
    pub fn poll_read<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        match &self.path {
            Path::Socket(s) => s.poll_read(cx, r, dst, peek),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_read(cx, r, dst, peek),
        }
    }

    /// `AsyncRead::poll_read_vectored`.
    pub fn poll_read_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        match &self.path {
            Path::Socket(s) => s.poll_read_vectored(cx, r, bufs),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_read_vectored(cx, r, bufs),
        }
    }

    /// Reads now if the stream looks readable; `WouldBlock` otherwise.
    pub fn try_read<R: Readiness>(&self, r: &R, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        match &self.path {
            Path::Socket(s) => s.try_read(r, dst),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.try_read(r, dst),
        }
    }

    /// Vectored [`try_read`](StreamIo::try_read).
    pub fn try_read_vectored<R: Readiness>(
        &self,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> io::Result<usize> {
        match &self.path {
            Path::Socket(s) => s.try_read_vectored(r, bufs),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.try_read_vectored(r, bufs),
        }
    }

    /// `AsyncWrite::poll_write`.
    pub fn poll_write<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &self.path {
            Path::Socket(s) => s.poll_write(cx, r, buf),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_write(cx, r, buf),
        }
    }

    /// `AsyncWrite::poll_write_vectored`: through the ring, the slices join
    /// one send (headers and body leave together).
    pub fn poll_write_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &self.path {
            Path::Socket(s) => s.poll_write_vectored(cx, r, bufs),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_write_vectored(cx, r, bufs),
        }
    }

    /// Writes now if the stream looks writable (through the ring: if its
    /// outbox has room); `WouldBlock` otherwise.
    pub fn try_write<R: Readiness>(&self, r: &R, buf: &[u8]) -> io::Result<usize> {
        match &self.path {
            Path::Socket(s) => s.try_write(r, buf),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.try_write(r, &[IoSlice::new(buf)], false),
        }
    }

    /// Vectored [`try_write`](StreamIo::try_write).
    pub fn try_write_vectored<R: Readiness>(
        &self,
        r: &R,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        match &self.path {
            Path::Socket(s) => s.try_write_vectored(r, bufs),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.try_write(r, bufs, true),
        }
    }

    /// Write readiness: the socket's, or, sending through the ring, ready
    /// unless a write found the outbox full since the last send completed.
    pub fn poll_write_ready<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
    ) -> Poll<io::Result<Ready>> {
        match &self.path {
            Path::Socket(_) => r.poll_ready(cx, Direction::Write).map_ok(R::ready),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_write_ready(cx, r),
        }
    }

    /// `AsyncWrite::poll_flush`: waits until the ring has sent what was
    /// written through it (at once when the stream writes its socket).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.path {
            Path::Socket(_) => Poll::Ready(Ok(())),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.poll_flush(cx),
        }
    }

    /// A flush that does not wait for the ring's sends: `Ok` at once unless
    /// a send failed (its error then). What was written is the ring's to
    /// send, in order, whatever the stream does next (as a socket's send
    /// buffer is the kernel's), so a caller that flushes at the end of each
    /// message and learns of a failure at its next write, flush or shutdown
    /// (hyper) need not be woken again only to see the bytes sent.
    pub fn flush_behind(&self) -> io::Result<()> {
        match &self.path {
            Path::Socket(_) => Ok(()),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.flush_behind(),
        }
    }

    /// Shuts down part of the connection; the write side only after the
    /// bytes queued in the ring are sent (as the kernel sends its buffer
    /// before the FIN).
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match &self.path {
            Path::Socket(s) => s.shutdown(how),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.shutdown(how),
        }
    }

    /// Fails if using the socket itself for `interest` (a raw `recv(2)` or
    /// `send(2)`, `into_std`) could lose or reorder bytes that went through
    /// the ring: bytes received are in the inbox, not the socket; bytes
    /// written may still be on their way.
    pub fn check_raw(&self, interest: Interest) -> io::Result<()> {
        match &self.path {
            Path::Socket(_) => Ok(()),
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.check_raw(interest),
        }
    }

    /// The stream is going away: if bytes written through the ring are
    /// still queued, takes the descriptor (`fd` makes the owned handle)
    /// and closes it after the last one is sent, and returns true; false
    /// (`fd` not called) when the caller should close it now.
    pub fn close_after_sends(&self, fd: impl FnOnce() -> OwnedFd) -> bool {
        match &self.path {
            Path::Socket(_) => false,
            #[cfg(target_os = "linux")]
            Path::Uring(s) => s.close_after_sends(fd),
        }
    }
}

/// The byte path on readiness: `recv(2)`/`send(2)` on a nonblocking socket
/// once it looks ready, shared by every backend.
#[derive(Debug)]
pub(crate) struct Socket {
    /// The nonblocking stream socket (owned by the caller).
    pub(crate) fd: RawFd,
}

/// `send(2)` flags: a peer that closed gives `EPIPE`, never `SIGPIPE`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

/// A syscall's `ssize_t` result as an `io::Result`.
fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// The loop of every read and write that waits for readiness: waits for
/// `dir` and runs `op` with the readiness it found, until `op` does not
/// return `WouldBlock`. `op` forgets (clears) the readiness it acted on
/// when it would block, so the next turn waits for a newer event.
pub(crate) fn poll_until_done<R: Readiness>(
    cx: &mut Context<'_>,
    r: &R,
    dir: Direction,
    mut op: impl FnMut(R::Event) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        let ev = ready!(r.poll_ready(cx, dir))?;
        match op(ev) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            res => return Poll::Ready(res),
        }
    }
}

/// The `try_*` counterpart of [`poll_until_done`]: runs `op` once if `dir`
/// looks ready, `WouldBlock` otherwise. It looks without registering: a
/// `try_*` call must not disturb the wakers of tasks awaiting the stream.
pub(crate) fn try_now<R: Readiness>(
    r: &R,
    dir: Direction,
    op: impl FnOnce(R::Event) -> io::Result<usize>,
) -> io::Result<usize> {
    match r.current(dir) {
        Some(ev) => op(ev),
        None => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl Socket {
    fn recv(&self, dst: &mut [MaybeUninit<u8>], peek: bool) -> io::Result<usize> {
        crate::syscalls::count(1);
        let flags = if peek { libc::MSG_PEEK } else { 0 };
        // SAFETY: `dst` is `dst.len()` writable bytes; recv writes at most
        // that many.
        cvt(unsafe { libc::recv(self.fd, dst.as_mut_ptr().cast(), dst.len(), flags) })
    }

    fn readv(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        crate::syscalls::count(1);
        let n = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `IoSliceMut` has the layout of `iovec`; each names
        // writable memory borrowed for this call.
        cvt(unsafe { libc::readv(self.fd, bufs.as_mut_ptr().cast(), n) })
    }

    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        crate::syscalls::count(1);
        // SAFETY: `buf` is `buf.len()` readable bytes for this call.
        cvt(unsafe { libc::send(self.fd, buf.as_ptr().cast(), buf.len(), SEND_FLAGS) })
    }

    fn writev(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        crate::syscalls::count(1);
        let n = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: `IoSlice` has the layout of `iovec`; each names readable
        // memory borrowed for this call.
        cvt(unsafe { libc::writev(self.fd, bufs.as_ptr().cast(), n) })
    }

    /// Waits for `dir` and runs `op` (a transfer of `len` bytes) until it
    /// does not block. A short transfer means the kernel buffer was drained
    /// (or filled), so the next attempt would block: the readiness is
    /// cleared at once, saving that syscall. An event arriving meanwhile
    /// survives the clear. A `peek` clears only on `WouldBlock`.
    fn poll_transfer<R: Readiness>(
        cx: &mut Context<'_>,
        r: &R,
        dir: Direction,
        len: usize,
        short_clears: bool,
        mut op: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        poll_until_done(cx, r, dir, |ev| {
            let res = op();
            match &res {
                Ok(n) if short_clears && *n > 0 && *n < len => r.clear(ev),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.clear(ev),
                _ => {}
            }
            res
        })
    }

    /// Runs `op` now if `dir` looks ready; `WouldBlock` otherwise.
    fn try_transfer<R: Readiness>(
        r: &R,
        dir: Direction,
        op: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        try_now(r, dir, |ev| {
            let res = op();
            if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                r.clear(ev);
            }
            res
        })
    }

    pub(crate) fn poll_read<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let len = dst.len();
        Self::poll_transfer(cx, r, Direction::Read, len, !peek, || self.recv(dst, peek))
    }

    pub(crate) fn poll_read_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        Self::poll_transfer(cx, r, Direction::Read, len, true, || self.readv(bufs))
    }

    pub(crate) fn try_read<R: Readiness>(
        &self,
        r: &R,
        dst: &mut [MaybeUninit<u8>],
    ) -> io::Result<usize> {
        Self::try_transfer(r, Direction::Read, || self.recv(dst, false))
    }

    pub(crate) fn try_read_vectored<R: Readiness>(
        &self,
        r: &R,
        bufs: &mut [IoSliceMut<'_>],
    ) -> io::Result<usize> {
        Self::try_transfer(r, Direction::Read, || self.readv(bufs))
    }

    pub(crate) fn poll_write<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Self::poll_transfer(cx, r, Direction::Write, buf.len(), true, || self.send(buf))
    }

    pub(crate) fn poll_write_vectored<R: Readiness>(
        &self,
        cx: &mut Context<'_>,
        r: &R,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        Self::poll_transfer(cx, r, Direction::Write, len, true, || self.writev(bufs))
    }

    pub(crate) fn try_write<R: Readiness>(&self, r: &R, buf: &[u8]) -> io::Result<usize> {
        Self::try_transfer(r, Direction::Write, || self.send(buf))
    }

    pub(crate) fn try_write_vectored<R: Readiness>(
        &self,
        r: &R,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        Self::try_transfer(r, Direction::Write, || self.writev(bufs))
    }

    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown(2) on the caller's socket, which it keeps open.
        if unsafe { libc::shutdown(self.fd, how) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    /// Readiness that is there until cleared (then the next poll is
    /// `Pending`), counting the clears.
    #[derive(Default)]
    struct Counted {
        /// A clear happened since the last poll.
        cleared: Cell<bool>,
        /// Clears so far.
        clears: Cell<usize>,
    }

    impl Readiness for Counted {
        type Event = ();

        fn poll_ready(&self, _cx: &mut Context<'_>, _dir: Direction) -> Poll<io::Result<()>> {
            if self.cleared.replace(false) {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn current(&self, _dir: Direction) -> Option<()> {
            Some(())
        }

        fn clear(&self, _ev: ()) {
            self.cleared.set(true);
            self.clears.set(self.clears.get() + 1);
        }

        fn clear_with_closed(&self, ev: ()) {
            self.clear(ev);
        }

        fn ready(_ev: ()) -> Ready {
            Ready::READABLE | Ready::WRITABLE
        }
    }

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn read(io: &StreamIo, r: &Counted, n: usize, peek: bool) -> Poll<io::Result<Vec<u8>>> {
        let mut buf = vec![MaybeUninit::uninit(); n];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        io.poll_read(&mut cx, r, &mut buf, peek).map_ok(|got| {
            // SAFETY: the read initialised the first `got` bytes.
            buf[..got]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect()
        })
    }

    #[test]
    fn a_short_read_returns_at_once_and_forgets_the_readiness() {
        let (a, mut b) = pair();
        let io = StreamIo::socket(a.as_raw_fd());
        let r = Counted::default();
        b.write_all(b"abc").unwrap();
        let got = read(&io, &r, 8, false);
        assert!(matches!(&got, Poll::Ready(Ok(v)) if v == b"abc"), "{got:?}");
        assert_eq!(r.clears.get(), 1, "the buffer was drained: no second recv");
    }

    #[test]
    fn a_full_read_keeps_the_readiness() {
        let (a, mut b) = pair();
        let io = StreamIo::socket(a.as_raw_fd());
        let r = Counted::default();
        b.write_all(b"abcdef").unwrap();
        let got = read(&io, &r, 3, false);
        assert!(matches!(&got, Poll::Ready(Ok(v)) if v == b"abc"), "{got:?}");
        assert_eq!(r.clears.get(), 0, "more may be there");
    }

    #[test]
    fn a_read_that_would_block_forgets_the_readiness_and_waits() {
        let (a, _b) = pair();
        let io = StreamIo::socket(a.as_raw_fd());
        let r = Counted::default();
        assert!(read(&io, &r, 8, false).is_pending());
        assert_eq!(r.clears.get(), 1);
    }

    #[test]
    fn a_peek_leaves_the_bytes_for_the_next_read() {
        let (a, mut b) = pair();
        let io = StreamIo::socket(a.as_raw_fd());
        let r = Counted::default();
        b.write_all(b"abc").unwrap();
        let peeked = read(&io, &r, 8, true);
        assert!(
            matches!(&peeked, Poll::Ready(Ok(v)) if v == b"abc"),
            "{peeked:?}"
        );
        assert_eq!(r.clears.get(), 0, "a short peek keeps the readiness");
        let got = read(&io, &r, 8, false);
        assert!(matches!(&got, Poll::Ready(Ok(v)) if v == b"abc"), "{got:?}");
    }

    #[test]
    fn a_socket_stream_writes_flushes_at_once_and_shuts_down() {
        let (a, mut b) = pair();
        let io = StreamIo::socket(a.as_raw_fd());
        let r = Counted::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let bufs = [IoSlice::new(b"he"), IoSlice::new(b"llo")];
        let sent = io.poll_write_vectored(&mut cx, &r, &bufs);
        assert!(matches!(sent, Poll::Ready(Ok(5))), "{sent:?}");
        assert!(matches!(io.poll_flush(&mut cx), Poll::Ready(Ok(()))));
        io.check_raw(Interest::BOTH).unwrap();
        io.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut b, &mut got).unwrap();
        assert_eq!(got, b"hello", "all bytes, then end of stream");
    }
}
