//! [`TcpSocket`]: a TCP socket configured before it connects or listens
//! (tokio's `TcpSocket`), for what `TcpListener::bind` and
//! `TcpStream::connect` do not choose: the listen backlog, `SO_REUSEADDR`,
//! `SO_REUSEPORT`, buffer sizes, a local address to connect from.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{TcpListener, TcpStream};
use crate::net::sockopt;

/// A TCP socket not yet connected or listening.
///
/// ```
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use kevent_runtime::net::TcpSocket;
///
/// let socket = TcpSocket::new_v4()?;
/// socket.set_reuseaddr(true)?;
/// socket.bind("127.0.0.1:0".parse().unwrap())?;
/// // Room for 1024 connections waiting to be accepted (`bind` takes 128).
/// let listener = socket.listen(1024)?;
/// let addr = listener.local_addr()?;
/// let client = TcpSocket::new_v4()?.connect(addr).await?;
/// let (_server, _) = listener.accept().await?;
/// assert_eq!(client.peer_addr()?, addr);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    fd: OwnedFd,
}

impl TcpSocket {
    /// A new IPv4 TCP socket (nonblocking, close-on-exec).
    pub fn new_v4() -> io::Result<TcpSocket> {
        Self::new(libc::AF_INET)
    }

    /// A new IPv6 TCP socket (nonblocking, close-on-exec).
    pub fn new_v6() -> io::Result<TcpSocket> {
        Self::new(libc::AF_INET6)
    }

    fn new(domain: libc::c_int) -> io::Result<TcpSocket> {
        Ok(TcpSocket {
            fd: sockopt::socket(domain, libc::SOCK_STREAM)?,
        })
    }

    /// `SO_REUSEADDR`: bind a listening address whose old connections
    /// still wait in `TIME_WAIT`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        sockopt::set_int(
            self,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            on as libc::c_int,
        )
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        Ok(sockopt::int(self, libc::SOL_SOCKET, libc::SO_REUSEADDR)? != 0)
    }

    /// `SO_REUSEPORT`: several sockets, each with it set, bind one address
    /// (the kernel spreads incoming connections among their listeners).
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        sockopt::set_int(
            self,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            on as libc::c_int,
        )
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        Ok(sockopt::int(self, libc::SOL_SOCKET, libc::SO_REUSEPORT)? != 0)
    }

    /// `SO_SNDBUF` (Linux doubles the value given, for its bookkeeping).
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        sockopt::set_int(self, libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(size))
    }

    /// `SO_SNDBUF` as the kernel reports it.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(sockopt::int(self, libc::SOL_SOCKET, libc::SO_SNDBUF)? as u32)
    }

    /// `SO_RCVBUF` (Linux doubles the value given, for its bookkeeping).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        sockopt::set_int(self, libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(size))
    }

    /// `SO_RCVBUF` as the kernel reports it.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(sockopt::int(self, libc::SOL_SOCKET, libc::SO_RCVBUF)? as u32)
    }

    /// `SO_KEEPALIVE`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        sockopt::set_int(
            self,
            libc::SOL_SOCKET,
            libc::SO_KEEPALIVE,
            on as libc::c_int,
        )
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(sockopt::int(self, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0)
    }

    /// `TCP_NODELAY` (kept by the stream `connect` makes).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        sockopt::set_int(
            self,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            on as libc::c_int,
        )
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(sockopt::int(self, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
    }

    /// `SO_LINGER` (see [`TcpStream::set_linger`]).
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        sockopt::set_linger(self, dur)
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sockopt::linger(self)
    }

    /// Sets `SO_LINGER` to zero: closing the connection made from this
    /// socket resets it instead of closing it gracefully.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        sockopt::set_linger(self, Some(Duration::ZERO))
    }

    /// Sets `IP_TOS`, the type-of-service byte of outgoing IPv4 packets
    /// (DSCP and ECN bits; the kernel may keep the ECN bits its own).
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        sockopt::set_int(self, libc::IPPROTO_IP, libc::IP_TOS, clamp(tos))
    }

    /// Reads `IP_TOS`.
    pub fn tos_v4(&self) -> io::Result<u32> {
        sockopt::int(self, libc::IPPROTO_IP, libc::IP_TOS).map(|v| v as u32)
    }

    /// Binds the socket to the network interface `interface`
    /// (`SO_BINDTODEVICE`, e.g. `Some(b"eth0")`): its packets then go
    /// through that interface only, whatever the routes say. `None`
    /// removes the binding. Needs `CAP_NET_RAW` (`PermissionDenied`
    /// without it); a name longer than 15 bytes is `InvalidInput`, an
    /// unknown one `ENODEV`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        sockopt::bind_device(self, interface)
    }

    /// The interface the socket is bound to by
    /// [`bind_device`](TcpSocket::bind_device), `None` if none.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        sockopt::device(self)
    }

    /// Sets `IPV6_TCLASS`, the traffic class of outgoing IPv6 packets (an
    /// IPv6 socket only).
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        sockopt::set_int(self, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, clamp(tclass))
    }

    /// Reads `IPV6_TCLASS`.
    pub fn tclass_v6(&self) -> io::Result<u32> {
        sockopt::int(self, libc::IPPROTO_IPV6, libc::IPV6_TCLASS).map(|v| v as u32)
    }

    /// Binds the socket to `addr` (port 0: the kernel picks one).
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        sockopt::bind(self, &addr)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_std(|s| s.local_addr())
    }

    /// Takes the pending socket error (`SO_ERROR`), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.with_std(|s| s.take_error())
    }

    /// Connects to `addr`, consuming the socket.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        sockopt::start_connect(&self, &addr)?;
        let std = std::net::TcpStream::from(self.fd);
        TcpStream::new(mio::net::TcpStream::from_std(std))?
            .established()
            .await
    }

    /// Listens with room for `backlog` connections waiting to be accepted
    /// (the kernel caps it at `net.core.somaxconn`), consuming the socket.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        sockopt::listen(&self, backlog)?;
        TcpListener::from_std(std::net::TcpListener::from(self.fd))
    }

    /// Takes a std stream's socket (say, from another library) to configure
    /// and connect.
    pub fn from_std_stream(stream: std::net::TcpStream) -> TcpSocket {
        TcpSocket {
            fd: OwnedFd::from(stream),
        }
    }

    /// Runs `f` on a std view of the socket (for what std already offers).
    fn with_std<T>(&self, f: impl FnOnce(&std::net::TcpStream) -> T) -> T {
        let view = std::mem::ManuallyDrop::new(
            // SAFETY: the fd is ours and stays open for the call; the view
            // is never dropped (ManuallyDrop), so it does not close it.
            unsafe { std::net::TcpStream::from_raw_fd(self.fd.as_raw_fd()) },
        );
        f(&view)
    }
}

/// A buffer size as the C call takes it.
fn clamp(size: u32) -> libc::c_int {
    size.min(libc::c_int::MAX as u32) as libc::c_int
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for TcpSocket {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl FromRawFd for TcpSocket {
    /// # Safety
    ///
    /// `fd` is an open TCP socket that nothing else owns.
    unsafe fn from_raw_fd(fd: RawFd) -> TcpSocket {
        TcpSocket {
            // SAFETY: the caller's promise, above.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }
}
