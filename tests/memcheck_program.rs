//! A small workload touching every part of the runtime that allocates or
//! owns descriptors: both flavors, tasks spawned, completed, aborted and
//! panicking, timers, `spawn_blocking`, TCP and Unix I/O, and a shutdown
//! with tasks still pending on sockets, timers and channels.
//!
//! A normal test in `cargo test`; `tests/valgrind.sh` also runs this
//! binary under valgrind memcheck (`--exact memcheck_workload`), which
//! fails on invalid accesses and on definitely leaked memory. Kept small:
//! under valgrind the threads run one at a time.

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream, UnixStream};
use kevent::runtime::{Builder, Runtime};
use kevent::time::sleep;

/// Counts its drop.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Runs the workload on `rt`, then drops it with tasks pending; returns
/// (futures created with a `Counted`, how many were dropped).
fn workload(rt: Runtime) -> (usize, usize) {
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = || Counted(drops.clone());
    let mut made = 0;

    let kept_alive = rt.block_on(async {
        // Tasks that complete, one that panics, some aborted.
        let done: Vec<_> = (0..50u64)
            .map(|i| {
                let c = counted();
                kevent::spawn(async move {
                    let _c = c;
                    sleep(Duration::from_micros(i * 10)).await;
                    i
                })
            })
            .collect();
        made += 50;
        let panicked = kevent::spawn(async { panic!("expected panic in memcheck workload") });
        let aborted: Vec<_> = (0..20)
            .map(|_| {
                let c = counted();
                kevent::spawn(async move {
                    let _c = c;
                    pending::<()>().await
                })
            })
            .collect();
        made += 20;
        for a in &aborted {
            a.abort();
        }
        for (i, d) in done.into_iter().enumerate() {
            assert_eq!(d.await.unwrap(), i as u64);
        }
        assert!(panicked.await.unwrap_err().is_panic());
        for a in aborted {
            assert!(a.await.unwrap_err().is_cancelled());
        }
        assert_eq!(kevent::task::spawn_blocking(|| 6 * 7).await.unwrap(), 42);

        // TCP echo over a few connections.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = kevent::spawn(async move {
            for _ in 0..4 {
                let (mut s, _) = listener.accept().await.unwrap();
                kevent::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                });
            }
            listener
        });
        for i in 0..4u8 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let msg = vec![i; 3000];
            c.write_all(&msg).await.unwrap();
            c.close().await.unwrap();
            let mut back = Vec::new();
            c.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
        let listener = server.await.unwrap();

        // Left pending at shutdown: a socket read, a Unix read, a long
        // sleep, a oneshot nobody sends on, never-polled tasks.
        let idle = TcpStream::connect(addr).await.unwrap();
        let (idle_server, _) = listener.accept().await.unwrap();
        let (u1, u2) = UnixStream::pair().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let c = counted();
        kevent::spawn(async move {
            let _c = c;
            let mut s = idle_server;
            let _ = s.read(&mut [0u8; 8]).await;
        });
        let c = counted();
        kevent::spawn(async move {
            let _c = c;
            let mut u = u1;
            let _ = u.read(&mut [0u8; 8]).await;
        });
        let c = counted();
        kevent::spawn(async move {
            let _c = c;
            sleep(Duration::from_secs(3600)).await;
        });
        let c = counted();
        kevent::spawn(async move {
            let _c = c;
            let _ = rx.await;
        });
        made += 4;
        sleep(Duration::from_millis(10)).await;
        (idle, u2, tx, listener)
    });
    for _ in 0..10 {
        let c = counted();
        rt.spawn(async move {
            let _c = c;
            pending::<()>().await
        });
    }
    made += 10;
    drop(rt);
    drop(kept_alive);
    (made, drops.load(SeqCst))
}

#[test]
fn memcheck_workload() {
    let multi = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (made, dropped) = workload(multi);
    assert_eq!(dropped, made, "multi_thread: futures not dropped");
    let current = Builder::new_current_thread().enable_all().build().unwrap();
    let (made, dropped) = workload(current);
    assert_eq!(dropped, made, "current_thread: futures not dropped");
}
