//! `UnixDatagram`: a Unix-domain datagram socket.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::task::{Context, Poll};

use super::{abstract_addr, with_std_datagram};
use crate::driver::slab::Direction;
use crate::net::datagram::datagram_socket;
use crate::net::evented::Evented;

/// Sends `buf` to `path`, or to `addr` when the path names an abstract
/// socket.
fn send_to(
    socket: &mio::net::UnixDatagram,
    buf: &[u8],
    path: &Path,
    addr: Option<&SocketAddr>,
) -> io::Result<usize> {
    match addr {
        Some(addr) => with_std_datagram(socket, |s| s.send_to_addr(buf, addr)),
        None => socket.send_to(buf, path),
    }
}

/// A Unix-domain datagram socket (tokio's `UnixDatagram`).
///
/// ```
/// use kevent_runtime::net::UnixDatagram;
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let (a, b) = UnixDatagram::pair()?;
/// a.send(b"one").await?;
/// let mut buf = [0; 8];
/// let n = b.recv(&mut buf).await?;
/// assert_eq!(&buf[..n], b"one");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UnixDatagram {
    /// The registered socket.
    io: Evented<mio::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path`.
    /// On Linux and Android a path starting with a NUL byte (`"\0name"`)
    /// names a socket in the abstract namespace.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let socket = match abstract_addr(path)? {
            Some(addr) => mio::net::UnixDatagram::bind_addr(&addr)?,
            None => mio::net::UnixDatagram::bind(path)?,
        };
        UnixDatagram::new(socket)
    }

    /// A socket bound to no address: it can send, and receive replies only
    /// after [`connect`](UnixDatagram::connect).
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::new(mio::net::UnixDatagram::unbound()?)
    }

    /// A connected pair of anonymous sockets.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::new(a)?, UnixDatagram::new(b)?))
    }

    /// Sets the default peer for [`send`](UnixDatagram::send) and
    /// [`recv`](UnixDatagram::recv).
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        let path = path.as_ref();
        match abstract_addr(path)? {
            Some(addr) => with_std_datagram(self.io.get_ref(), |s| s.connect_addr(&addr)),
            None => self.io.get_ref().connect(path),
        }
    }

    /// Sends `buf` to the socket bound at `path`.
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        let addr = abstract_addr(path)?;
        self.io
            .io(Direction::Write, |s| send_to(s, buf, path, addr.as_ref()))
            .await
    }

    /// Polling form of [`send_to`](UnixDatagram::send_to).
    pub fn poll_send_to<P: AsRef<Path>>(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        path: P,
    ) -> Poll<io::Result<usize>> {
        let path = path.as_ref();
        let addr = abstract_addr(path)?;
        self.io.poll_io(cx, Direction::Write, |s| {
            send_to(s, buf, path, addr.as_ref())
        })
    }

    /// Sends to `path` without waiting.
    pub fn try_send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        let addr = abstract_addr(path)?;
        self.io
            .try_io(Direction::Write, |s| send_to(s, buf, path, addr.as_ref()))
    }

    /// Shuts down the read side, the write side, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }
}

datagram_socket!(
    UnixDatagram,
    mio: mio::net::UnixDatagram,
    std: std::os::unix::net::UnixDatagram,
    addr: SocketAddr
);
