//! The axum example (`examples/axum.rs`) and its tokio twin
//! (`examples/axum_tokio.rs`) as black boxes: started on an ephemeral port,
//! checked with raw sockets, then stopped with SIGTERM or SIGINT. The
//! kevent server's timeout layer and WebSocket route need feature
//! `tokio-compat` (this test's `required-features`).

mod example_server;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use example_server::{get, read_response, Resp, Server};

/// The kevent server and its tokio twin.
const TWINS: [&str; 2] = ["axum", "axum_tokio"];

/// The responses to `paths`, asked in turn on one keep-alive connection.
fn ask(server: &Server, paths: &[&str]) -> Vec<Resp> {
    let mut s = server.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    paths
        .iter()
        .map(|p| {
            s.write_all(get(p).as_bytes()).unwrap();
            read_response(&mut r)
        })
        .collect()
}

#[test]
fn serves_json_a_path_parameter_and_plaintext() {
    let server = Server::start("axum", &[]);
    let r = ask(&server, &["/json", "/user/42", "/plaintext"]);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r[0].body).unwrap();
    assert_eq!(json, serde_json::json!({ "message": "Hello, World!" }));
    assert_eq!(r[1].status, 200);
    let user: serde_json::Value = serde_json::from_slice(&r[1].body).unwrap();
    assert_eq!(user, serde_json::json!({ "id": 42, "name": "user 42" }));
    assert_eq!(r[2].status, 200);
    assert_eq!(r[2].body, b"Hello, World!");
    assert_eq!(r[2].header("server"), Some("kevent"));
}

#[test]
fn refuses_a_non_numeric_user_id_and_an_unknown_path() {
    let server = Server::start("axum", &[]);
    let r = ask(&server, &["/user/abc", "/nope", "/plaintext"]);
    assert_eq!(r[0].status, 400);
    assert_eq!(r[1].status, 404);
    assert_eq!(r[2].status, 200, "still serving on the same connection");
}

#[test]
fn the_tokio_twin_answers_exactly_as_the_kevent_server() {
    let paths = ["/json", "/user/7", "/user/x", "/plaintext", "/nope"];
    let [kevent, tokio] = TWINS.map(|name| ask(&Server::start(name, &[]), &paths));
    for ((p, k), t) in paths.iter().zip(&kevent).zip(&tokio) {
        assert_eq!((k.status, &k.body), (t.status, &t.body), "{p}");
        assert_eq!(k.header("content-type"), t.header("content-type"), "{p}");
    }
    assert_eq!(tokio[0].header("server"), Some("tokio"));
}

/// Threads of a server started with `var=workers`, after one request.
fn threads_with(name: &str, var: &str, workers: &str) -> usize {
    let server = Server::start(name, &[(var, workers)]);
    assert_eq!(ask(&server, &["/plaintext"])[0].status, 200, "{name}");
    std::fs::read_dir(format!("/proc/{}/task", server.child.id()))
        .unwrap()
        .count()
}

#[test]
fn takes_the_worker_count_from_the_environment() {
    for (name, var) in [
        ("axum", "KEVENT_WORKERS"),
        ("axum_tokio", "TOKIO_WORKER_THREADS"),
    ] {
        let one = threads_with(name, var, "1");
        let three = threads_with(name, var, "3");
        assert_eq!(
            three - one,
            2,
            "{name}: {var}=1 runs {one} threads, =3 runs {three}"
        );
    }
}

/// Serves one request, then `signo`: the idle keep-alive connection is
/// closed at once (not after the grace period) and the process exits 0.
fn drains_and_exits_zero_on(name: &str, signo: i32) {
    // A grace period far longer than the test allows: exiting in time
    // means the drain closed the idle connection rather than waiting it out.
    let server = Server::start(name, &[("HTTP_SHUTDOWN_GRACE_MS", "60000")]);
    let mut s = server.connect();
    s.write_all(get("/user/1").as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r).status, 200);
    let addr = server.addr;
    let status = server.signal(signo, Duration::from_secs(10));
    assert!(status.success(), "{name}: exit status {status:?}");
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "{name}: the kept-alive connection ends cleanly"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "{name}: still accepting after shutdown"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    for name in TWINS {
        drains_and_exits_zero_on(name, libc::SIGTERM);
    }
}

#[test]
fn sigint_drains_and_exits_zero() {
    for name in TWINS {
        drains_and_exits_zero_on(name, libc::SIGINT);
    }
}

#[test]
fn the_timeout_layer_answers_a_stuck_handler_408_and_keeps_serving() {
    for name in TWINS {
        let server = Server::start(name, &[("REQUEST_TIMEOUT_MS", "200")]);
        let start = Instant::now();
        let r = ask(&server, &["/stuck", "/plaintext"]);
        let waited = start.elapsed();
        assert_eq!(r[0].status, 408, "{name}");
        assert!(waited >= Duration::from_millis(200), "{name}: {waited:?}");
        assert_eq!(r[1].status, 200, "{name}: same connection after the 408");
    }
}

/// One WebSocket frame from the client: FIN, `opcode`, masked `payload`
/// (shorter than 126 bytes).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

#[test]
fn the_websocket_route_upgrades_and_echoes() {
    for name in TWINS {
        let server = Server::start(name, &[]);
        let mut s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{name}: {head}");
        // RFC 6455's example key and its accept value.
        assert!(
            head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{name}: {head}"
        );
        s.write_all(&client_frame(0x1, b"echo me")).unwrap();
        let mut frame = [0u8; 9];
        s.read_exact(&mut frame).unwrap();
        assert_eq!(&frame[..2], &[0x81, 7], "{name}: one unmasked text frame");
        assert_eq!(&frame[2..], b"echo me", "{name}");
    }
}
