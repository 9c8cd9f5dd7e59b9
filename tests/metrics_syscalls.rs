//! `Handle::metrics()` counts the syscalls each worker makes, so a program
//! can show its own syscall cost per request.

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};

#[test]
fn workers_report_the_syscalls_their_io_made() {
    let rt = kevent::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let before: u64 = rt
        .handle()
        .metrics()
        .workers
        .iter()
        .map(|w| w.syscalls)
        .sum();
    rt.block_on(async {
        kevent::spawn(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = kevent::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..100 {
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(&buf).await.unwrap();
                }
            });
            let mut c = TcpStream::connect(addr).await.unwrap();
            let mut buf = [7u8; 64];
            for _ in 0..100 {
                c.write_all(&buf).await.unwrap();
                c.read_exact(&mut buf).await.unwrap();
            }
            server.await.unwrap();
        })
        .await
        .unwrap();
        // Let the worker park, which publishes its count.
        kevent::time::sleep(std::time::Duration::from_millis(20)).await;
    });
    let after: u64 = rt
        .handle()
        .metrics()
        .workers
        .iter()
        .map(|w| w.syscalls)
        .sum();
    // 100 round trips: a write on each side, and on readiness (mio) a
    // read too; on io_uring the bytes arrive through the ring, no read.
    let backend = rt.handle().metrics().backend;
    let least = if backend == "io_uring" { 200 } else { 400 };
    let counted = after - before;
    eprintln!("{backend}: {counted} syscalls");
    assert!(counted >= least, "{backend}: counted {counted} syscalls");
    // Not a read per message on io_uring: at most the writes plus the
    // ring's own enters and wakes, well under 400.
    if backend == "io_uring" {
        assert!(counted < 400, "{backend}: counted {counted} syscalls");
    }
}
