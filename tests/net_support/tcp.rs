//! TCP helpers for the `net_tcp*` tests.

use std::io;
use std::net::SocketAddr;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpSocket, TcpStream};

/// A listener on an ephemeral loopback port.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A connected (client, server) pair over loopback.
pub async fn pair() -> (TcpStream, TcpStream) {
    let l = listener().await;
    let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (server, peer) = l.accept().await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// Echoes everything read back to the peer until end of file.
pub async fn echo(mut stream: TcpStream) -> io::Result<u64> {
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

/// An address nothing listens on: a loopback port bound by a socket that
/// never listens, so a connect to it is refused. The socket stays open for
/// the rest of the test binary, so that no other test takes the port
/// meanwhile. A dropped listener's port would not do: on io_uring its
/// socket lives on until the kernel finishes cancelling its poll, so a
/// connect right after could be queued on it and reset when it closed
/// (`ECONNRESET` instead of `ECONNREFUSED`, seen in CI), and once
/// released, a parallel test's listener on port 0 could take the port.
pub async fn closed_addr() -> SocketAddr {
    static RESERVED: std::sync::Mutex<Vec<TcpSocket>> = std::sync::Mutex::new(Vec::new());
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().unwrap();
    RESERVED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(socket);
    addr
}
