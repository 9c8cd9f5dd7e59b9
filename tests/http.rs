//! The HTTP example (`examples/http.rs`) as a black box: started on an
//! ephemeral port, checked with raw sockets and with a hyper client on
//! kevent over HTTP/1.1 and HTTP/2, then stopped with SIGINT or SIGTERM.

mod example_server;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use example_server::{get, read_response, Server};

/// examples/http.rs, started with `envs`.
fn start(envs: &[(&str, &str)]) -> Server {
    Server::start("http", envs)
}

#[test]
fn serves_plaintext_and_json_with_techempower_headers() {
    let server = start(&[]);
    let mut s = server.connect();
    s.write_all(get("/plaintext").as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let plain = read_response(&mut r);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, b"Hello, World!");
    assert_eq!(plain.header("content-type"), Some("text/plain"));
    assert_eq!(plain.header("server"), Some("kevent"));
    let date = plain.header("date").expect("Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    s.write_all(get("/json").as_bytes()).unwrap();
    let json = read_response(&mut r);
    assert_eq!(json.status, 200);
    assert_eq!(json.body, br#"{"message":"Hello, World!"}"#);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.header("content-length"), Some("27"));
    // The benchmark's computing handler answers too (a number, computed).
    s.write_all(get("/compute").as_bytes()).unwrap();
    let computed = read_response(&mut r);
    assert_eq!(computed.status, 200);
    assert!(
        !computed.body.is_empty() && computed.body.iter().all(u8::is_ascii_digit),
        "{:?}",
        String::from_utf8_lossy(&computed.body)
    );
    s.write_all(get("/nope").as_bytes()).unwrap();
    assert_eq!(read_response(&mut r).status, 404);
}

#[test]
fn answers_100_keep_alive_requests_on_one_connection() {
    let server = start(&[]);
    let mut s = server.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for i in 0..100 {
        let path = if i % 2 == 0 { "/plaintext" } else { "/json" };
        s.write_all(get(path).as_bytes()).unwrap();
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200, "request {i}");
    }
}

#[test]
fn answers_pipelined_requests_in_order() {
    let server = start(&[]);
    let mut s = server.connect();
    let mut batch = String::new();
    for i in 0..16 {
        batch.push_str(&get(if i % 2 == 0 { "/plaintext" } else { "/json" }));
    }
    s.write_all(batch.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for i in 0..16 {
        let resp = read_response(&mut r);
        assert_eq!(resp.status, 200);
        let want: &[u8] = if i % 2 == 0 {
            b"Hello, World!"
        } else {
            br#"{"message":"Hello, World!"}"#
        };
        assert_eq!(resp.body, want, "response {i} out of order");
    }
}

/// What the server did with a bad request: a status, or closed the
/// connection without one (hyper, on tokio as on kevent, closes on some
/// parse errors instead of answering 400).
fn status_or_close(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

fn assert_still_serving(server: &Server) {
    let mut s = server.connect();
    s.write_all(get("/plaintext").as_bytes()).unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).status, 200);
}

#[test]
fn malformed_request_is_refused_and_the_server_keeps_serving() {
    let server = start(&[]);
    for bad in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /plaintext HTTTP/1.1\r\n\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(bad).unwrap();
        if let Some(code) = status_or_close(&mut s) {
            assert!((400..500).contains(&code), "{code} for {bad:?}");
        }
        assert_still_serving(&server);
    }
}

#[test]
fn a_megabyte_of_headers_is_refused_and_the_server_keeps_serving() {
    let server = start(&[]);
    let mut s = server.connect();
    let mut req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    // The server may close before taking it all: a failed write is fine.
    let _ = s.write_all(&req);
    if let Some(code) = status_or_close(&mut s) {
        assert!((400..500).contains(&code), "{code}");
    }
    assert_still_serving(&server);
}

#[test]
fn hyper_client_on_kevent_speaks_http1_and_http2_to_it() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use kevent::hyper::Executor;

    let server = start(&[]);
    let addr = server.addr;
    let rt = kevent::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let stream = kevent::net::TcpStream::connect(addr).await.unwrap();
        let (mut h1, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        kevent::spawn(conn);
        for path in ["/plaintext", "/json"] {
            let req = hyper::Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            h1.ready().await.unwrap();
            let res = h1.send_request(req).await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.version(), hyper::Version::HTTP_11);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert!(body.starts_with(b"Hello") || body.starts_with(b"{\"message\""));
        }

        let stream = kevent::net::TcpStream::connect(addr).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::handshake(Executor::new(), stream)
            .await
            .unwrap();
        kevent::spawn(conn);
        let mut pending = Vec::new();
        for _ in 0..8 {
            let req = hyper::Request::get(format!("http://{addr}/plaintext"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            h2.ready().await.unwrap();
            pending.push(h2.send_request(req));
        }
        for res in pending {
            let res = res.await.unwrap();
            assert_eq!(res.version(), hyper::Version::HTTP_2);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"Hello, World!");
        }
    });
}

#[test]
fn sigint_stops_accepting_finishes_and_exits_zero() {
    stops_accepting_finishes_and_exits_zero(libc::SIGINT);
}

#[test]
fn sigterm_stops_accepting_finishes_and_exits_zero() {
    stops_accepting_finishes_and_exits_zero(libc::SIGTERM);
}

/// `signo` drains the server like Ctrl-C: the answered connection is not
/// cut, the listener closes, the exit status is 0.
fn stops_accepting_finishes_and_exits_zero(signo: i32) {
    let server = start(&[]);
    let mut s = server.connect();
    s.write_all(get("/plaintext").as_bytes()).unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(s.try_clone().unwrap())).status,
        200
    );
    let addr = server.addr;
    let status = server.signal(signo, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}
