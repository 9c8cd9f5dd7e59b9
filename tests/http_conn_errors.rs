//! A plain hyper HTTP/1.1 server on kevent, with hyper's defaults
//! (`half_close(false)`), served to one-shot clients that read their
//! response and close, 16 at a time: every connection ends cleanly.
//! Clients close as soon as the response arrived, so their FIN may reach
//! the server while the response's send completion is still to be
//! harvested; the server must not take that FIN for a connection closed
//! before its response was done.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use kevent::net::TcpListener;

const CONNECTIONS: usize = 400;
const AT_ONCE: usize = 16;

async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn one_shot_client(addr: std::net::SocketAddr) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\naccept: */*\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"Hello, World!") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // Close at once, as curl does.
}

#[test]
fn one_shot_clients_end_every_connection_cleanly() {
    let rt = kevent::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let errors = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (e, s) = (errors.clone(), served.clone());
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (e, s) = (e.clone(), s.clone());
            kevent::spawn(async move {
                let conn = http1::Builder::new().serve_connection(stream, service_fn(hello));
                match conn.await {
                    Ok(()) => {}
                    Err(err) => {
                        eprintln!("connection error: {err}");
                        e.fetch_add(1, Ordering::SeqCst);
                    }
                }
                s.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    for _ in 0..CONNECTIONS / AT_ONCE {
        let clients: Vec<_> = (0..AT_ONCE)
            .map(|_| std::thread::spawn(move || one_shot_client(addr)))
            .collect();
        for c in clients {
            c.join().unwrap();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while served.load(Ordering::SeqCst) < CONNECTIONS && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        CONNECTIONS,
        "connections still open"
    );
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "connections ended with an error although every client got its response"
    );
}
