//! `TcpListener`: a socket accepting TCP connections.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{ready, Context, Poll};

use super::TcpStream;
use crate::driver::slab::Direction;
use crate::net::addr::{each_addr, ToSocketAddrs};
use crate::net::evented::Evented;

/// A TCP socket server, listening for connections (tokio's
/// `TcpListener`).
///
/// ```
/// use kevent_runtime::net::{TcpListener, TcpStream};
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let client = TcpStream::connect(addr).await?;
/// let (server, peer) = listener.accept().await?;
/// assert_eq!(peer, client.local_addr()?);
/// assert_eq!(server.local_addr()?, addr);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    /// The registered listening socket.
    io: Evented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (with `SO_REUSEADDR`) and listens, trying each
    /// address it resolves to in turn; returns the last error if none
    /// binds. Port 0 picks a free port: see
    /// [`local_addr`](TcpListener::local_addr).
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| async move {
            TcpListener::new(mio::net::TcpListener::bind(a)?)
        })
        .await
    }

    #[track_caller]
    fn new(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Evented::new_listener(listener)?,
        })
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// Errors from `accept(2)` — running out of file descriptors
    /// (`EMFILE`, `ENFILE`), an aborted connection — are returned as they
    /// are; the listener stays usable, and the next call tries again at
    /// once. A server loop should log such an error and, for fd
    /// exhaustion, back off before accepting again.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polling form of [`accept`](TcpListener::accept); every task
    /// waiting on it is woken by the next incoming connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, addr) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(Ok((TcpStream::new(stream)?, addr)))
    }

    /// Wraps a listening std socket, switching it to nonblocking mode.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::new(mio::net::TcpListener::from_std(listener))
    }

    /// Leaves the runtime and returns the std listener, still in
    /// nonblocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.io.into_inner().into())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sets `IP_TTL` for accepted connections' outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;

    /// [`TcpListener::from_std`].
    fn try_from(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(listener)
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
