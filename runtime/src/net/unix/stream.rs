//! `UnixStream`: a connected Unix-domain stream socket.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use kevent_reactor::{Interest, Ready};

use super::split::{self, ReadHalf, WriteHalf};
use super::split_owned::{self, OwnedReadHalf, OwnedWriteHalf};
use crate::driver::slab::Direction;
use crate::net::evented::{direction, Evented};

/// A connected Unix-domain stream socket (tokio's `UnixStream`): the
/// same reading and writing surface as
/// [`TcpStream`](crate::net::TcpStream).
///
/// ```
/// use kevent_runtime::io::{AsyncReadExt, AsyncWriteExt};
/// use kevent_runtime::net::UnixStream;
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let (mut a, mut b) = UnixStream::pair()?;
/// a.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixStream {
    /// The registered socket.
    io: Evented<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket bound at `path`.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let stream = UnixStream::new(mio::net::UnixStream::connect(path)?)?;
        stream.io.ready_dir(Direction::Write).await?;
        if let Some(e) = stream.io.get_ref().take_error()? {
            return Err(e);
        }
        Ok(stream)
    }

    /// A connected pair of anonymous sockets.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::new(a)?, UnixStream::new(b)?))
    }

    /// Registers a connected nonblocking mio stream.
    #[track_caller]
    pub(crate) fn new(stream: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            // Read on readiness, never through the ring: on 6.18 a
            // multishot receive on a Unix stream socket was seen to miss
            // the peer's close (tests/net_unix.rs's two-mebibyte echo hung
            // about one run in six), so Unix streams keep recv(2).
            io: Evented::new(stream, Interest::BOTH)?.without_ring_recv(),
        })
    }

    /// Wraps a connected std stream, switching it to nonblocking mode.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        UnixStream::new(mio::net::UnixStream::from_std(stream))
    }

    /// Leaves the runtime and returns the std stream, still in nonblocking
    /// mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
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

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Waits until the stream may be readable (data, end of file or an
    /// error); the readiness may be spurious.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready_dir(Direction::Read).await
    }

    /// Waits until the stream may be writable.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready_dir(Direction::Write).await
    }

    /// Waits until any direction in `interest` may be ready.
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

    /// Vectored [`try_read`](UnixStream::try_read).
    pub fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.io.try_read_vectored(bufs)
    }

    /// Writes what the send buffer takes without waiting; `WouldBlock`
    /// when it is full.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_write(buf)
    }

    /// Vectored [`try_write`](UnixStream::try_write).
    pub fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.io.try_write_vectored(bufs)
    }

    /// Runs a custom nonblocking operation `f` if the socket looks ready
    /// for `interest` (`READABLE` or `WRITABLE`).
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

    /// Splits into a read half and a write half borrowing the stream.
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

impl AsyncRead for UnixStream {
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

impl AsyncRead for &UnixStream {
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

impl AsyncWrite for UnixStream {
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

impl AsyncWrite for &UnixStream {
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

impl TryFrom<std::os::unix::net::UnixStream> for UnixStream {
    type Error = io::Error;

    /// [`UnixStream::from_std`].
    fn try_from(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        UnixStream::from_std(stream)
    }
}

impl UnixStream {
    /// The registered socket (for the hyper integration).
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub(crate) fn evented(&self) -> &Evented<mio::net::UnixStream> {
        &self.io
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
