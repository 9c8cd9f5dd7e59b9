//! Socket faults with operations in flight: a peer reset while a read and
//! a write are both pending, a write blocked on a full send buffer when the
//! peer resets, and half-close in each direction while the other side has
//! a read pending. (A reset under a lone pending read, writes after a reset
//! and the plain half-close request/response are in `net_tcp_errors.rs`
//! and `net_tcp.rs`.) Every behaviour runs under each runtime flavor.

#[macro_use]
mod common;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{ms, Flavor};
use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};
use kevent::time::{sleep, timeout};

/// How long a pending operation may take to notice a reset or EOF.
const NOTICE: Duration = Duration::from_secs(5);

/// A connected (client, server) pair over loopback.
async fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = l.accept().await.unwrap();
    (client, server)
}

/// A reset or a broken pipe: what a failed operation on a reset
/// connection reports.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Writes with `try_write` until the send buffer is full (`WouldBlock`);
/// returns the bytes written. Call it once the socket is `writable`.
fn fill_send_buffer(try_write: impl Fn(&[u8]) -> io::Result<usize>) -> usize {
    let chunk = vec![0x5a; 64 * 1024];
    let mut written = 0;
    loop {
        match try_write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return written,
            Err(e) => panic!("filling the send buffer: {e}"),
        }
        assert!(
            written < 1 << 30,
            "a gigabyte written to a peer that never reads"
        );
    }
}

/// Writes a mebibyte at a time until an error, which it returns.
async fn write_until_error(w: &mut (impl AsyncWriteExt + Unpin)) -> io::Error {
    let chunk = vec![0xa5; 1 << 20];
    for _ in 0..1024 {
        if let Err(e) = w.write_all(&chunk).await {
            return e;
        }
    }
    panic!("a gigabyte written to a peer that never reads");
}

// ------------------------------------------------------------ reset

rt_test!(peer_reset_fails_a_write_blocked_on_a_full_send_buffer);
async fn peer_reset_fails_a_write_blocked_on_a_full_send_buffer(_: Flavor) {
    let (client, mut server) = pair().await;
    client.set_linger(Some(Duration::ZERO)).unwrap();
    // The client never reads: the server fills the buffers, then its next
    // write stays pending.
    server.writable().await.unwrap();
    assert!(fill_send_buffer(|b| server.try_write(b)) > 0);
    let writer = kevent::spawn(async move { write_until_error(&mut server).await });
    sleep(ms(30)).await;
    assert!(!writer.is_finished(), "the writer stopped on its own");
    let reset_at = Instant::now();
    drop(client); // linger 0: RST
    let err = timeout(NOTICE, writer)
        .await
        .expect("a write pending across a reset never finished")
        .unwrap();
    assert!(is_reset(&err), "pending write failed with {err:?}");
    assert!(
        reset_at.elapsed() < NOTICE,
        "the reset took {:?} to reach the writer",
        reset_at.elapsed()
    );
}

rt_test!(peer_reset_fails_a_pending_read_and_a_pending_write_of_one_stream);
async fn peer_reset_fails_a_pending_read_and_a_pending_write_of_one_stream(_: Flavor) {
    let (client, server) = pair().await;
    client.set_linger(Some(Duration::ZERO)).unwrap();
    let (mut rd, mut wr) = server.into_split();
    wr.writable().await.unwrap();
    assert!(fill_send_buffer(|b| wr.try_write(b)) > 0);
    // Two tasks, one socket: the read waits for data that never comes, the
    // write for room the client never makes.
    let reader = kevent::spawn(async move {
        let mut buf = [0u8; 64];
        rd.read(&mut buf).await
    });
    let writer = kevent::spawn(async move { write_until_error(&mut wr).await });
    sleep(ms(30)).await;
    assert!(!reader.is_finished() && !writer.is_finished());
    drop(client);
    match timeout(NOTICE, reader)
        .await
        .expect("the pending read never saw the reset")
        .unwrap()
    {
        Err(e) => assert!(is_reset(&e), "pending read failed with {e:?}"),
        Ok(n) => assert_eq!(n, 0, "read data from a reset connection"),
    }
    let err = timeout(NOTICE, writer)
        .await
        .expect("the pending write never saw the reset")
        .unwrap();
    assert!(is_reset(&err), "pending write failed with {err:?}");
}

rt_test!(reset_between_partial_message_reads_fails_the_rest_of_read_exact);
async fn reset_between_partial_message_reads_fails_the_rest_of_read_exact(_: Flavor) {
    let (mut client, mut server) = pair().await;
    client.set_linger(Some(Duration::ZERO)).unwrap();
    // Half of a 100-byte message arrives, then the peer resets.
    let reader = kevent::spawn(async move {
        let mut msg = [0u8; 100];
        server.read_exact(&mut msg).await
    });
    client.write_all(&[1; 50]).await.unwrap();
    sleep(ms(30)).await;
    assert!(
        !reader.is_finished(),
        "read_exact returned with half a message"
    );
    drop(client);
    let err = timeout(NOTICE, reader)
        .await
        .expect("read_exact pending across a reset never finished")
        .unwrap()
        .unwrap_err();
    assert!(
        is_reset(&err) || err.kind() == io::ErrorKind::UnexpectedEof,
        "{err:?}"
    );
}

// ------------------------------------------------------------ half-close

rt_test!(half_close_wakes_the_peers_pending_read_and_the_other_direction_keeps_flowing);
async fn half_close_wakes_the_peers_pending_read_and_the_other_direction_keeps_flowing(_: Flavor) {
    let (client, server) = pair().await;
    let (mut crd, mut cwr) = client.into_split();
    // The client's read is pending when the server shuts down its write
    // side; the client goes on sending afterwards.
    let client_reader = kevent::spawn(async move {
        let mut got = Vec::new();
        crd.read_to_end(&mut got).await.map(|_| got)
    });
    let mut server = server;
    server.write_all(b"last words").await.unwrap();
    sleep(ms(20)).await;
    server.close().await.unwrap();
    let got = timeout(NOTICE, client_reader)
        .await
        .expect("a read pending across the peer's half-close never saw EOF")
        .unwrap()
        .unwrap();
    assert_eq!(got, b"last words");
    // The other direction still works, both ways of ending it.
    let server_reader = kevent::spawn(async move {
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.map(|_| got)
    });
    for i in 0..100u8 {
        cwr.write_all(&[i; 100]).await.unwrap();
    }
    drop(cwr); // shuts down the write side
    let got = timeout(NOTICE, server_reader)
        .await
        .expect("server never saw the client's EOF")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 100 * 100);
    assert!(got
        .chunks(100)
        .enumerate()
        .all(|(i, c)| c == [i as u8; 100]));
}

rt_test!(reads_after_eof_keep_returning_zero_and_writes_still_work);
async fn reads_after_eof_keep_returning_zero_and_writes_still_work(_: Flavor) {
    let (mut client, mut server) = pair().await;
    client.close().await.unwrap();
    let mut buf = [0u8; 8];
    for _ in 0..3 {
        let n = timeout(NOTICE, server.read(&mut buf))
            .await
            .expect("read after EOF blocked")
            .unwrap();
        assert_eq!(n, 0);
    }
    server.write_all(b"still open").await.unwrap();
    server.close().await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"still open");
}
