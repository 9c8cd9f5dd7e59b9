//! `UnixStream`: a connected Unix-domain stream socket.

use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use crate::driver::slab::Direction;
use crate::net::byte_stream::byte_stream;
use crate::net::evented::Evented;

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
    /// On Linux and Android a path starting with a NUL byte (`"\0name"`)
    /// names a socket in the abstract namespace.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let socket = match super::abstract_addr(path)? {
            Some(addr) => mio::net::UnixStream::connect_addr(&addr)?,
            None => mio::net::UnixStream::connect(path)?,
        };
        UnixStream::connected(socket).await
    }

    /// Connects to the socket at `addr` (a pathname or, on Linux, an
    /// abstract name; not an unnamed address).
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        UnixStream::connected(mio::net::UnixStream::connect_addr(addr)?).await
    }

    /// Registers a socket whose connect was started and waits for it to
    /// finish.
    pub(crate) async fn connected(socket: mio::net::UnixStream) -> io::Result<UnixStream> {
        let stream = UnixStream::new(socket)?;
        stream.io.ready_dir(Direction::Write).await?;
        if let Some(e) = stream.io.get_ref().take_error()? {
            return Err(e);
        }
        Ok(stream)
    }

    /// The credentials of the peer process (`SO_PEERCRED`), as they were
    /// when it connected.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn peer_cred(&self) -> io::Result<super::UCred> {
        let (pid, uid, gid) = crate::net::sockopt::peer_cred(self.io.get_ref())?;
        Ok(super::UCred::new(Some(pid), uid, gid))
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
            io: Evented::new_stream(stream)?.without_ring_recv(),
        })
    }
}

byte_stream!(
    UnixStream,
    mio: mio::net::UnixStream,
    std: std::os::unix::net::UnixStream,
    addr: SocketAddr
);
