//! `UdpSocket`: datagrams over IP.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::task::{Context, Poll};

use crate::driver::slab::Direction;
use crate::net::addr::{each_addr, first_addr, ToSocketAddrs};
use crate::net::datagram::datagram_socket;
use crate::net::evented::Evented;
use crate::net::sockopt;

/// A UDP socket (tokio's `UdpSocket`).
///
/// Unconnected, it sends with [`send_to`](UdpSocket::send_to) and receives
/// from anyone with [`recv_from`](UdpSocket::recv_from). After
/// [`connect`](UdpSocket::connect) it talks to one peer with
/// [`send`](UdpSocket::send) and [`recv`](UdpSocket::recv), and the kernel
/// drops datagrams from anyone else.
///
/// The socket is used through `&self`, so one `Arc<UdpSocket>` can send
/// from one task and receive in another; several tasks may wait on the
/// same direction, and the next readiness wakes them all.
///
/// ```
/// use kevent_runtime::net::UdpSocket;
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let a = UdpSocket::bind("127.0.0.1:0").await?;
/// let b = UdpSocket::bind("127.0.0.1:0").await?;
/// a.send_to(b"hi", b.local_addr()?).await?;
/// let mut buf = [0; 16];
/// let (n, from) = b.recv_from(&mut buf).await?;
/// assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr()?));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    /// The registered socket.
    io: Evented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`, trying each address it resolves to in turn;
    /// returns the last error if none binds.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| async move {
            UdpSocket::new(mio::net::UdpSocket::bind(a)?)
        })
        .await
    }

    /// Sets the default peer for [`send`](UdpSocket::send) and
    /// [`recv`](UdpSocket::recv), trying each address `addr` resolves to;
    /// returns the last error if none works.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| async move { self.io.get_ref().connect(a) }).await
    }

    /// Sends `buf` to `target` (its first resolved address).
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = first_addr(target).await?;
        self.io
            .io(Direction::Write, |s| s.send_to(buf, target))
            .await
    }

    /// Polling form of [`send_to`](UdpSocket::send_to).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Sends to `target` without waiting; `WouldBlock` if the send buffer
    /// is full.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// Like [`recv_from`](UdpSocket::recv_from), but leaves the datagram
    /// queued: the next receive returns it again.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Direction::Read, |s| s.peek_from(buf)).await
    }

    /// Polling form of [`peek_from`](UdpSocket::peek_from).
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek_from(buf))
    }

    /// Peeks without waiting; `WouldBlock` if no datagram is queued.
    pub fn try_peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.peek_from(buf))
    }

    /// The sender of the next queued datagram, which stays queued. Waits
    /// for one.
    pub async fn peek_sender(&self) -> io::Result<SocketAddr> {
        self.io
            .io(Direction::Read, |s| s.peek_from(&mut []))
            .await
            .map(|(_, a)| a)
    }

    /// Polling form of [`peek_sender`](UdpSocket::peek_sender).
    pub fn poll_peek_sender(&self, cx: &mut Context<'_>) -> Poll<io::Result<SocketAddr>> {
        self.io
            .poll_io(cx, Direction::Read, |s| s.peek_from(&mut []))
            .map_ok(|(_, a)| a)
    }

    /// [`peek_sender`](UdpSocket::peek_sender) without waiting;
    /// `WouldBlock` if no datagram is queued.
    pub fn try_peek_sender(&self) -> io::Result<SocketAddr> {
        self.io
            .try_io(Direction::Read, |s| s.peek_from(&mut []))
            .map(|(_, a)| a)
    }

    /// Like [`recv`](UdpSocket::recv), but leaves the datagram queued.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.peek(buf)).await
    }

    /// Sets `IP_TOS`, the type-of-service byte of outgoing IPv4 datagrams.
    pub fn set_tos_v4(&self, tos: u32) -> io::Result<()> {
        let tos = tos.min(libc::c_int::MAX as u32) as libc::c_int;
        sockopt::set_int(self.io.get_ref(), libc::IPPROTO_IP, libc::IP_TOS, tos)
    }

    /// Reads `IP_TOS`.
    pub fn tos_v4(&self) -> io::Result<u32> {
        sockopt::int(self.io.get_ref(), libc::IPPROTO_IP, libc::IP_TOS).map(|v| v as u32)
    }

    /// Binds the socket to the network interface `interface`
    /// (`SO_BINDTODEVICE`, e.g. `Some(b"eth0")`): it then sends and
    /// receives through that interface only. `None` removes the binding.
    /// Needs `CAP_NET_RAW` (`PermissionDenied` without it); a name longer
    /// than 15 bytes is `InvalidInput`, an unknown one `ENODEV`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        sockopt::bind_device(self.io.get_ref(), interface)
    }

    /// The interface the socket is bound to by
    /// [`bind_device`](UdpSocket::bind_device), `None` if none.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        sockopt::device(self.io.get_ref())
    }

    /// Sets `IPV6_TCLASS`, the traffic class of outgoing IPv6 datagrams (an
    /// IPv6 socket only).
    pub fn set_tclass_v6(&self, tclass: u32) -> io::Result<()> {
        let tclass = tclass.min(libc::c_int::MAX as u32) as libc::c_int;
        sockopt::set_int(
            self.io.get_ref(),
            libc::IPPROTO_IPV6,
            libc::IPV6_TCLASS,
            tclass,
        )
    }

    /// Reads `IPV6_TCLASS`.
    pub fn tclass_v6(&self) -> io::Result<u32> {
        sockopt::int(self.io.get_ref(), libc::IPPROTO_IPV6, libc::IPV6_TCLASS).map(|v| v as u32)
    }

    /// Sets `SO_BROADCAST`: whether sends to broadcast addresses are
    /// allowed.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(on)
    }

    /// Reads `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(ttl)
    }

    /// Reads `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(on)
    }

    /// Reads `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }

    /// Joins the IPv4 multicast group `multiaddr` on `interface`.
    pub fn join_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(&multiaddr, &interface)
    }

    /// Joins the IPv6 multicast group `multiaddr` on interface index
    /// `interface` (0: any).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(multiaddr, interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, multiaddr: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(&multiaddr, &interface)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(multiaddr, interface)
    }
}

datagram_socket!(
    UdpSocket,
    mio: mio::net::UdpSocket,
    std: std::net::UdpSocket,
    addr: SocketAddr
);
