//! Streams receiving through the ring (io_uring): reads come from the
//! stream's inbox, and raw reads of its socket, which would miss or reorder
//! bytes already received, fail with a clear error instead. On mio, or with
//! `recv_through_ring(false)`, the socket is read directly and raw reads
//! keep working.

mod net_support;

use std::io;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::TcpStream;
use kevent::reactor::Interest;
use kevent::runtime::{Builder, Runtime};
use net_support::tcp::pair;

fn runtime(recv_through_ring: bool) -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .recv_through_ring(recv_through_ring)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads `n` bytes with `read` (the path that arms the ring receive).
async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).await.unwrap();
    buf
}

#[test]
fn raw_reads_after_reading_through_the_ring_fail_clearly() {
    let rt = runtime(true);
    let uring = rt.handle().metrics().backend == "io_uring";
    rt.block_on(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"first").await.unwrap();
        assert_eq!(read_n(&mut server, 5).await, b"first");
        client.write_all(b"second").await.unwrap();
        kevent::time::sleep(Duration::from_millis(20)).await;
        let raw = server.try_io(Interest::READABLE, || {
            let mut b = [0u8; 16];
            // Reading the socket itself, as a custom recvmsg would.
            // SAFETY: recv(2) into a 16-byte stack buffer, on a live fd.
            let r = unsafe {
                libc::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&server),
                    b.as_mut_ptr().cast(),
                    16,
                    0,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        });
        if uring {
            let e = raw.unwrap_err();
            assert!(e.to_string().contains("receives through the ring"), "{e}");
            // Nothing was lost: a normal read still gets the bytes.
            assert_eq!(read_n(&mut server, 6).await, b"second");
            let e = server.into_std().unwrap_err();
            assert!(e.to_string().contains("recv_through_ring(false)"), "{e}");
        } else {
            assert_eq!(raw.unwrap(), 6, "mio: the socket is read directly");
        }
    });
}

#[test]
fn with_ring_receive_off_raw_reads_and_into_std_work_after_reads() {
    let rt = runtime(false);
    rt.block_on(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"first").await.unwrap();
        assert_eq!(read_n(&mut server, 5).await, b"first");
        client.write_all(b"second").await.unwrap();
        server.readable().await.unwrap();
        let mut std = server.into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        let mut b = [0u8; 6];
        std::io::Read::read_exact(&mut std, &mut b).unwrap();
        assert_eq!(&b, b"second");
    });
}

#[test]
fn a_megabyte_each_way_arrives_intact_through_the_ring() {
    let rt = runtime(true);
    rt.block_on(async {
        let (client, server) = pair().await;
        const N: usize = 2 << 20;
        let data: Vec<u8> = (0..N).map(|i| (i % 253) as u8).collect();
        let (mut cr, mut cw) = client.into_split();
        let echo = kevent::spawn(async move {
            let (mut sr, mut sw) = server.into_split();
            let mut buf = vec![0u8; 7000];
            let mut total = 0;
            loop {
                let n = sr.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                sw.write_all(&buf[..n]).await.unwrap();
                total += n;
            }
            total
        });
        let sent = data.clone();
        let writer = kevent::spawn(async move {
            for chunk in sent.chunks(10_000) {
                cw.write_all(chunk).await.unwrap();
            }
            cw.close().await.unwrap();
        });
        let mut got = Vec::new();
        cr.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(echo.await.unwrap(), N);
        assert!(got == data, "echoed bytes differ");
    });
}
