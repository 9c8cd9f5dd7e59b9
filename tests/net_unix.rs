//! `kevent::net` Unix-domain sockets under each runtime flavor.

mod net_support;

use std::io;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{UnixDatagram, UnixListener, UnixStream};
use net_support::{each_flavor, pattern, socket_path, Checksum};

/// Echoes everything read back to the peer until end of file.
async fn echo(mut stream: UnixStream) -> io::Result<u64> {
    let mut buf = vec![0; 4096];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[test]
fn stream_echo_through_a_listener() {
    each_flavor(|| async {
        let path = socket_path("echo");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let server = kevent::spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..10 {
                let (s, _) = l.accept().await.unwrap();
                handlers.push(kevent::spawn(echo(s)));
            }
            let mut total = 0;
            for h in handlers {
                total += h.await.unwrap().unwrap();
            }
            total
        });
        let clients: Vec<_> = (0..10u64)
            .map(|i| {
                let path = path.clone();
                kevent::spawn(async move {
                    let mut c = UnixStream::connect(&path).await.unwrap();
                    assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
                    let msg = pattern(i, 1000 + i as usize * 10);
                    c.write_all(&msg).await.unwrap();
                    let mut back = vec![0; msg.len()];
                    c.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                    msg.len() as u64
                })
            })
            .collect();
        let mut sent = 0;
        for c in clients {
            sent += c.await.unwrap();
        }
        assert_eq!(server.await.unwrap(), sent);
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn pair_round_trips_both_ways() {
    each_flavor(|| async {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"to b").await.unwrap();
        b.write_all(b"to a").await.unwrap();
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to b");
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"to a");
    });
}

#[test]
fn two_mebibytes_each_way_over_a_pair() {
    const LEN: usize = 2 << 20;
    each_flavor(|| async {
        let (a, b) = UnixStream::pair().unwrap();
        let (ar, mut aw) = a.into_split();
        let (mut br, bw) = b.into_split();
        let data = pattern(5, LEN);
        let want = Checksum::of(&data);
        let writer = kevent::spawn(async move {
            aw.write_all(&data).await.unwrap();
            aw.close().await.unwrap();
        });
        // b echoes whatever it reads, in another task.
        let echoer = kevent::spawn(async move {
            let mut bw = bw;
            let mut buf = vec![0; 32 * 1024];
            loop {
                let n = br.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                bw.write_all(&buf[..n]).await.unwrap();
            }
        });
        let mut ar = ar;
        let mut sum = Checksum::new();
        let mut len = 0;
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = ar.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
            len += n;
        }
        assert_eq!((len, sum), (LEN, want));
        writer.await.unwrap();
        echoer.await.unwrap();
    });
}

#[test]
fn half_close_lets_the_peer_reply_after_eof() {
    each_flavor(|| async {
        let (mut a, b) = UnixStream::pair().unwrap();
        let server = kevent::spawn(async move {
            let mut b = b;
            let mut req = Vec::new();
            b.read_to_end(&mut req).await.unwrap();
            b.write_all(&req).await.unwrap();
            b.write_all(b"!").await.unwrap();
        });
        a.write_all(b"question").await.unwrap();
        a.close().await.unwrap();
        let mut resp = Vec::new();
        a.read_to_end(&mut resp).await.unwrap();
        assert_eq!(resp, b"question!");
        server.await.unwrap();
    });
}

#[test]
fn connect_to_a_missing_path_fails() {
    each_flavor(|| async {
        let path = socket_path("missing");
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn connect_to_a_closed_listener_is_refused() {
    each_flavor(|| async {
        let path = socket_path("closed");
        drop(UnixListener::bind(&path).unwrap());
        let err = UnixStream::connect(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn try_read_would_block_until_data_arrives() {
    each_flavor(|| async {
        let (a, b) = UnixStream::pair().unwrap();
        let mut buf = [0; 8];
        assert_eq!(
            b.try_read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let waited = kevent::time::timeout(Duration::from_millis(30), b.readable()).await;
        assert!(waited.is_err(), "readable() with nothing to read");
        a.writable().await.unwrap();
        assert_eq!(a.try_write(b"xyz").unwrap(), 3);
        let n = loop {
            b.readable().await.unwrap();
            match b.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"xyz");
        drop(a);
        // `readable()` may report stale readiness (as tokio's may): retry
        // until the end of stream shows. On io_uring the peer's close also
        // lands a little later (its poll holds the socket until cancelled).
        loop {
            b.readable().await.unwrap();
            match b.try_read(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, 0);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        }
    });
}

#[test]
fn owned_halves_in_different_tasks_then_reunite() {
    each_flavor(|| async {
        let (a, b) = UnixStream::pair().unwrap();
        let echo_task = kevent::spawn(echo(b));
        let (mut r, mut w) = a.into_split();
        let writer = kevent::spawn(async move {
            for i in 0..100u32 {
                w.write_all(&i.to_be_bytes()).await.unwrap();
            }
            w
        });
        let reader = kevent::spawn(async move {
            for i in 0..100u32 {
                let mut b = [0; 4];
                r.read_exact(&mut b).await.unwrap();
                assert_eq!(u32::from_be_bytes(b), i);
            }
            r
        });
        let (w, r) = (writer.await.unwrap(), reader.await.unwrap());
        let mut a = r.reunite(w).unwrap();
        a.close().await.unwrap();
        assert_eq!(echo_task.await.unwrap().unwrap(), 400);
    });
}

#[test]
fn borrowed_split_and_ref_stream_io() {
    each_flavor(|| async {
        let (a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"ref").await.unwrap();
        let (mut r, _w) = a.split();
        let mut buf = [0; 3];
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ref");
    });
}

#[test]
fn std_conversions_round_trip() {
    each_flavor(|| async {
        let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut x = UnixStream::from_std(x).unwrap();
        let mut y = UnixStream::try_from(y).unwrap();
        x.write_all(b"s").await.unwrap();
        let mut b = [0];
        y.read_exact(&mut b).await.unwrap();
        let mut x = x.into_std().unwrap();
        x.set_nonblocking(false).unwrap();
        io::Write::write_all(&mut x, b"t").unwrap();
        y.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"t");

        let path = socket_path("std");
        let l =
            UnixListener::from_std(std::os::unix::net::UnixListener::bind(&path).unwrap()).unwrap();
        let _c = UnixStream::connect(&path).await.unwrap();
        l.accept().await.unwrap();
        let l = l.into_std().unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn datagram_pair_send_and_recv() {
    each_flavor(|| async {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"one").await.unwrap();
        a.send(b"two").await.unwrap();
        let mut buf = [0; 8];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one");
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"two");
        assert_eq!(
            b.try_recv(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    });
}

#[test]
fn datagram_bound_send_to_and_recv_from() {
    each_flavor(|| async {
        let (pa, pb) = (socket_path("dga"), socket_path("dgb"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let receiver = kevent::spawn(async move {
            let mut buf = [0; 16];
            let (n, from) = b.recv_from(&mut buf).await.unwrap();
            (buf[..n].to_vec(), from.as_pathname().map(|p| p.to_owned()))
        });
        kevent::time::sleep(Duration::from_millis(10)).await;
        a.send_to(b"addressed", &pb).await.unwrap();
        let (got, from) = receiver.await.unwrap();
        assert_eq!(got, b"addressed");
        assert_eq!(from.as_deref(), Some(pa.as_path()));

        let unbound = UnixDatagram::unbound().unwrap();
        unbound.connect(&pa).unwrap();
        unbound.send(b"anon").await.unwrap();
        let mut buf = [0; 8];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed());
        std::fs::remove_file(&pa).unwrap();
        std::fs::remove_file(&pb).unwrap();
    });
}

/// A fresh Linux abstract-namespace name (a leading NUL byte), unique to
/// this process and call.
#[cfg(target_os = "linux")]
fn abstract_path(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("\0kevent-net-{}-{name}-{n}", std::process::id()).into()
}

/// The name an abstract address carries (after the NUL byte).
#[cfg(target_os = "linux")]
fn abstract_name(path: &std::path::Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    &path.as_os_str().as_bytes()[1..]
}

#[cfg(target_os = "linux")]
#[test]
fn streams_bind_and_connect_to_abstract_names() {
    use std::os::linux::net::SocketAddrExt;
    each_flavor(|| async {
        let path = abstract_path("stream");
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(
            l.local_addr().unwrap().as_abstract_name(),
            Some(abstract_name(&path))
        );
        // No file appears for an abstract name.
        assert!(!std::path::Path::new(&path.as_os_str().to_string_lossy()[1..]).exists());
        let server = kevent::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            echo(s).await.unwrap()
        });
        let mut c = UnixStream::connect(&path).await.unwrap();
        assert_eq!(
            c.peer_addr().unwrap().as_abstract_name(),
            Some(abstract_name(&path))
        );
        c.write_all(b"abstract").await.unwrap();
        let mut back = [0; 8];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"abstract");
        drop(c);
        assert_eq!(server.await.unwrap(), 8);
        // A name nobody listens on is refused, not taken for a file path.
        let err = UnixStream::connect(abstract_path("nobody"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[cfg(target_os = "linux")]
#[test]
fn datagrams_bind_connect_and_send_to_abstract_names() {
    use std::os::linux::net::SocketAddrExt;
    each_flavor(|| async {
        let a_path = abstract_path("dgram-a");
        let b_path = abstract_path("dgram-b");
        let a = UnixDatagram::bind(&a_path).unwrap();
        let b = UnixDatagram::bind(&b_path).unwrap();
        assert_eq!(
            a.local_addr().unwrap().as_abstract_name(),
            Some(abstract_name(&a_path))
        );
        a.send_to(b"to b", &b_path).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"to b");
        assert_eq!(from.as_abstract_name(), Some(abstract_name(&a_path)));
        b.connect(&a_path).unwrap();
        b.send(b"to a").await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"to a");
        // The polling and non-waiting forms take abstract names too.
        assert_eq!(a.try_send_to(b"try", &b_path).unwrap(), 3);
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"try");
        std::future::poll_fn(|cx| a.poll_send_to(cx, b"poll", &b_path))
            .await
            .unwrap();
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"poll");
    });
}
