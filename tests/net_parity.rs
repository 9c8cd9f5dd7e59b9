//! The rest of tokio's `net` surface: `lookup_host`, `UnixSocket`,
//! `peer_cred`, `connect_addr`, zero linger, TOS/traffic class,
//! `recv_buf` and friends, `peek_sender`, `try_read_buf`, under each
//! runtime flavor.

mod net_support;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{
    lookup_host, TcpListener, TcpSocket, TcpStream, UdpSocket, UnixDatagram, UnixListener,
    UnixSocket, UnixStream,
};
use net_support::{each_flavor, socket_path};

#[test]
fn lookup_host_resolves_literals_and_names_and_rejects_a_missing_port() {
    each_flavor(|| async {
        let v: Vec<SocketAddr> = lookup_host("127.0.0.1:8080").await.unwrap().collect();
        assert_eq!(v, ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        let v: Vec<SocketAddr> = lookup_host(("localhost", 9)).await.unwrap().collect();
        assert!(!v.is_empty());
        assert!(
            v.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{v:?}"
        );
        let err = lookup_host("localhost").await.err().expect("no port");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn set_zero_linger_makes_the_drop_a_reset() {
    each_flavor(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_zero_linger().unwrap();
        assert_eq!(server.linger().unwrap(), Some(Duration::ZERO));
        drop(server);
        let err = client.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    });
}

#[test]
fn tcp_socket_sets_tos_and_traffic_class() {
    each_flavor(|| async {
        let v4 = TcpSocket::new_v4().unwrap();
        v4.set_tos_v4(0x10).unwrap();
        assert_eq!(v4.tos_v4().unwrap(), 0x10);
        v4.set_zero_linger().unwrap();
        assert_eq!(v4.linger().unwrap(), Some(Duration::ZERO));
        // The traffic class is an IPv6 option.
        assert!(v4.set_tclass_v6(0x20).is_err());
        let Ok(v6) = TcpSocket::new_v6() else {
            eprintln!("no IPv6 here: traffic class not checked");
            return;
        };
        v6.set_tclass_v6(0x20).unwrap();
        assert_eq!(v6.tclass_v6().unwrap(), 0x20);
        // The TOS still applies to a connection made from it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = v4.connect(listener.local_addr().unwrap()).await.unwrap();
        assert_eq!(stream.linger().unwrap(), Some(Duration::ZERO));
    });
}

#[test]
fn udp_recv_buf_appends_into_spare_capacity() {
    each_flavor(|| async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        a.connect(b_addr).await.unwrap();
        b.connect(a_addr).await.unwrap();

        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(b">>");
        assert_eq!(
            a.try_recv_buf(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(buf, b">>", "a failed receive leaves the buffer alone");
        b.send(b"first").await.unwrap();
        assert_eq!(a.recv_buf(&mut buf).await.unwrap(), 5);
        assert_eq!(buf, b">>first");

        b.send(b"second").await.unwrap();
        let (n, from) = a.recv_buf_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (6, b_addr));
        assert_eq!(buf, b">>firstsecond");

        // No spare capacity: 64 bytes are made, the rest is cut off.
        b.send(&[9; 100]).await.unwrap();
        let mut full = Vec::new();
        a.readable().await.unwrap();
        let got = loop {
            match a.try_recv_buf_from(&mut full) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => a.readable().await.unwrap(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(got, (full.len(), b_addr));
        assert!(full.len() >= 64 && full.len() < 100, "{}", full.len());
        assert!(full.iter().all(|&x| x == 9));
    });
}

#[test]
fn udp_peek_sender_leaves_the_datagram_queued() {
    each_flavor(|| async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(
            a.try_peek_sender().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        b.send_to(b"who", a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peek_sender().await.unwrap(), b.local_addr().unwrap());
        assert_eq!(a.try_peek_sender().unwrap(), b.local_addr().unwrap());
        let mut buf = [0; 8];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"who"[..], b.local_addr().unwrap()));
    });
}

#[test]
fn unix_datagram_recv_buf_family() {
    each_flavor(|| async {
        let path = socket_path("dgram-buf");
        let a = UnixDatagram::bind(&path).unwrap();
        let b = UnixDatagram::unbound().unwrap();
        b.connect(&path).unwrap();
        let mut buf = Vec::with_capacity(16);
        assert_eq!(
            a.try_recv_buf(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        b.send(b"one").await.unwrap();
        assert_eq!(a.recv_buf(&mut buf).await.unwrap(), 3);
        b.send(b"two").await.unwrap();
        let (n, from) = a.recv_buf_from(&mut buf).await.unwrap();
        assert_eq!(n, 3);
        assert!(from.is_unnamed());
        assert_eq!(buf, b"onetwo");
        b.send(b"three").await.unwrap();
        a.readable().await.unwrap();
        let (n, _) = a.try_recv_buf_from(&mut buf).unwrap();
        assert_eq!(n, 5);
        assert_eq!(buf, b"onetwothree");
        let _ = std::fs::remove_file(&path);
    });
}

#[test]
fn unix_peer_cred_names_this_process() {
    each_flavor(|| async {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = a.peer_cred().unwrap();
        // SAFETY: getuid/getgid only read this process's ids.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        assert_eq!(cred.uid(), uid);
        assert_eq!(cred.gid(), gid);
        assert_eq!(cred.pid(), Some(std::process::id() as libc::pid_t));
    });
}

#[test]
fn unix_stream_connect_addr_reaches_a_listener() {
    each_flavor(|| async {
        let path = socket_path("connect-addr");
        let listener = UnixListener::bind(&path).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = UnixStream::connect_addr(&addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"via addr").await.unwrap();
        let mut buf = [0; 8];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"via addr");
        drop(listener);
        let _ = std::fs::remove_file(&path);
        // Nobody there any more.
        let err = UnixStream::connect_addr(&addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    });
}

#[test]
fn unix_socket_binds_listens_connects_and_makes_datagrams() {
    each_flavor(|| async {
        let path = socket_path("unix-socket");
        let socket = UnixSocket::new_stream().unwrap();
        socket.bind(&path).unwrap();
        let listener = socket.listen(8).unwrap();
        let client_path = socket_path("unix-socket-client");
        let client = UnixSocket::new_stream().unwrap();
        client.bind(&client_path).unwrap();
        let mut client = client.connect(&path).await.unwrap();
        let (mut server, from) = listener.accept().await.unwrap();
        assert_eq!(from.as_pathname(), Some(client_path.as_path()));
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");

        // Bad input: a used path, a missing one, the wrong kind of socket.
        let err = UnixSocket::new_stream().unwrap().bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let missing = socket_path("unix-socket-missing");
        let err = UnixSocket::new_stream()
            .unwrap()
            .connect(&missing)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = UnixSocket::new_datagram().unwrap().listen(8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let dgram_path = socket_path("unix-socket-dgram");
        let dgram = UnixSocket::new_datagram().unwrap();
        dgram.bind(&dgram_path).unwrap();
        let dgram = dgram.datagram().unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to(b"d", &dgram_path).await.unwrap();
        let mut one = [0; 1];
        assert_eq!(dgram.recv(&mut one).await.unwrap(), 1);
        for p in [path, client_path, dgram_path] {
            let _ = std::fs::remove_file(p);
        }
    });
}

#[test]
fn try_read_buf_appends_on_streams_and_their_read_halves() {
    each_flavor(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"abc").await.unwrap();
        let mut buf = b"<".to_vec();
        loop {
            server.readable().await.unwrap();
            match server.try_read_buf(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => {
                    r.unwrap();
                    if buf.len() == 4 {
                        break;
                    }
                }
            }
        }
        assert_eq!(buf, b"<abc");

        let (mut ua, mut ub) = UnixStream::pair().unwrap();
        ua.write_all(b"half").await.unwrap();
        let (read, _write) = UnixStream::split(&mut ub);
        let mut got = Vec::new();
        while got.len() < 4 {
            read.readable().await.unwrap();
            match read.try_read_buf(&mut got) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => assert!(r.unwrap() > 0),
            }
        }
        assert_eq!(got, b"half");
        drop(ua);
        let (read, _write) = server.into_split();
        drop(client);
        let mut rest = Vec::with_capacity(8);
        loop {
            read.readable().await.unwrap();
            match read.try_read_buf(&mut rest) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break assert_eq!(r.unwrap(), 0, "end of file"),
            }
        }
    });
}

#[test]
fn udp_socket_sets_tos_and_traffic_class() {
    each_flavor(|| async {
        let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        v4.set_tos_v4(0x28).unwrap();
        assert_eq!(v4.tos_v4().unwrap(), 0x28);
        assert!(v4.set_tclass_v6(0x20).is_err(), "an IPv6 option on IPv4");
        let Ok(v6) = UdpSocket::bind("[::1]:0").await else {
            eprintln!("no IPv6 loopback here: traffic class not checked");
            return;
        };
        v6.set_tclass_v6(0x20).unwrap();
        assert_eq!(v6.tclass_v6().unwrap(), 0x20);
    });
}

#[test]
fn recv_buf_and_try_read_buf_take_any_buf_mut() {
    use bytes::BufMut;
    each_flavor(|| async {
        // UDP into a `BytesMut`, appending after what it holds.
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b_addr = b.local_addr().unwrap();
        a.connect(b_addr).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        let mut bytes = bytes::BytesMut::with_capacity(64);
        bytes.put_slice(b"<");
        b.send(b"datagram").await.unwrap();
        assert_eq!(a.recv_buf(&mut bytes).await.unwrap(), 8);
        assert_eq!(&bytes[..], b"<datagram");
        b.send(b"again").await.unwrap();
        let (n, from) = a.recv_buf_from(&mut bytes).await.unwrap();
        assert_eq!((n, from), (5, b_addr));
        assert_eq!(&bytes[..], b"<datagramagain");

        // Into a slice (`&mut [u8]` is a `BufMut`): filled from its
        // front, the slice moves past what was written, and a datagram
        // longer than it is cut.
        let mut backing = [0u8; 6];
        let mut slice = &mut backing[..];
        b.send(b"abc").await.unwrap();
        a.readable().await.unwrap();
        let n = loop {
            match a.try_recv_buf(&mut slice) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => a.readable().await.unwrap(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(n, 3);
        assert_eq!(slice.len(), 3);
        b.send(b"defghij").await.unwrap();
        a.readable().await.unwrap();
        let (n, _) = loop {
            match a.try_recv_buf_from(&mut slice) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => a.readable().await.unwrap(),
                r => break r.unwrap(),
            }
        };
        assert_eq!(n, 3, "what fit of the datagram");
        assert_eq!(&backing, b"abcdef");

        // A Unix datagram socket into a `BytesMut`.
        let path = socket_path("dgram-bufmut");
        let ua = UnixDatagram::bind(&path).unwrap();
        let ub = UnixDatagram::unbound().unwrap();
        ub.connect(&path).unwrap();
        let mut ubytes = bytes::BytesMut::new();
        ub.send(b"unix").await.unwrap();
        assert_eq!(ua.recv_buf(&mut ubytes).await.unwrap(), 4);
        assert_eq!(&ubytes[..], b"unix");
        let _ = std::fs::remove_file(&path);

        // A TCP stream and its read half into a `BytesMut`.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"stream").await.unwrap();
        let mut sbytes = bytes::BytesMut::new();
        while sbytes.len() < 6 {
            server.readable().await.unwrap();
            match server.try_read_buf(&mut sbytes) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => assert!(r.unwrap() > 0, "end of stream too early"),
            }
        }
        assert_eq!(&sbytes[..], b"stream");
        let (read, _write) = server.into_split();
        client.write_all(b"half").await.unwrap();
        let mut hbytes = bytes::BytesMut::new();
        while hbytes.len() < 4 {
            read.readable().await.unwrap();
            match read.try_read_buf(&mut hbytes) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => assert!(r.unwrap() > 0, "end of stream too early"),
            }
        }
        assert_eq!(&hbytes[..], b"half");
    });
}
