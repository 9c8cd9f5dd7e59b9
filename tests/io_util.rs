//! `kevent::io`: in-memory pipes, `split`, `copy_bidirectional`, and
//! `AsyncFd` with `Ready`'s closed bits, under each runtime flavor.

mod net_support;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Duration;

use kevent::io::unix::AsyncFd;
use kevent::io::{
    copy_bidirectional, duplex, simplex, split, AsyncReadExt, AsyncWriteExt, Interest,
};
use kevent::time::timeout;
use net_support::{each_flavor, pattern, Checksum};

#[test]
fn duplex_carries_both_directions_through_a_small_buffer() {
    each_flavor(|| async {
        let (mut a, mut b) = duplex(16);
        let data = pattern(1, 20_000);
        let sum = Checksum::of(&data);
        let writer = kevent::spawn(async move {
            a.write_all(&data).await.unwrap();
            let mut back = Vec::new();
            a.close().await.unwrap();
            a.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(Checksum::of(&got), sum);
        b.write_all(b"thanks").await.unwrap();
        drop(b);
        assert_eq!(writer.await.unwrap(), b"thanks");
    });
}

#[test]
fn a_dropped_duplex_end_is_eof_to_reads_and_broken_pipe_to_writes() {
    each_flavor(|| async {
        let (mut a, b) = duplex(8);
        let pending = timeout(Duration::from_millis(20), a.read(&mut [0; 4])).await;
        assert!(pending.is_err(), "a read with nothing written must wait");
        drop(b);
        assert_eq!(a.read(&mut [0; 4]).await.unwrap(), 0);
        let err = a.write_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn a_full_duplex_buffer_makes_the_writer_wait() {
    each_flavor(|| async {
        let (mut a, mut b) = duplex(4);
        assert_eq!(a.write(b"abcdef").await.unwrap(), 4);
        let blocked = timeout(Duration::from_millis(20), a.write(b"ef")).await;
        assert!(blocked.is_err(), "a full buffer must make the writer wait");
        let mut buf = [0; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abcd");
        assert_eq!(a.write(b"ef").await.unwrap(), 2);
    });
}

#[test]
fn simplex_halves_pass_bytes_one_way_until_closed() {
    each_flavor(|| async {
        let (mut r, mut w) = simplex(32);
        let writer = kevent::spawn(async move {
            for i in 0..100u8 {
                w.write_all(&[i; 10]).await.unwrap();
            }
            w.close().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), 1000);
        assert!(got.chunks(10).enumerate().all(|(i, c)| c == [i as u8; 10]));
    });
}

#[test]
fn split_halves_work_from_two_tasks_and_reunite() {
    each_flavor(|| async {
        let (a, mut b) = duplex(64);
        let (mut ra, mut wa) = split(a);
        let writer = kevent::spawn(async move {
            wa.write_all(b"from the write half").await.unwrap();
            wa
        });
        let reader = kevent::spawn(async move {
            let mut buf = [0; 5];
            ra.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            ra
        });
        b.write_all(b"hello").await.unwrap();
        let mut buf = [0; 19];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from the write half");
        let (ra, wa) = (reader.await.unwrap(), writer.await.unwrap());
        let mut a = ra.reunite(wa).unwrap();
        a.write_all(b"!").await.unwrap();
        b.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(buf[0], b'!');
    });
}

#[test]
fn copy_bidirectional_proxies_both_ways_and_forwards_each_close() {
    each_flavor(|| async {
        let (client, mut proxy_a) = duplex(100);
        let (mut proxy_b, server) = duplex(100);
        let proxy =
            kevent::spawn(async move { copy_bidirectional(&mut proxy_a, &mut proxy_b).await });
        let up = pattern(2, 20_000);
        let down = pattern(3, 30_000);
        // Each end writes from one task and reads from another: the
        // buffers are far smaller than what crosses them.
        let (mut server_r, mut server_w) = split(server);
        let (mut client_r, mut client_w) = split(client);
        let down2 = down.clone();
        let server_writer = kevent::spawn(async move {
            server_w.write_all(&down2).await.unwrap();
            server_w.close().await.unwrap();
        });
        let up2 = up.clone();
        let client_writer = kevent::spawn(async move {
            client_w.write_all(&up2).await.unwrap();
            client_w.close().await.unwrap();
        });
        let server_reader = kevent::spawn(async move {
            let mut got = Vec::new();
            server_r.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut got = Vec::new();
        client_r.read_to_end(&mut got).await.unwrap();
        assert_eq!(Checksum::of(&got), Checksum::of(&down));
        assert_eq!(
            Checksum::of(&server_reader.await.unwrap()),
            Checksum::of(&up)
        );
        server_writer.await.unwrap();
        client_writer.await.unwrap();
        assert_eq!(proxy.await.unwrap().unwrap(), (20_000, 30_000));
    });
}

#[test]
fn copy_bidirectional_reports_a_vanished_peer() {
    each_flavor(|| async {
        let (mut client, mut proxy_a) = duplex(8);
        let (mut proxy_b, server) = duplex(8);
        drop(server);
        let proxy =
            kevent::spawn(async move { copy_bidirectional(&mut proxy_a, &mut proxy_b).await });
        client.write_all(b"nobody listens").await.ok();
        let err = proxy.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

/// Whether waiting on a side whose readiness a `WouldBlock` cleared waits
/// for good (30 ms). `wait_and_try` waits for readiness and tries the
/// operation once, which must block again and so clears it. An event
/// already in flight when the clear ran may still land after it (a ring
/// poll armed while the peer wrote can post twice; readiness may be
/// spurious, as tokio's may): each such event costs one `WouldBlock`. A
/// clear that did not work would come back every time, and fail here.
async fn settles_unready<F, Fut>(mut wait_and_try: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..4 {
        match timeout(Duration::from_millis(30), wait_and_try()).await {
            Err(_elapsed) => return true,
            Ok(blocked) => assert!(blocked, "readiness came back with no new event"),
        }
    }
    false
}

fn nonblocking_pair() -> (StdUnixStream, StdUnixStream) {
    let (a, b) = StdUnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn async_fd_guard_clears_readiness_on_would_block() {
    each_flavor(|| async {
        let (a, mut b) = nonblocking_pair();
        let fd = AsyncFd::new(a).unwrap();
        b.write_all(b"abc").unwrap();
        let mut guard = fd.readable().await.unwrap();
        assert!(guard.ready().is_readable());
        let mut buf = [0; 8];
        let n = guard
            .try_io(|fd| fd.get_ref().read(&mut buf))
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"abc");
        // Drained: the next attempt blocks, which clears the readiness...
        assert!(guard.try_io(|fd| fd.get_ref().read(&mut buf)).is_err());
        // ...so waiting again waits for new bytes.
        assert!(
            settles_unready(|| async {
                let mut g = fd.readable().await.unwrap();
                let mut buf = [0; 8];
                g.try_io(|fd| fd.get_ref().read(&mut buf)).is_err()
            })
            .await
        );
        assert_eq!(
            fd.try_io(Interest::READABLE, |s| (&*s).read(&mut buf))
                .unwrap_err()
                .kind(),
            io::ErrorKind::WouldBlock
        );
        b.write_all(b"d").unwrap();
        let n = fd
            .async_io(Interest::READABLE, |s| (&*s).read(&mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"d");
    });
}

#[test]
fn async_fd_writable_waits_for_room_and_mut_guard_writes() {
    each_flavor(|| async {
        let (a, mut b) = nonblocking_pair();
        let mut fd = AsyncFd::new(a).unwrap();
        let chunk = [7u8; 4096];
        let mut sent = 0usize;
        // Fill the socket until it would block.
        loop {
            let mut guard = fd.writable_mut().await.unwrap();
            match guard.try_io(|fd| fd.get_mut().write(&chunk)) {
                Ok(n) => sent += n.unwrap(),
                Err(_would_block) => break,
            }
        }
        assert!(sent > 0);
        assert!(
            settles_unready(|| async {
                let mut g = fd.writable().await.unwrap();
                g.try_io(|fd| fd.get_ref().write(&chunk)).is_err()
            })
            .await
        );
        // Drain everything from the peer: room again.
        let mut buf = vec![0; 64 * 1024];
        let mut drained = 0;
        while drained < sent {
            match b.read(&mut buf) {
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => kevent::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
        let guard = timeout(Duration::from_secs(5), fd.writable())
            .await
            .expect("writable after the peer drained")
            .unwrap();
        assert!(guard.ready().is_writable());
    });
}

#[test]
fn async_fd_sees_the_peer_close_as_read_and_write_closed() {
    each_flavor(|| async {
        let (a, b) = nonblocking_pair();
        let fd = AsyncFd::with_interest(a, Interest::READABLE | Interest::WRITABLE).unwrap();
        assert!(fd.interest().is_readable() && fd.interest().is_writable());
        drop(b);
        let read = fd.ready(Interest::READABLE).await.unwrap().ready();
        assert!(read.is_read_closed(), "{read:?}");
        let write = fd.ready(Interest::WRITABLE).await.unwrap().ready();
        assert!(write.is_write_closed(), "{write:?}");
    });
}

#[test]
fn async_fd_into_inner_deregisters_so_the_fd_can_register_again() {
    each_flavor(|| async {
        let (a, mut b) = nonblocking_pair();
        let fd = AsyncFd::new(a).unwrap();
        let a = fd.into_inner();
        let fd = AsyncFd::try_new(a).map_err(|e| e.into_parts().1).unwrap();
        b.write_all(b"z").unwrap();
        let mut buf = [0; 1];
        let n = fd
            .async_io(Interest::READABLE, |s| (&*s).read(&mut buf))
            .await
            .unwrap();
        assert_eq!((n, buf[0]), (1, b'z'));
    });
}

#[test]
#[should_panic(expected = "need one direction")]
fn async_fd_try_io_with_both_directions_panics() {
    let rt = kevent::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, _b) = nonblocking_pair();
        let fd = AsyncFd::new(a).unwrap();
        let _ = fd.try_io(Interest::BOTH, |_| Ok(()));
    });
}

#[test]
fn ready_reports_closed_and_error_bits_and_interests_combine() {
    use kevent::io::Ready;
    let closed = Ready::READ_CLOSED | Ready::WRITE_CLOSED;
    assert!(closed.is_read_closed() && closed.is_write_closed());
    assert!(closed.is_readable() && closed.is_writable());
    assert!(!Ready::READABLE.is_read_closed());
    assert!(!Ready::WRITABLE.is_write_closed());
    assert!(Ready::ERROR.is_error() && !Ready::READABLE.is_error());
    let both = Interest::READABLE | Interest::WRITABLE;
    assert_eq!(both, Interest::BOTH);
    assert_eq!(Interest::READABLE.add(Interest::WRITABLE), both);
}

#[test]
fn async_fd_clear_ready_matching_clears_only_the_side_named() {
    each_flavor(|| async {
        let (a, mut b) = nonblocking_pair();
        let fd = AsyncFd::new(a).unwrap();
        b.write_all(b"x").unwrap();
        // An event still in flight may land after the clear and make the
        // write side ready again (both sides really are ready), so a clear
        // gets three tries to hold; one that never held fails.
        let mut held = false;
        for _ in 0..3 {
            {
                // Both sides ready: readable (a byte waits) and writable
                // (room).
                let mut guard = fd.ready(Interest::BOTH).await.unwrap();
                let mut seen = guard.ready();
                while !(seen.is_readable() && seen.is_writable()) {
                    guard = fd.ready(Interest::BOTH).await.unwrap();
                    seen = guard.ready();
                }
                guard.clear_ready_matching(kevent::io::Ready::WRITABLE);
                assert!(guard.ready().is_readable() && !guard.ready().is_writable());
            }
            // The write side's readiness is gone: only a new event brings
            // it back; the read side's stays.
            let read_still = timeout(Duration::from_secs(1), fd.readable()).await;
            assert!(read_still.is_ok(), "clearing the write side cleared reads");
            let write_now = timeout(Duration::from_millis(30), fd.writable()).await;
            if write_now.is_err() {
                held = true;
                break;
            }
        }
        assert!(held, "the write side's readiness survived every clear");
    });
}

#[test]
fn async_fd_priority_wakes_for_out_of_band_data_and_not_for_plain_bytes() {
    use std::os::fd::AsRawFd;
    each_flavor(|| async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        rx.set_nonblocking(true).unwrap();
        let fd = AsyncFd::with_interest(rx, Interest::PRIORITY).unwrap();
        assert!(fd.interest().is_priority() && !fd.interest().is_readable());

        // Ordinary bytes are no priority data.
        tx.write_all(b"plain").unwrap();
        let early = timeout(Duration::from_millis(50), fd.ready(Interest::PRIORITY)).await;
        assert!(early.is_err(), "priority readiness for ordinary bytes");

        // SAFETY: send(2) of one byte from a live buffer on an open socket.
        let sent = unsafe { libc::send(tx.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1, "{}", io::Error::last_os_error());
        let mut guard = timeout(Duration::from_secs(5), fd.ready(Interest::PRIORITY))
            .await
            .expect("priority readiness for out-of-band data")
            .unwrap();
        assert!(guard.ready().is_priority(), "{:?}", guard.ready());
        let mut byte = 0u8;
        let got = guard
            .try_io(|fd| {
                // SAFETY: recv(2) of one byte into `byte`, on an open socket.
                let n = unsafe {
                    libc::recv(
                        fd.as_raw_fd(),
                        (&mut byte as *mut u8).cast(),
                        1,
                        libc::MSG_OOB,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n)
                }
            })
            .expect("the out-of-band byte is there")
            .unwrap();
        assert_eq!((got, byte), (1, b'!'));
    });
}

#[test]
fn async_fd_error_wakes_when_an_icmp_error_reaches_the_error_queue() {
    use std::os::fd::AsRawFd;
    each_flavor(|| async {
        // A loopback port nobody listens on: the kernel answers a datagram
        // to it with ICMP port unreachable.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let on: libc::c_int = 1;
        // SAFETY: setsockopt(2) with a live c_int of the right size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVERR,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        sock.connect(closed_addr).unwrap();
        sock.set_nonblocking(true).unwrap();
        let fd = AsyncFd::with_interest(sock, Interest::ERROR).unwrap();
        let early = timeout(Duration::from_millis(30), fd.ready(Interest::ERROR)).await;
        assert!(early.is_err(), "an error before anything was sent");

        fd.get_ref().send(b"anyone?").unwrap();
        let mut guard = timeout(Duration::from_secs(5), fd.ready(Interest::ERROR))
            .await
            .expect("error readiness after the ICMP error")
            .unwrap();
        assert!(guard.ready().is_error(), "{:?}", guard.ready());
        let errno = guard
            .try_io(|fd| read_error_queue(fd.get_ref().as_raw_fd()))
            .expect("an entry waits on the error queue")
            .unwrap();
        assert_eq!(errno, libc::ECONNREFUSED);
    });
}

/// Reads one entry of a socket's error queue (`MSG_ERRQUEUE`) and returns
/// the errno it carries.
fn read_error_queue(fd: std::os::fd::RawFd) -> io::Result<i32> {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 64];
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points to live buffers of the sizes it names.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `msg` was filled by recvmsg(2); the CMSG macros walk the
    // control buffer it describes.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and inside the control buffer.
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::IPPROTO_IP && hdr.cmsg_type == libc::IP_RECVERR {
            // SAFETY: an IP_RECVERR message carries a sock_extended_err,
            // possibly unaligned in the buffer.
            let err = unsafe {
                std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>())
            };
            return Ok(err.ee_errno as i32);
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Err(io::Error::other("no IP_RECVERR message on the error queue"))
}
