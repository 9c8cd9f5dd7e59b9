//! TCP helpers for the `net_tcp*` tests.

use std::io;
use std::net::SocketAddr;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};

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

/// An address nothing listens on (a port just released).
pub async fn closed_addr() -> SocketAddr {
    let l = listener().await;
    l.local_addr().unwrap()
}
