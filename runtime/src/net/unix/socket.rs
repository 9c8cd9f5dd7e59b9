//! [`UnixSocket`]: a Unix-domain socket set up before it listens,
//! connects or turns into a datagram socket (tokio's `UnixSocket`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{UnixDatagram, UnixListener, UnixStream};
use crate::net::sockopt;

/// A Unix-domain socket not yet listening, connected, or in use for
/// datagrams: bind it to a path first where wanted (say, to connect from
/// a known address), or choose the listen backlog.
///
/// ```
/// use kevent_runtime::net::UnixSocket;
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let path = std::env::temp_dir().join(format!("kevent-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let socket = UnixSocket::new_stream()?;
/// socket.bind(&path)?;
/// let listener = socket.listen(64)?;
/// let client = UnixSocket::new_stream()?.connect(&path).await?;
/// let (_server, _) = listener.accept().await?;
/// assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UnixSocket {
    /// The socket (nonblocking, close-on-exec).
    fd: OwnedFd,
    /// `SOCK_STREAM` or `SOCK_DGRAM`.
    ty: libc::c_int,
}

impl UnixSocket {
    /// A new stream socket, for [`listen`](UnixSocket::listen) or
    /// [`connect`](UnixSocket::connect).
    pub fn new_stream() -> io::Result<UnixSocket> {
        Self::new(libc::SOCK_STREAM)
    }

    /// A new datagram socket, for [`datagram`](UnixSocket::datagram).
    pub fn new_datagram() -> io::Result<UnixSocket> {
        Self::new(libc::SOCK_DGRAM)
    }

    fn new(ty: libc::c_int) -> io::Result<UnixSocket> {
        Ok(UnixSocket {
            fd: sockopt::socket(libc::AF_UNIX, ty)?,
            ty,
        })
    }

    /// Binds the socket to `path` (a NUL first byte names the abstract
    /// namespace on Linux). Fails with `AddrInUse` if the path exists.
    pub fn bind<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        sockopt::bind_unix(self, path.as_ref())
    }

    fn expect(&self, ty: libc::c_int, what: &str) -> io::Result<()> {
        if self.ty == ty {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} needs a socket made by UnixSocket::new_{}",
                match ty {
                    libc::SOCK_STREAM => "stream",
                    _ => "datagram",
                }
            ),
        ))
    }

    /// Listens with room for `backlog` connections waiting to be accepted,
    /// consuming the socket (bound first with [`bind`](UnixSocket::bind)).
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn listen(self, backlog: u32) -> io::Result<UnixListener> {
        self.expect(libc::SOCK_STREAM, "listen")?;
        sockopt::listen(&self, backlog)?;
        UnixListener::from_std(std::os::unix::net::UnixListener::from(self.fd))
    }

    /// Connects to the socket bound at `path`, consuming this one.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect<P: AsRef<Path>>(self, path: P) -> io::Result<UnixStream> {
        self.expect(libc::SOCK_STREAM, "connect")?;
        sockopt::start_connect_unix(&self, path.as_ref())?;
        let std = std::os::unix::net::UnixStream::from(self.fd);
        UnixStream::connected(mio::net::UnixStream::from_std(std)).await
    }

    /// Turns the socket into a [`UnixDatagram`].
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn datagram(self) -> io::Result<UnixDatagram> {
        self.expect(libc::SOCK_DGRAM, "datagram")?;
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(self.fd))
    }
}

impl AsFd for UnixSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for UnixSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for UnixSocket {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl FromRawFd for UnixSocket {
    /// # Safety
    ///
    /// `fd` is an open Unix-domain stream socket that nothing else owns
    /// (use [`UnixSocket::new_datagram`] for datagram sockets).
    unsafe fn from_raw_fd(fd: RawFd) -> UnixSocket {
        UnixSocket {
            // SAFETY: the caller's promise, above.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ty: libc::SOCK_STREAM,
        }
    }
}
