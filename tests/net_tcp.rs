//! `kevent::net` TCP data flow: echo, many clients, bulk transfer,
//! half-close, halves, options, conversions. Every test runs under each
//! runtime flavor (see `net_support::each_flavor`).

mod net_support;

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};
use net_support::tcp::{closed_addr, echo, listener, pair};
use net_support::{each_flavor, join, pattern, Checksum};

#[test]
fn echo_round_trip() {
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let server = kevent::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            echo(s).await.unwrap()
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        c.write_all(b"hello, kevent").await.unwrap();
        c.close().await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello, kevent");
        assert_eq!(server.await.unwrap(), 13);
    });
}

#[test]
fn hundred_clients_each_echo_ten_messages() {
    const CLIENTS: usize = 100;
    const MESSAGES: usize = 10;
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let acceptor = kevent::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..CLIENTS {
                let (s, _) = l.accept().await.unwrap();
                handlers.push(kevent::spawn(echo(s)));
            }
            let mut echoed = 0;
            for h in handlers {
                echoed += h.await.unwrap().unwrap();
            }
            echoed
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                kevent::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let mut sent = 0u64;
                    for m in 0..MESSAGES {
                        let msg = pattern((i * MESSAGES + m) as u64, 1 + (i * 37 + m * 101) % 3000);
                        s.write_all(&msg).await.unwrap();
                        let mut back = vec![0; msg.len()];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg, "client {i} message {m}");
                        sent += msg.len() as u64;
                    }
                    sent
                })
            })
            .collect();
        let mut sent = 0;
        for c in clients {
            sent += c.await.unwrap();
        }
        assert_eq!(acceptor.await.unwrap(), sent);
    });
}

/// Writes `data` in uneven chunks, then shuts down the write side.
async fn send_all(mut w: impl AsyncWriteExt + Unpin, data: Vec<u8>) -> io::Result<()> {
    for chunk in data.chunks(100_003) {
        w.write_all(chunk).await?;
    }
    w.close().await
}

/// Reads to end of file and returns the byte count and checksum.
async fn receive_all(mut r: impl AsyncReadExt + Unpin) -> io::Result<(usize, Checksum)> {
    let mut buf = vec![0; 64 * 1024];
    let (mut len, mut sum) = (0, Checksum::new());
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((len, sum));
        }
        sum.update(&buf[..n]);
        len += n;
    }
}

#[test]
fn eight_mebibytes_each_way_arrive_intact() {
    const LEN: usize = 8 << 20;
    each_flavor(|| async {
        let (client, server) = pair().await;
        let (to_server, to_client) = (pattern(1, LEN), pattern(2, LEN));
        let (want_at_server, want_at_client) = (Checksum::of(&to_server), Checksum::of(&to_client));

        // Both directions at once, so neither side can wait on the other's
        // full buffer.
        let (sr, sw) = server.into_split();
        let server_reader = kevent::spawn(receive_all(sr));
        let server_writer = kevent::spawn(send_all(sw, to_client));
        let (cr, cw) = client.into_split();
        let client_writer = kevent::spawn(send_all(cw, to_server));
        let at_client = receive_all(cr).await.unwrap();

        client_writer.await.unwrap().unwrap();
        server_writer.await.unwrap().unwrap();
        assert_eq!(server_reader.await.unwrap().unwrap(), (LEN, want_at_server));
        assert_eq!(at_client, (LEN, want_at_client));
    });
}

#[test]
fn half_close_lets_the_server_reply_after_eof() {
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let server = kevent::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut request = Vec::new();
            s.read_to_end(&mut request).await.unwrap();
            assert_eq!(request, b"request");
            // The client's write side is shut; ours still works.
            s.write_all(b"response").await.unwrap();
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"request").await.unwrap();
        c.close().await.unwrap();
        let mut response = Vec::new();
        c.read_to_end(&mut response).await.unwrap();
        assert_eq!(response, b"response");
        server.await.unwrap();
    });
}

#[test]
fn connect_tries_each_address_in_turn() {
    each_flavor(|| async {
        let dead = closed_addr().await;
        let l = listener().await;
        let live = l.local_addr().unwrap();
        let c = TcpStream::connect(&[dead, live][..]).await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), live);
        let err = TcpStream::connect([dead, dead]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let empty: &[SocketAddr] = &[];
        let err = TcpStream::connect(empty).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    });
}

#[test]
fn host_names_resolve_for_bind_and_connect() {
    each_flavor(|| async {
        let l = TcpListener::bind("localhost:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        let host = if addr.is_ipv4() { "localhost" } else { "::1" };
        let c = TcpStream::connect((host, addr.port())).await.unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        let c = TcpStream::connect(format!("localhost:{}", addr.port()))
            .await
            .unwrap();
        assert_eq!(c.peer_addr().unwrap(), addr);
        let err = TcpStream::connect("no-such-host.invalid:80")
            .await
            .unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::WouldBlock);
    });
}

#[test]
fn ipv6_loopback_echo() {
    each_flavor(|| async {
        let l = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let server = kevent::spawn(async move { echo(l.accept().await.unwrap().0).await });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"six").await.unwrap();
        let mut buf = [0; 3];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"six");
        drop(c);
        assert_eq!(server.await.unwrap().unwrap(), 3);
    });
}

#[test]
fn owned_halves_read_and_write_in_different_tasks() {
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let server = kevent::spawn(async move { echo(l.accept().await.unwrap().0).await });
        let (mut r, mut w) = TcpStream::connect(addr).await.unwrap().into_split();
        assert_eq!(r.peer_addr().unwrap(), addr);
        assert_eq!(w.local_addr().unwrap(), r.local_addr().unwrap());
        let writer = kevent::spawn(async move {
            for i in 0..200u32 {
                w.write_all(&i.to_le_bytes()).await.unwrap();
            }
            w // keep it open until the reader has everything
        });
        let reader = kevent::spawn(async move {
            for i in 0..200u32 {
                let mut b = [0; 4];
                r.read_exact(&mut b).await.unwrap();
                assert_eq!(u32::from_le_bytes(b), i);
            }
            r
        });
        let w = writer.await.unwrap();
        let r = reader.await.unwrap();
        drop(w); // shuts down the write side: the echo server sees EOF
        assert_eq!(server.await.unwrap().unwrap(), 800);
        let mut rest = Vec::new();
        let mut r = r;
        r.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    });
}

#[test]
fn reunite_gives_back_the_stream() {
    each_flavor(|| async {
        let (client, mut server) = pair().await;
        let local = client.local_addr().unwrap();
        let (r, w) = client.into_split();
        let mut client = r.reunite(w).unwrap();
        assert_eq!(client.local_addr().unwrap(), local);
        // Reuniting did not shut the write side down.
        client.write_all(b"still open").await.unwrap();
        let mut buf = [0; 10];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still open");

        let (other, _other_server) = pair().await;
        let (r1, w1) = client.into_split();
        let (r2, w2) = other.into_split();
        let err = r1.reunite(w2).unwrap_err();
        assert!(err.to_string().contains("not from the same"));
        let kevent::net::tcp::ReuniteError(r1, w2) = err;
        let err = w1.reunite(r2).unwrap_err();
        let kevent::net::tcp::ReuniteError(r2, w1) = err;
        r1.reunite(w1).unwrap();
        r2.reunite(w2).unwrap();
    });
}

#[test]
fn dropping_the_owned_write_half_shuts_down_but_forget_does_not() {
    each_flavor(|| async {
        let (client, mut server) = pair().await;
        let (_r, w) = client.into_split();
        drop(w);
        let mut buf = Vec::new();
        server.read_to_end(&mut buf).await.unwrap();
        assert!(buf.is_empty());

        let (client, server) = pair().await;
        let (r, w) = client.into_split();
        w.forget();
        let waited = kevent::time::timeout(Duration::from_millis(50), server.readable()).await;
        assert!(waited.is_err(), "forget() shut the write side down");
        drop(r);
    });
}

#[test]
fn borrowed_halves_read_and_write_concurrently_in_one_task() {
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let server = kevent::spawn(async move { echo(l.accept().await.unwrap().0).await });
        let c = TcpStream::connect(addr).await.unwrap();
        let data = pattern(9, 1 << 20);
        let (mut r, mut w) = c.split();
        let (sent, got) = join(
            async {
                w.write_all(&data).await.unwrap();
                w.close().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            },
        )
        .await;
        let () = sent;
        assert!(got == data, "echoed data differs");
        assert_eq!(server.await.unwrap().unwrap(), data.len() as u64);
    });
}

#[test]
fn socket_options_round_trip() {
    each_flavor(|| async {
        let (client, _server) = pair().await;
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        client.set_ttl(42).unwrap();
        assert_eq!(client.ttl().unwrap(), 42);
        assert_eq!(client.linger().unwrap(), None);
        client.set_linger(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(client.linger().unwrap(), Some(Duration::from_secs(3)));
        client.set_linger(None).unwrap();
        assert_eq!(client.linger().unwrap(), None);
        assert!(client.take_error().unwrap().is_none());
        let l = listener().await;
        l.set_ttl(17).unwrap();
        assert_eq!(l.ttl().unwrap(), 17);
    });
}

#[test]
fn nodelay_stream_round_trips_small_messages() {
    each_flavor(|| async {
        let (mut client, server) = pair().await;
        client.set_nodelay(true).unwrap();
        server.set_nodelay(true).unwrap();
        let server = kevent::spawn(echo(server));
        for i in 0..100u8 {
            client.write_all(&[i]).await.unwrap();
            let mut b = [0];
            client.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], i);
        }
        client.close().await.unwrap();
        assert_eq!(server.await.unwrap().unwrap(), 100);
    });
}

#[test]
fn vectored_reads_and_writes() {
    each_flavor(|| async {
        let (mut client, mut server) = pair().await;
        let n = client
            .write_vectored(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
            .await
            .unwrap();
        assert_eq!(n, 11);
        // Wait until all 11 bytes are queued, so one read takes them.
        let mut peeked = [0; 11];
        while server.peek(&mut peeked).await.unwrap() < 11 {
            kevent::task::yield_now().await;
        }
        let (mut a, mut b) = ([0; 6], [0; 5]);
        let n = server
            .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
            .await
            .unwrap();
        assert_eq!(n, 11);
        assert_eq!((&a, &b), (b"hello ", b"world"));
    });
}

#[test]
fn std_conversions_round_trip() {
    each_flavor(|| async {
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let l = TcpListener::from_std(std_listener).unwrap();
        let addr = l.local_addr().unwrap();
        let std_client = std::net::TcpStream::connect(addr).unwrap();
        let mut client = TcpStream::try_from(std_client).unwrap();
        let (server, _) = l.accept().await.unwrap();
        client.write_all(b"x").await.unwrap();

        // Out of the runtime and back to blocking mode.
        let mut std_server = server.into_std().unwrap();
        std_server.set_nonblocking(false).unwrap();
        let mut b = [0];
        io::Read::read_exact(&mut std_server, &mut b).unwrap();
        assert_eq!(&b, b"x");
        io::Write::write_all(&mut std_server, b"y").unwrap();
        client.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"y");

        let std_listener = l.into_std().unwrap();
        assert_eq!(std_listener.local_addr().unwrap(), addr);
        let l = TcpListener::from_std(std_listener).unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        l.accept().await.unwrap();
    });
}

#[test]
fn many_connections_churn_without_leaking_registrations() {
    each_flavor(|| async {
        let l = listener().await;
        let addr = l.local_addr().unwrap();
        let server = kevent::spawn(async move {
            for _ in 0..500 {
                let (mut s, _) = l.accept().await.unwrap();
                s.write_all(b"k").await.unwrap();
            }
        });
        for _ in 0..500 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut b = [0];
            c.read_exact(&mut b).await.unwrap();
        }
        server.await.unwrap();
    });
}
