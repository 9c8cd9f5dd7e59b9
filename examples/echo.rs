//! A TCP echo server.
//!
//! `cargo run --example echo [ADDR]` (default 127.0.0.1:7000), then e.g.
//! `printf 'hi\n' | nc -q1 127.0.0.1 7000`.

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::TcpListener;

#[kevent::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo server listening on {}", listener.local_addr()?);
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: wait a little, go on.
                eprintln!("accept: {e}");
                kevent::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        kevent::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Err(e) = socket.write_all(&buf[..n]).await {
                            eprintln!("{peer}: write: {e}");
                            break;
                        }
                    }
                    Err(e) => {
                        eprintln!("{peer}: read: {e}");
                        break;
                    }
                }
            }
        });
    }
}
