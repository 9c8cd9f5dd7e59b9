//! The HTTP example (`examples/http.rs`) as a black box: started on an
//! ephemeral port, checked with raw sockets and with a hyper client on
//! kevent over HTTP/1.1 and HTTP/2, then stopped with SIGINT or SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example server, killed on drop if a test fails.
struct Server {
    /// The process.
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
}

fn example_path(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps; examples live in ../examples.
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join(name)
}

impl Server {
    fn start(envs: &[(&str, &str)]) -> Server {
        let path = example_path("http");
        assert!(path.exists(), "build the example first: {}", path.display());
        let mut child = Command::new(path)
            .arg("127.0.0.1:0")
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("server printed nothing").unwrap();
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .parse()
            .unwrap();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `signo`, then waits for the exit status.
    fn stop_with(mut self, signo: i32) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signo) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after signal {signo}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
struct Resp {
    /// Status code.
    status: u16,
    /// Headers, names lowercased.
    headers: Vec<(String, String)>,
    /// The body.
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length bodies only, as the server sends).
fn read_response(r: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

#[test]
fn serves_plaintext_and_json_with_techempower_headers() {
    let server = Server::start(&[]);
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
    s.write_all(get("/nope").as_bytes()).unwrap();
    assert_eq!(read_response(&mut r).status, 404);
}

#[test]
fn answers_100_keep_alive_requests_on_one_connection() {
    let server = Server::start(&[]);
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
    let server = Server::start(&[]);
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
    let server = Server::start(&[]);
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
    let server = Server::start(&[]);
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

    let server = Server::start(&[]);
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
    let server = Server::start(&[]);
    let mut s = server.connect();
    s.write_all(get("/plaintext").as_bytes()).unwrap();
    assert_eq!(
        read_response(&mut BufReader::new(s.try_clone().unwrap())).status,
        200
    );
    let addr = server.addr;
    let status = server.stop_with(signo);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}
