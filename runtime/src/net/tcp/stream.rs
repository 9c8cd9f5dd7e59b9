//! `TcpStream`: a connected TCP socket.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use kevent_reactor::{Interest, Ready};

use super::split::{self, ReadHalf, WriteHalf};
use super::split_owned::{self, OwnedReadHalf, OwnedWriteHalf};
use crate::driver::slab::Direction;
use crate::net::addr::{each_addr, ToSocketAddrs};
use crate::net::evented::{as_uninit, direction, Evented};
use crate::net::sockopt;

/// A TCP connection between a local and a remote socket (tokio's
/// `TcpStream`).
///
/// Read and write it through [`AsyncRead`] and [`AsyncWrite`] (with
/// `kevent::io::{AsyncReadExt, AsyncWriteExt}`), or with the `try_*`
/// methods after [`readable`](TcpStream::readable) /
/// [`writable`](TcpStream::writable). Closing it
/// ([`AsyncWriteExt::close`](futures_util::io::AsyncWriteExt::close))
/// shuts down the write side; dropping it closes the socket.
///
/// ```
/// use kevent_runtime::io::{AsyncReadExt, AsyncWriteExt};
/// use kevent_runtime::net::{TcpListener, TcpStream};
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"ping").await?;
/// client.close().await?; // shutdown(Write): the server reads to EOF
/// let mut got = Vec::new();
/// server.read_to_end(&mut got).await?;
/// assert_eq!(got, b"ping");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    /// The registered socket.
    io: Evented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to in
    /// turn; returns the last error if none accepts.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, TcpStream::connect_addr).await
    }

    /// Connects to one address: a nonblocking `connect`, then waits for the
    /// socket to turn writable and asks it whether the connection is up.
    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::new(mio::net::TcpStream::connect(addr)?)?
            .established()
            .await
    }

    /// Waits for the connect this stream's socket started to finish.
    pub(crate) async fn established(self) -> io::Result<TcpStream> {
        let ev = self.io.registration().ready(Direction::Write).await?;
        let socket = self.io.get_ref();
        if let Some(e) = socket.take_error()? {
            return Err(e);
        }
        // A connecting TCP socket polls writable only once established
        // (Linux's `tcp_poll`): plain writability is the answer. Closed or
        // in error with no error pending, it is connected if it has a peer.
        if ev.ready.intersects(Ready::ERROR | Ready::WRITE_CLOSED) {
            socket.peer_addr()?;
        }
        Ok(self)
    }

    /// Registers a connected (or connecting) nonblocking mio stream.
    #[track_caller]
    pub(crate) fn new(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Evented::new(stream, Interest::BOTH)?,
        })
    }

    /// Wraps a connected std stream, switching it to nonblocking mode.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::new(mio::net::TcpStream::from_std(stream))
    }

    /// Leaves the runtime and returns the std stream, still in nonblocking
    /// mode (call `set_nonblocking(false)` to block on it).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        // Bytes already received through the ring are not in the socket,
        // and bytes written may still be on their way through it.
        self.io.check_raw_read()?;
        self.io.check_raw_write()?;
        Ok(self.io.into_inner().into())
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The remote peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sets `TCP_NODELAY`: `true` sends small writes at once instead of
    /// coalescing them (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`, the time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the stream
    /// reset the connection instead of closing it gracefully. A nonzero
    /// linger makes the close in `drop` block the thread until unsent data
    /// is acknowledged or the time runs out: avoid it on a worker.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        sockopt::set_linger(self.io.get_ref(), dur)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sockopt::linger(self.io.get_ref())
    }

    /// Waits until the stream may be readable (data, end of file or an
    /// error), then [`try_read`](TcpStream::try_read) can be called. The
    /// readiness may be spurious: `try_read` can still return
    /// `WouldBlock`.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready_dir(Direction::Read).await
    }

    /// Waits until the stream may be writable, then
    /// [`try_write`](TcpStream::try_write) can be called.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready_dir(Direction::Write).await
    }

    /// Waits until any direction in `interest` may be ready and returns the
    /// readiness seen.
    pub async fn ready(&self, interest: Interest) -> io::Result<Ready> {
        self.io.ready(interest).await
    }

    /// Polls for read readiness. Every task that polled while it was not ready
    /// is woken by the next readiness, not only the last one.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready_dir(cx, Direction::Read)
    }

    /// Polls for write readiness. Every task that polled while it was not ready
    /// is woken by the next readiness, not only the last one.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_ready_dir(cx, Direction::Write)
    }

    /// Reads what is available without waiting: `Ok(0)` is end of file,
    /// `WouldBlock` means nothing is available yet.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// Vectored [`try_read`](TcpStream::try_read).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.try_read_vectored(bufs)
    }

    /// Writes what the send buffer takes without waiting; `WouldBlock`
    /// when it is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_write(buf)
    }

    /// Vectored [`try_write`](TcpStream::try_write).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.try_write_vectored(bufs)
    }

    /// Runs a custom nonblocking operation `f` on the socket if it looks
    /// ready for `interest` (`READABLE` or `WRITABLE`); a `WouldBlock` from
    /// `f` clears that readiness.
    ///
    /// # Panics
    ///
    /// With `Interest::BOTH`: pass one direction.
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        if interest.is_readable() {
            self.io.check_raw_read()?;
        }
        if interest.is_writable() {
            self.io.check_raw_write()?;
        }
        self.io.try_io(direction(interest), |_| f())
    }

    /// Waits for `interest` and runs `f` until it does not return
    /// `WouldBlock`.
    ///
    /// # Panics
    ///
    /// With `Interest::BOTH`: pass one direction.
    pub async fn async_io<R>(
        &self,
        interest: Interest,
        mut f: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        if interest.is_readable() {
            self.io.check_raw_read()?;
        }
        if interest.is_writable() {
            self.io.check_raw_write()?;
        }
        self.io.io(direction(interest), |_| f()).await
    }

    /// Receives data without removing it from the queue: the next read
    /// sees it again. Waits until there is some (or end of file).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_peek(cx, buf)).await
    }

    /// Polling form of [`peek`](TcpStream::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        // Bytes received through the ring are in the inbox, not the socket.
        if let Some(inbox) = self.io.registration().armed_inbox() {
            return self.io.poll_recv(cx, inbox, as_uninit(buf), true);
        }
        self.io.poll_io(cx, Direction::Read, |s| s.peek(buf))
    }

    /// Splits into a read half and a write half borrowing the stream, for
    /// reading and writing concurrently within one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        split::new(self)
    }

    /// Splits into owned halves that can move to different tasks. Dropping
    /// the write half shuts down the write side;
    /// [`reunite`](OwnedReadHalf::reunite) puts the stream back together.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        split_owned::new(Arc::new(self))
    }

    /// Shuts down part of the connection.
    /// The write side waits for bytes still queued in the ring's outbox.
    pub(crate) fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        self.io
            .shutdown_with(how, |how| self.io.get_ref().shutdown(how))
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_vectored(cx, bufs)
    }
}

impl AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Bytes written through the ring are sent when this returns.
        self.io.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_std(Shutdown::Write))
    }
}

impl AsyncWrite for &TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_std(Shutdown::Write))
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;

    /// [`TcpStream::from_std`].
    fn try_from(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_std(stream)
    }
}

impl TcpStream {
    /// The registered socket (for the hyper integration).
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub(crate) fn evented(&self) -> &Evented<mio::net::TcpStream> {
        &self.io
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
