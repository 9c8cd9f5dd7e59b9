//! A server stopped and started again at once on the same port binds it,
//! however it was stopped: Ctrl-C and SIGTERM (graceful), SIGKILL (no
//! chance to clean up). A listener must not outlive its process, nor the
//! runtime that watched it, in the kernel's ring.

mod example_server;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::time::Duration;

use example_server::{get, read_response, Server};

const RESTARTS: usize = 20;

/// The tests take turns: a port one of them frees could otherwise be
/// handed to another's `bind(0)` or outgoing connection before it binds the
/// port again, failing it for a reason that is not ours.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts examples/http on `addr`, serves one request on a connection
/// left open (so the process holds accepted sockets too), stops it with
/// `signo`, and starts it again on the same port at once, `RESTARTS`
/// times. Returns the starts that failed.
fn restarts(signo: i32) -> Vec<String> {
    let _turn = serial();
    let mut server = Server::start("http", &[]);
    let addr = server.addr.to_string();
    let mut failures = Vec::new();
    for _ in 0..RESTARTS {
        let mut conn = server.connect();
        conn.write_all(get("/plaintext").as_bytes()).unwrap();
        assert_eq!(read_response(&mut BufReader::new(&conn)).status, 200);
        let status = server.signal(signo, Duration::from_secs(10));
        if signo != libc::SIGKILL {
            assert!(status.success(), "graceful stop exits 0: {status}");
        }
        drop(conn);
        server = loop {
            match Server::start_on("http", &addr, &[]) {
                Ok(s) => break s,
                Err(e) => {
                    failures.push(e);
                    if failures.len() > RESTARTS {
                        panic!("the port never came free: {failures:?}");
                    }
                    // Try again until it binds, so each round still starts
                    // from a running server.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
    }
    failures
}

#[test]
fn a_server_stopped_with_ctrl_c_restarts_on_its_port_at_once() {
    let failed = restarts(libc::SIGINT);
    assert!(
        failed.is_empty(),
        "{} of {RESTARTS} restarts failed: {failed:?}",
        failed.len()
    );
}

#[test]
fn a_server_stopped_with_sigterm_restarts_on_its_port_at_once() {
    let failed = restarts(libc::SIGTERM);
    assert!(
        failed.is_empty(),
        "{} of {RESTARTS} restarts failed: {failed:?}",
        failed.len()
    );
}

#[test]
fn a_killed_server_restarts_on_its_port_at_once() {
    let failed = restarts(libc::SIGKILL);
    assert!(
        failed.is_empty(),
        "{} of {RESTARTS} restarts failed: {failed:?}",
        failed.len()
    );
}

/// In one process: a listener that was watched (and had accepted) on a
/// multi-thread runtime is free for a plain bind as soon as the runtime
/// that watched it is dropped.
#[test]
fn a_dropped_runtime_leaves_its_listeners_port_free() {
    let _turn = serial();
    for workers in [1, 2] {
        for _ in 0..RESTARTS {
            let rt = kevent::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            let addr: SocketAddr = rt.block_on(async {
                let listener = kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).unwrap();
                let (_server, _) = listener.accept().await.unwrap();
                drop(client);
                addr
            });
            drop(rt);
            let again = StdListener::bind(addr);
            assert!(
                again.is_ok(),
                "{workers} workers: bind {addr} again: {again:?}"
            );
        }
    }
}
