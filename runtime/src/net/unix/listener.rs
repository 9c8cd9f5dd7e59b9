//! `UnixListener`: a Unix-domain socket accepting stream connections.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{ready, Context, Poll};

use super::UnixStream;
use crate::driver::slab::Direction;
use crate::net::evented::Evented;

/// A Unix-domain socket server (tokio's `UnixListener`).
///
/// The socket file stays after the listener drops; remove it to bind the
/// same path again.
///
/// ```
/// use kevent_runtime::net::{UnixListener, UnixStream};
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let path = std::env::temp_dir().join(format!("kevent-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path)?;
/// let _client = UnixStream::connect(&path).await?;
/// let (_server, _peer) = listener.accept().await?;
/// std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixListener {
    /// The registered listening socket.
    io: Evented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to `path` and listens. Unlike TCP's, this bind is synchronous
    /// (as in tokio): it does no lookup.
    /// On Linux and Android a path starting with a NUL byte (`"\0name"`)
    /// names a socket in the abstract namespace.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let listener = match super::abstract_addr(path)? {
            Some(addr) => mio::net::UnixListener::bind_addr(&addr)?,
            None => mio::net::UnixListener::bind(path)?,
        };
        UnixListener::new(listener)
    }

    #[track_caller]
    fn new(listener: mio::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: Evented::new_listener(listener)?,
        })
    }

    /// Waits for a connection and returns it with the peer's address
    /// (usually unnamed).
    ///
    /// Errors from `accept(2)`, such as running out of file descriptors,
    /// are returned as they are; the listener stays usable.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polling form of [`accept`](UnixListener::accept); every task
    /// waiting on it is woken by the next incoming connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (stream, addr) = ready!(self.io.poll_io(cx, Direction::Read, |l| l.accept()))?;
        Poll::Ready(Ok((UnixStream::new(stream)?, addr)))
    }

    /// Wraps a listening std socket, switching it to nonblocking mode.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        UnixListener::new(mio::net::UnixListener::from_std(listener))
    }

    /// Leaves the runtime and returns the std listener, still in
    /// nonblocking mode.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
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
}

impl TryFrom<std::os::unix::net::UnixListener> for UnixListener {
    type Error = io::Error;

    /// [`UnixListener::from_std`].
    fn try_from(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        UnixListener::from_std(listener)
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.get_ref().as_fd()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
