//! `kevent::net` TCP readiness: `try_*` and `WouldBlock`, `readable`,
//! `writable`, `ready`, `peek`. Every test runs under each runtime flavor
//! (see `net_support::each_flavor`).

mod net_support;

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::reactor::Interest;
use net_support::each_flavor;
use net_support::tcp::pair;

#[test]
fn try_read_would_block_until_data_arrives() {
    each_flavor(|| async {
        let (mut client, server) = pair().await;
        let mut buf = [0; 8];
        let err = server.try_read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"abc").await.unwrap();
        let n = loop {
            server.readable().await.unwrap();
            match server.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"abc");
        let err = server.try_read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.close().await.unwrap();
        server.readable().await.unwrap();
        assert_eq!(server.try_read(&mut buf).unwrap(), 0, "end of file");
    });
}

/// A stream read only with `try_read` in a loop that yields, never
/// waiting for readiness, still gets what arrives: looking at its
/// readiness (or its first read) is what has the runtime watch it, where
/// an accepted stream is watched from its first use (io_uring).
#[test]
fn try_read_alone_gets_what_arrives() {
    each_flavor(|| async {
        let (mut client, server) = pair().await;
        client.write_all(b"xyz").await.unwrap();
        let mut buf = [0; 8];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let n = loop {
            match server.try_read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "try_read never saw the data"
                    );
                    kevent::task::yield_now().await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"xyz");
    });
}

#[test]
fn try_write_would_block_when_the_send_buffer_is_full() {
    each_flavor(|| async {
        let (client, mut server) = pair().await;
        let chunk = vec![1u8; 64 * 1024];
        let mut written = 0usize;
        let full = loop {
            client.writable().await.unwrap();
            match client.try_write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) => panic!("{e}"),
            }
            if written > 256 << 20 {
                break false;
            }
        };
        assert!(full, "256 MiB went into the send buffer without blocking");
        // Writing through the ring, the first WouldBlock can come from the
        // stream's outbox while its send still fills the kernel's buffer;
        // once that is full too, writes keep failing.
        let mut stays_full = false;
        for _ in 0..100 {
            while let Ok(n) = client.try_write(&chunk) {
                written += n;
                assert!(written <= 256 << 20, "writes never blocked again");
            }
            match client.try_write(&chunk) {
                Ok(n) => written += n,
                Err(_) => {
                    stays_full = true;
                    break;
                }
            }
            kevent::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(stays_full, "a full stream kept taking writes");
        // Drain everything; the writer becomes writable again.
        let mut buf = vec![0; written];
        server.read_exact(&mut buf).await.unwrap();
        client.writable().await.unwrap();
        let n = client
            .try_write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        let mut tail = [0; 4];
        server.read_exact(&mut tail).await.unwrap();
        assert_eq!(&tail, b"abcd");
    });
}

#[test]
fn readable_waits_for_data_and_writable_is_immediate() {
    each_flavor(|| async {
        let (client, server) = pair().await;
        client.writable().await.unwrap();
        let ready = client.ready(Interest::BOTH).await.unwrap();
        assert!(ready.is_writable());
        let waited = kevent::time::timeout(Duration::from_millis(50), server.readable()).await;
        assert!(waited.is_err(), "readable() returned with nothing to read");
        let reader = kevent::spawn(async move {
            server.readable().await.unwrap();
            let ready = server.ready(Interest::READABLE).await.unwrap();
            assert!(ready.is_readable());
            let mut buf = [0; 4];
            assert_eq!(server.try_read(&mut buf).unwrap(), 1);
        });
        kevent::time::sleep(Duration::from_millis(10)).await;
        (&client).write_all(b"!").await.unwrap();
        reader.await.unwrap();
    });
}

#[test]
fn peek_leaves_data_queued() {
    each_flavor(|| async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"peekaboo").await.unwrap();
        let mut buf = [0; 8];
        let mut n = 0;
        while n < 8 {
            n = server.peek(&mut buf).await.unwrap();
        }
        assert_eq!(&buf, b"peekaboo");
        let mut again = [0; 8];
        server.read_exact(&mut again).await.unwrap();
        assert_eq!(&again, b"peekaboo");
    });
}

/// tokio: `try_read` never disturbs a task waiting in `readable()`.
#[test]
fn try_read_does_not_steal_a_waiting_tasks_wakeup() {
    each_flavor(|| async {
        let (mut client, server) = pair().await;
        let server = Arc::new(server);
        let waiter = {
            let server = server.clone();
            kevent::spawn(async move { server.readable().await })
        };
        // Let the waiter park on read readiness, then probe from here.
        kevent::time::sleep(Duration::from_millis(20)).await;
        let mut buf = [0; 4];
        let err = server.try_read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"wake").await.unwrap();
        let woke = kevent::time::timeout(Duration::from_secs(2), waiter).await;
        assert!(woke.is_ok(), "the waiting task was never woken");
    });
}
