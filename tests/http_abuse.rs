//! The HTTP example (`examples/http.rs`) under hostile clients, as a black
//! box started the way `tests/http.rs` starts it: slowloris connections
//! while a normal client is served, a burst of concurrent connections,
//! resets mid-request, a client that half-closes after its request, and a
//! descriptor limit smaller than the number of clients (the accept loop
//! backs off without spinning, and recovers).
//!
//! The tests run one at a time (`SERIAL`): they measure latency and the
//! server's CPU time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Serializes this file's tests.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The example server, killed on drop.
struct Server {
    /// The process (after `exec`, also when started through `sh`).
    child: Child,
    /// Where it listens.
    addr: SocketAddr,
    /// Its stderr lines after the first, as they arrive.
    log: Arc<Mutex<Vec<String>>>,
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
    /// Starts the example on an ephemeral port with `envs`; with
    /// `fd_limit`, under `ulimit -n fd_limit`.
    fn start(envs: &[(&str, &str)], fd_limit: Option<u32>) -> Server {
        let path = example_path("http");
        assert!(path.exists(), "build the example first: {}", path.display());
        let mut cmd = match fd_limit {
            None => {
                let mut c = Command::new(&path);
                c.arg("127.0.0.1:0");
                c
            }
            Some(n) => {
                // `exec` keeps the pid, so /proc/<pid> is the server's.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" 127.0.0.1:0"))
                    .arg(&path);
                c
            }
        };
        let mut child = cmd
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
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        // Keep draining stderr so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, addr, log }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Panics if the server has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the server exited ({status}); its log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
        }
    }

    /// Lines of the log so far containing `needle`.
    fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// CPU time (user + system) the server has used so far.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name, which is in parentheses; utime
        // and stime are fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / per_sec)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Reads one response (Content-Length bodies only, as the server sends);
/// returns its status and body.
fn read_response(r: &mut impl BufRead) -> io::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, body))
}

/// One request on a new connection; returns how long it took, connect
/// included.
fn request_on_new_connection(server: &Server) -> Duration {
    let start = Instant::now();
    let mut s = server.connect();
    s.write_all(get("/plaintext").as_bytes()).unwrap();
    let (status, body) = read_response(&mut BufReader::new(s)).expect("response");
    assert_eq!((status, &body[..]), (200, &b"Hello, World!"[..]));
    start.elapsed()
}

/// Sets `SO_LINGER` to zero: closing then sends RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a valid `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

// ---------------------------------------------------------------- slowloris

/// Slowloris connections.
const SLOW_CLIENTS: usize = 200;
/// How often each slowloris connection sends its next byte.
const DRIBBLE: Duration = Duration::from_millis(500);
/// The server's header-read timeout in this test.
const HEADER_TIMEOUT_MS: u64 = 1_000;
/// Most a normal request may take while the slowloris clients are on.
const MAX_NORMAL_REQUEST: Duration = Duration::from_millis(500);

/// Whether the server has closed `s` (EOF or reset); consumes any
/// response it sent (a 408, say).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_connections_are_closed_by_the_header_timeout_while_others_are_served() {
    let _serial = serial();
    let timeout_ms = HEADER_TIMEOUT_MS.to_string();
    let mut server = Server::start(&[("HTTP_HEADER_TIMEOUT_MS", &timeout_ms)], None);
    let addr = server.addr;

    // The slowloris clients: a partial request line, then one byte of a
    // never-ending header every DRIBBLE, from one thread.
    let started = Instant::now();
    let dribbler = thread::spawn(move || {
        let mut slow: Vec<Option<TcpStream>> = (0..SLOW_CLIENTS)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                    .unwrap();
                s.set_nonblocking(true).unwrap();
                Some(s)
            })
            .collect();
        let mut open = SLOW_CLIENTS;
        // Dribble until every one is closed, for at most 10 timeouts.
        let give_up = Instant::now() + Duration::from_millis(10 * HEADER_TIMEOUT_MS);
        while open > 0 && Instant::now() < give_up {
            thread::sleep(DRIBBLE);
            for slot in &mut slow {
                let Some(s) = slot else { continue };
                if closed_by_server(s) || s.write_all(b"a").is_err() {
                    *slot = None;
                    open -= 1;
                }
            }
        }
        (open, started.elapsed())
    });

    // A normal client, one request per new connection, until the slowloris
    // connections are gone.
    let mut longest = Duration::ZERO;
    let mut served = 0;
    thread::sleep(Duration::from_millis(100));
    while !dribbler.is_finished() {
        longest = longest.max(request_on_new_connection(&server));
        served += 1;
        thread::sleep(Duration::from_millis(50));
    }
    let (still_open, took) = dribbler.join().unwrap();
    eprintln!(
        "{served} normal requests, longest {longest:?}; slowloris closed after {took:?} \
         ({still_open} still open)"
    );
    assert_eq!(
        still_open, 0,
        "{still_open} of {SLOW_CLIENTS} slowloris connections outlived 10 header timeouts"
    );
    assert!(
        took >= Duration::from_millis(HEADER_TIMEOUT_MS),
        "slowloris connections closed after {took:?}, before the header timeout"
    );
    assert!(
        served >= 5,
        "only {served} normal requests while slowloris ran"
    );
    assert!(
        longest < MAX_NORMAL_REQUEST,
        "a normal request took {longest:?} while slowloris connections were open"
    );
    server.assert_running();
}

// ---------------------------------------------------------------- burst

/// Connections opened at once, each doing one request.
const BURST: usize = 400;

#[test]
fn four_hundred_concurrent_new_connections_are_all_answered() {
    let _serial = serial();
    let mut server = Server::start(&[], None);
    let addr = server.addr;
    let rt = kevent::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let answered = rt.block_on(async move {
        use kevent::io::{AsyncReadExt, AsyncWriteExt};
        // Connect all, then send all: every connection is open while the
        // server answers the first request.
        let connects: Vec<_> = (0..BURST)
            .map(|_| kevent::spawn(kevent::net::TcpStream::connect(addr)))
            .collect();
        let mut streams = Vec::new();
        for c in connects {
            streams.push(c.await.unwrap().expect("connect"));
        }
        let requests: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                kevent::spawn(async move {
                    s.write_all(b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .await?;
                    let mut resp = Vec::new();
                    s.read_to_end(&mut resp).await?;
                    Ok::<_, io::Error>(resp)
                })
            })
            .collect();
        let mut answered = 0;
        for r in requests {
            let resp = kevent::time::timeout(Duration::from_secs(30), r)
                .await
                .expect("a request was never answered")
                .unwrap()
                .expect("request failed");
            let text = String::from_utf8_lossy(&resp);
            assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
            assert!(text.ends_with(r#"{"message":"Hello, World!"}"#), "{text}");
            answered += 1;
        }
        answered
    });
    assert_eq!(answered, BURST);
    server.assert_running();
}

// ---------------------------------------------------------------- resets

#[test]
fn resets_mid_request_leave_the_server_serving() {
    let _serial = serial();
    let mut server = Server::start(&[], None);
    for i in 0..100 {
        let mut s = server.connect();
        s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: loc")
            .unwrap();
        if i % 2 == 0 {
            // Sometimes after the server has read the partial request.
            thread::sleep(Duration::from_millis(1));
        }
        set_linger_zero(&s);
        drop(s);
        if i % 10 == 9 {
            request_on_new_connection(&server);
        }
    }
    // Resets on a keep-alive connection between requests, too.
    let mut s = server.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(get("/json").as_bytes()).unwrap();
    assert_eq!(read_response(&mut r).unwrap().0, 200);
    s.write_all(b"GET /json HTTP/1.1\r\nHo").unwrap();
    set_linger_zero(&s);
    drop((s, r));
    server.assert_running();
    request_on_new_connection(&server);
}

// ---------------------------------------------------------------- half-close

#[test]
fn a_client_that_half_closes_after_its_request_gets_its_response() {
    let _serial = serial();
    let mut server = Server::start(&[], None);
    for path in ["/plaintext", "/json", "/nope"] {
        for _ in 0..10 {
            let mut s = server.connect();
            s.write_all(get(path).as_bytes()).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut r = BufReader::new(s);
            let (status, _) = read_response(&mut r)
                .unwrap_or_else(|e| panic!("no response to {path} after a half-close: {e}"));
            assert_eq!(status, if path == "/nope" { 404 } else { 200 });
        }
    }
    server.assert_running();
}

// ---------------------------------------------------------------- fd limit

/// The server's descriptor limit.
const FD_LIMIT: u32 = 512;
/// Connections opened: more than the server has descriptors for.
const FD_CLIENTS: usize = 600;
/// Connections closed afterwards, to give the server descriptors back.
const FD_RELEASED: usize = 200;

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_without_spinning_and_recovers() {
    let _serial = serial();
    // Idle connections must stay open through the test.
    let mut server = Server::start(&[("HTTP_HEADER_TIMEOUT_MS", "60000")], Some(FD_LIMIT));
    // Some of these sit in the listen backlog, unaccepted; past the
    // backlog a connect can time out.
    let mut conns = Vec::new();
    for _ in 0..FD_CLIENTS {
        match TcpStream::connect_timeout(&server.addr, Duration::from_millis(500)) {
            Ok(s) => conns.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => panic!("connect: {e}"),
        }
    }
    assert!(
        conns.len() > FD_LIMIT as usize,
        "only {} connections got through",
        conns.len()
    );
    // Wait for the server to hit the limit and start backing off.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_count("accept:") == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never reported running out of descriptors"
        );
        thread::sleep(Duration::from_millis(10));
    }
    server.assert_running();

    let (cpu_before, logs_before, at) = (
        server.cpu_time(),
        server.log_count("accept:"),
        Instant::now(),
    );
    thread::sleep(Duration::from_secs(2));
    let (cpu, logs, wall) = (
        server.cpu_time() - cpu_before,
        server.log_count("accept:") - logs_before,
        at.elapsed(),
    );
    eprintln!(
        "out of descriptors: {cpu:?} of CPU in {wall:?}, {logs} accept errors logged; \
         {} connections open",
        conns.len()
    );
    server.assert_running();
    assert!(
        cpu < wall / 2,
        "the server used {cpu:?} of CPU in {wall:?} while out of descriptors (busy loop?)"
    );

    // Give descriptors back: new connections are served again.
    conns.drain(..FD_RELEASED);
    let deadline = Instant::now() + Duration::from_secs(10);
    let took = loop {
        let start = Instant::now();
        let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2))
            .expect("connect after descriptors were released");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(get("/plaintext").as_bytes()).unwrap();
        match read_response(&mut BufReader::new(s)) {
            Ok((200, _)) => break start.elapsed(),
            Ok((status, _)) => panic!("status {status} after recovery"),
            Err(e) => assert!(
                Instant::now() < deadline,
                "not served 10 s after descriptors were released: {e}"
            ),
        }
    };
    eprintln!("served again {took:?} after descriptors were released");
    server.assert_running();
}
