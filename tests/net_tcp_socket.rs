//! `kevent::net::TcpSocket`: options before connect/listen, the listen
//! backlog, `SO_REUSEPORT`, connecting from a bound address, IPv6, errors.
//! Every test runs under each runtime flavor (see
//! `net_support::each_flavor`).

mod net_support;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::TcpSocket;
use net_support::each_flavor;
use net_support::tcp::{closed_addr, echo};

/// Sends `msg` on `stream` to an echo server, shuts the write side, and
/// checks that exactly `msg` comes back.
async fn assert_echoed(mut stream: kevent::net::TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    stream.close().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, msg);
}

/// The error a fresh IPv4 socket's connect to `addr` ends with.
async fn v4_connect_error(addr: SocketAddr) -> io::Error {
    TcpSocket::new_v4()
        .unwrap()
        .connect(addr)
        .await
        .unwrap_err()
}

fn loopback_v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn a_backlog_of_1024_holds_a_burst_of_300_connects_until_accepted() {
    // `TcpListener::bind` listens with 128: the 130th concurrent connect
    // would wait for a SYN retransmission. Here every connect completes
    // before a single accept.
    const BURST: usize = 300;
    each_flavor(|| async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(loopback_v4()).unwrap();
        let listener = socket.listen(1024).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..BURST)
            .map(|_| kevent::spawn(async move { TcpSocket::new_v4()?.connect(addr).await }))
            .collect();
        // With a backlog too small the surplus SYNs are dropped and those
        // connects never complete while nothing is accepted.
        let connected = kevent::time::timeout(Duration::from_secs(20), async {
            let mut connected = Vec::new();
            for c in clients {
                connected.push(c.await.unwrap().expect("connect"));
            }
            connected
        })
        .await
        .expect("connects past the backlog hung: was it applied?");
        for _ in 0..BURST {
            let (_s, peer) = listener.accept().await.unwrap();
            assert!(connected.iter().any(|c| c.local_addr().unwrap() == peer));
        }
    });
}

#[test]
fn options_set_before_connecting_read_back_and_carry_over() {
    each_flavor(|| async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        assert!(socket.reuseaddr().unwrap());
        socket.set_reuseport(true).unwrap();
        assert!(socket.reuseport().unwrap());
        socket.set_keepalive(true).unwrap();
        assert!(socket.keepalive().unwrap());
        socket.set_nodelay(true).unwrap();
        assert!(socket.nodelay().unwrap());
        socket.set_linger(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(socket.linger().unwrap(), Some(Duration::from_secs(3)));
        socket.set_linger(None).unwrap();
        assert_eq!(socket.linger().unwrap(), None);
        socket.set_send_buffer_size(64 * 1024).unwrap();
        assert!(socket.send_buffer_size().unwrap() >= 64 * 1024);
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        assert!(socket.recv_buffer_size().unwrap() >= 64 * 1024);
        assert!(socket.take_error().unwrap().is_none());

        // Bound first: the connection leaves from that address, and the
        // options stay with the stream.
        socket.bind(loopback_v4()).unwrap();
        let from = socket.local_addr().unwrap();
        assert_ne!(from.port(), 0);
        let server = net_support::tcp::listener().await;
        let to = server.local_addr().unwrap();
        let echoing = kevent::spawn(async move {
            let (s, peer) = server.accept().await.unwrap();
            assert_eq!(peer, from);
            echo(s).await.unwrap()
        });
        let stream = socket.connect(to).await.unwrap();
        assert_eq!(stream.local_addr().unwrap(), from);
        assert!(stream.nodelay().unwrap());
        assert_echoed(stream, b"through a TcpSocket").await;
        assert_eq!(echoing.await.unwrap(), 19);
    });
}

#[test]
fn reuseport_lets_two_sockets_listen_on_one_port_and_no_third_without_it() {
    each_flavor(|| async {
        let first = TcpSocket::new_v4().unwrap();
        first.set_reuseport(true).unwrap();
        first.bind(loopback_v4()).unwrap();
        let addr = first.local_addr().unwrap();
        let second = TcpSocket::new_v4().unwrap();
        second.set_reuseport(true).unwrap();
        second.bind(addr).unwrap();
        let third = TcpSocket::new_v4().unwrap();
        let err = third.bind(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let a = first.listen(16).unwrap();
        let b = second.listen(16).unwrap();
        assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
        // A connection reaches one of the two.
        let _c = TcpSocket::new_v4().unwrap().connect(addr).await.unwrap();
        let accepted = futures::future::select(Box::pin(a.accept()), Box::pin(b.accept())).await;
        accepted.factor_first().0.unwrap();
    });
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    each_flavor(|| async {
        let addr = closed_addr().await;
        let err = v4_connect_error(addr).await;
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn a_v4_socket_refuses_a_v6_address_with_an_error() {
    each_flavor(|| async {
        let socket = TcpSocket::new_v4().unwrap();
        assert!(socket.bind("[::1]:0".parse().unwrap()).is_err());
        let err = v4_connect_error("[::1]:9".parse().unwrap()).await;
        assert_ne!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn ipv6_loopback_listens_and_connects() {
    each_flavor(|| async {
        let socket = TcpSocket::new_v6().unwrap();
        if let Err(e) = socket.bind("[::1]:0".parse().unwrap()) {
            // No IPv6 loopback on this machine: nothing to test.
            assert_eq!(e.kind(), io::ErrorKind::AddrNotAvailable, "{e}");
            return;
        }
        let listener = socket.listen(8).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let server = kevent::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            echo(s).await.unwrap()
        });
        let c = TcpSocket::new_v6().unwrap().connect(addr).await.unwrap();
        assert_echoed(c, b"v6").await;
        assert_eq!(server.await.unwrap(), 2);
    });
}

#[test]
fn bind_device_to_lo_reads_back_and_still_reaches_loopback() {
    each_flavor(|| async {
        let socket = TcpSocket::new_v4().unwrap();
        assert_eq!(socket.device().unwrap(), None);
        // Bad names: too long for IFNAMSIZ, a NUL byte, no such interface.
        let err = socket.bind_device(Some(b"a-name-of-16-byt")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = socket.bind_device(Some(b"l\0o")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        match socket.bind_device(Some(b"lo")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                // Without CAP_NET_RAW the error says so, and nothing is bound.
                assert_eq!(socket.device().unwrap(), None);
                eprintln!("no CAP_NET_RAW: bind_device refused, as it must be");
                return;
            }
            Err(e) => panic!("binding to lo: {e}"),
        }
        assert_eq!(socket.device().unwrap().as_deref(), Some(&b"lo"[..]));
        let err = socket.bind_device(Some(b"nosuchdev0")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
        socket.bind_device(None).unwrap();
        assert_eq!(socket.device().unwrap(), None);
        socket.bind_device(Some(b"lo")).unwrap();

        let server = net_support::tcp::listener().await;
        let to = server.local_addr().unwrap();
        let echoing = kevent::spawn(async move {
            let (s, _) = server.accept().await.unwrap();
            echo(s).await.unwrap()
        });
        let stream = socket.connect(to).await.unwrap();
        assert_echoed(stream, b"via lo").await;
        assert_eq!(echoing.await.unwrap(), 6);
    });
}
