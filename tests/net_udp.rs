//! `kevent::net::UdpSocket` under each runtime flavor.

mod net_support;

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kevent::net::UdpSocket;
use kevent::reactor::Interest;
use net_support::each_flavor;

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

#[test]
fn send_to_and_recv_from_round_trip() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        let n = a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
        assert_eq!(n, 4);
        let mut buf = [0; 32];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        b.send_to(b"pong", from).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b.local_addr().unwrap()));
    });
}

#[test]
fn ipv6_send_to_and_recv_from() {
    each_flavor(|| async {
        let a = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await.unwrap();
        let b = UdpSocket::bind("[::1]:0").await.unwrap();
        a.send_to(b"six", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 8];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"six"[..], a.local_addr().unwrap()));
    });
}

#[test]
fn connected_send_and_recv() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        assert_eq!(
            a.peer_addr().unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(a.send(b"hello").await.unwrap(), 5);
        let mut buf = [0; 8];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        b.send(b"back").await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn connected_socket_ignores_other_senders() {
    each_flavor(|| async {
        let (a, b, stranger) = (socket().await, socket().await, socket().await);
        a.connect(b.local_addr().unwrap()).await.unwrap();
        stranger
            .send_to(b"noise", a.local_addr().unwrap())
            .await
            .unwrap();
        b.send_to(b"signal", a.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 8];
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"signal");
    });
}

#[test]
fn recv_waits_for_a_datagram_sent_later() {
    each_flavor(|| async {
        let (a, b) = (socket().await, Arc::new(socket().await));
        let b2 = b.clone();
        let receiver = kevent::spawn(async move {
            let mut buf = [0; 8];
            let (n, _) = b2.recv_from(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        kevent::time::sleep(Duration::from_millis(20)).await;
        a.send_to(b"late", b.local_addr().unwrap()).await.unwrap();
        assert_eq!(receiver.await.unwrap(), b"late");
    });
}

#[test]
fn peek_from_leaves_the_datagram_queued() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        a.send_to(b"first", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 8];
        let (n, from) = b.peek_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], a.local_addr().unwrap()));
        let (n, _) = b.try_peek_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");
    });
}

#[test]
fn try_recv_would_block_until_a_datagram_arrives() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        let mut buf = [0; 8];
        let err = b.try_recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        a.writable().await.unwrap();
        a.try_send_to(b"now", b.local_addr().unwrap()).unwrap();
        let (n, _) = loop {
            b.readable().await.unwrap();
            match b.try_recv_from(&mut buf) {
                Ok(r) => break r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"now");
        let err = b.try_recv_from(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

        // Connected forms.
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.try_send(b"x").unwrap();
        let ready = b.ready(Interest::READABLE).await.unwrap();
        assert!(ready.is_readable());
        let n = loop {
            match b.try_recv(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => b.readable().await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"x");
    });
}

#[test]
fn a_thousand_datagrams_ping_pong_between_tasks() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let echo = kevent::spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..1000 {
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, a_addr);
                b.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let mut buf = [0; 64];
        for i in 0..1000u32 {
            a.send_to(&i.to_le_bytes(), b_addr).await.unwrap();
            // Loopback does not drop under this load, but a lost datagram
            // must fail the test, not hang it: the flavor deadline applies.
            let (n, _) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes());
        }
        echo.await.unwrap();
    });
}

#[test]
fn one_socket_sends_and_receives_from_two_tasks() {
    each_flavor(|| async {
        let a = Arc::new(socket().await);
        let b = socket().await;
        let b_addr = b.local_addr().unwrap();
        let echo = kevent::spawn(async move {
            let mut buf = [0; 8];
            for _ in 0..200 {
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                b.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let sender = a.clone();
        let send = kevent::spawn(async move {
            for i in 0..200u32 {
                sender.send_to(&i.to_le_bytes(), b_addr).await.unwrap();
                if i % 16 == 0 {
                    kevent::task::yield_now().await;
                }
            }
        });
        let mut seen = 0;
        let mut buf = [0; 8];
        while seen < 200 {
            let (n, _) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 4);
            seen += 1;
        }
        send.await.unwrap();
        echo.await.unwrap();
    });
}

#[test]
fn send_to_and_connect_resolve_host_names() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        let port = b.local_addr().unwrap().port();
        a.send_to(b"by name", ("localhost", port)).await.unwrap();
        let mut buf = [0; 16];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"by name");
        a.send_to(b"by string", format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"by string");
        a.connect(format!("localhost:{port}")).await.unwrap();
        assert_eq!(a.peer_addr().unwrap().port(), port);
        let empty: &[SocketAddr] = &[];
        let err = a.send_to(b"nowhere", empty).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn socket_options_round_trip() {
    each_flavor(|| async {
        let s = socket().await;
        assert!(!s.broadcast().unwrap());
        s.set_broadcast(true).unwrap();
        assert!(s.broadcast().unwrap());
        s.set_ttl(33).unwrap();
        assert_eq!(s.ttl().unwrap(), 33);
        s.set_multicast_ttl_v4(4).unwrap();
        assert_eq!(s.multicast_ttl_v4().unwrap(), 4);
        s.set_multicast_loop_v4(false).unwrap();
        assert!(!s.multicast_loop_v4().unwrap());
        assert!(s.take_error().unwrap().is_none());
    });
}

#[test]
fn std_conversions_round_trip() {
    each_flavor(|| async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = UdpSocket::from_std(std_socket).unwrap();
        let addr = s.local_addr().unwrap();
        let peer = socket().await;
        peer.send_to(b"hi", addr).await.unwrap();
        let mut buf = [0; 4];
        let (n, _) = s.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        let std_socket = s.into_std().unwrap();
        assert_eq!(std_socket.local_addr().unwrap(), addr);
        let s = UdpSocket::try_from(std_socket).unwrap();
        assert_eq!(s.local_addr().unwrap(), addr);
    });
}

#[test]
fn bind_device_to_lo_reads_back_and_still_carries_loopback_datagrams() {
    each_flavor(|| async {
        let (a, b) = (socket().await, socket().await);
        assert_eq!(a.device().unwrap(), None);
        let err = a.bind_device(Some(b"a-name-of-16-byt")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        match a.bind_device(Some(b"lo")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                assert_eq!(a.device().unwrap(), None);
                eprintln!("no CAP_NET_RAW: bind_device refused, as it must be");
                return;
            }
            Err(e) => panic!("binding to lo: {e}"),
        }
        assert_eq!(a.device().unwrap().as_deref(), Some(&b"lo"[..]));
        let err = a.bind_device(Some(b"nosuchdev0")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
        a.send_to(b"on lo", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"on lo"[..], a.local_addr().unwrap()));
        a.bind_device(None).unwrap();
        assert_eq!(a.device().unwrap(), None);
    });
}
