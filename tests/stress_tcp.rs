//! 10 000 TCP connections open at once on loopback, every one exchanging
//! messages with an echo server; every exchange must complete. The resident
//! set size of both processes is printed along the way (not asserted: it
//! depends on the allocator and the kernel).
//!
//! The two ends of 10 000 connections are 20 000 descriptors, and the hard
//! `RLIMIT_NOFILE` of a container is often exactly that and cannot be
//! raised, so the clients run in a child process (this test binary again,
//! `client_process`, on a runtime of the same flavor) and the echo server in
//! the test's own. Each process raises its soft limit as needed. The
//! configurations run one at a time (`SERIAL`).

#[macro_use]
mod common;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{watchdog_for, Flavor};
use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};

/// Connections open at the same time.
const CONNECTIONS: usize = 10_000;
/// Request/response round trips per connection.
const ROUNDS: usize = 4;
/// The server's first byte on every connection.
const GREETING: [u8; 1] = *b"!";
/// Connections awaiting their greeting at once: below the listen backlog
/// (mio's, like std's, is 128), so the accept queue never overflows.
const CONNECT_WAVE: usize = 100;
/// How long one configuration may take, start to runtime dropped.
const LIMIT: Duration = Duration::from_secs(90);
/// How long the exchanges may take before they count as stalled (and
/// where every unfinished connection is gets reported).
const STALL: Duration = Duration::from_secs(30);

/// Tells the child process where to connect and which flavor to run:
/// `ADDR FLAVOR`, e.g. `127.0.0.1:4000 multi_thread_2`.
const CLIENT_ENV: &str = "KEVENT_STRESS_TCP_CLIENTS";

/// Serializes this file's tests.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `body` alone, under a watchdog of [`LIMIT`].
fn run_alone(flavor: Flavor, body: fn(Flavor)) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog_for(LIMIT, move || body(flavor));
}

/// Raises this process's descriptor limit to at least `need`, raising the
/// hard limit too when allowed; panics, saying what to do, when it cannot.
fn raise_nofile_limit(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) },
        0,
        "getrlimit: {}",
        io::Error::last_os_error()
    );
    if lim.rlim_cur >= need {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: need,
        rlim_max: lim.rlim_max.max(need),
    };
    // SAFETY: a valid rlimit, read by the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return;
    }
    let err = io::Error::last_os_error();
    panic!(
        "this test needs {need} file descriptors; RLIMIT_NOFILE is {}/{} (soft/hard) and \
         raising it failed ({err}): run it as root or with `ulimit -Hn {need}`",
        lim.rlim_cur, lim.rlim_max
    );
}

/// This process's resident set size, from `/proc/self/status`.
fn vm_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// This process's peak resident set size, from `/proc/self/status`.
fn vm_hwm() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Where each connection's task is, for a report if the run stalls: its
/// stage (see the `STAGE_*` constants and [`Progress::reading`]) and its
/// socket's descriptor.
struct Progress {
    /// Per connection: stage.
    stage: Vec<AtomicU32>,
    /// Per connection: the socket's descriptor.
    fd: Vec<AtomicI32>,
}

/// Not started yet.
const STAGE_IDLE: u32 = 0;
/// Writing (the server: its echo).
const STAGE_WRITING: u32 = 1;
/// Waiting for data (the server: the next message or EOF).
const STAGE_READING: u32 = 2;
/// The client: half-closed, waiting for the server's EOF.
const STAGE_CLOSING: u32 = 3;
/// Finished.
const STAGE_DONE: u32 = 4;

impl Progress {
    fn new() -> Arc<Progress> {
        Arc::new(Progress {
            stage: (0..CONNECTIONS)
                .map(|_| AtomicU32::new(STAGE_IDLE))
                .collect(),
            fd: (0..CONNECTIONS).map(|_| AtomicI32::new(-1)).collect(),
        })
    }

    fn set(&self, conn: usize, stage: u32) {
        self.stage[conn].store(stage, SeqCst);
    }

    /// Unfinished connections, with the first few described: stage, bytes
    /// waiting unread in the socket and not yet sent, and what a
    /// non-blocking peek finds (data or EOF while the task waits to read
    /// means its wakeup was lost).
    fn report(&self, who: &str) -> String {
        let stuck: Vec<usize> = (0..CONNECTIONS)
            .filter(|&i| self.stage[i].load(SeqCst) != STAGE_DONE)
            .collect();
        let mut out = format!("{who}: {} of {CONNECTIONS} unfinished", stuck.len());
        for &i in stuck.iter().take(8) {
            let fd = self.fd[i].load(SeqCst);
            let (mut unread, mut unsent): (libc::c_int, libc::c_int) = (-1, -1);
            let mut peek = "no descriptor".to_string();
            if fd >= 0 {
                let mut byte = 0u8;
                // SAFETY: FIONREAD/TIOCOUTQ write one int and recv writes
                // at most one byte into `byte`; the descriptor is still
                // owned by the stuck task, and MSG_PEEK leaves its data.
                let peeked = unsafe {
                    libc::ioctl(fd, libc::FIONREAD, &mut unread);
                    libc::ioctl(fd, libc::TIOCOUTQ, &mut unsent);
                    libc::recv(
                        fd,
                        (&mut byte as *mut u8).cast(),
                        1,
                        libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    )
                };
                peek = match peeked {
                    0 => "readable: EOF".to_string(),
                    n if n > 0 => "readable: data".to_string(),
                    _ => format!("{}", io::Error::last_os_error()),
                };
            }
            let stage = match self.stage[i].load(SeqCst) {
                STAGE_IDLE => "not started",
                STAGE_WRITING => "writing",
                STAGE_READING => "waiting to read",
                STAGE_CLOSING => "half-closed, waiting for EOF",
                _ => "?",
            };
            out += &format!(
                "\n  connection {i}: {stage}; {unread} bytes unread in its socket, \
                 {unsent} unsent; a non-blocking peek now: {peek}"
            );
        }
        out
    }
}

/// Message `round` of connection `conn`: 1 to 300 bytes, distinct per
/// (conn, round), so a reply delivered to the wrong connection is caught.
fn message(conn: usize, round: usize) -> Vec<u8> {
    let len = 1 + (conn * 31 + round * 97) % 300;
    let tag = ((conn * ROUNDS + round) as u32).to_le_bytes();
    (0..len).map(|i| tag[i % 4] ^ (i as u8)).collect()
}

/// Sends [`GREETING`], then echoes until end of file; returns the bytes
/// echoed. Reports its stage in `progress` as connection `conn`.
async fn greet_and_echo(
    conn: usize,
    mut stream: TcpStream,
    progress: Arc<Progress>,
) -> io::Result<u64> {
    progress.fd[conn].store(stream.as_raw_fd(), SeqCst);
    progress.set(conn, STAGE_WRITING);
    stream.write_all(&GREETING).await?;
    let mut buf = [0u8; 512];
    let mut total = 0;
    loop {
        progress.set(conn, STAGE_READING);
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            progress.set(conn, STAGE_DONE);
            return Ok(total);
        }
        progress.set(conn, STAGE_WRITING);
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// One client: `ROUNDS` round trips, then half-close and wait for the
/// server's end of file. Returns the bytes sent. Reports its stage in
/// `progress`.
async fn exchange(conn: usize, mut stream: TcpStream, progress: Arc<Progress>) -> io::Result<u64> {
    progress.fd[conn].store(stream.as_raw_fd(), SeqCst);
    let mut sent = 0;
    for round in 0..ROUNDS {
        let msg = message(conn, round);
        progress.set(conn, STAGE_WRITING);
        stream.write_all(&msg).await?;
        let mut back = vec![0; msg.len()];
        progress.set(conn, STAGE_READING);
        stream.read_exact(&mut back).await?;
        if back != msg {
            return Err(io::Error::other(format!(
                "connection {conn} round {round}: wrong echo"
            )));
        }
        sent += msg.len() as u64;
    }
    progress.set(conn, STAGE_CLOSING);
    stream.close().await?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(io::Error::other(format!(
            "connection {conn}: {} unexpected bytes after the last echo",
            rest.len()
        )));
    }
    progress.set(conn, STAGE_DONE);
    Ok(sent)
}

fn flavor_name(flavor: Flavor) -> String {
    match flavor {
        Flavor::CurrentThread => "current_thread".to_string(),
        Flavor::MultiThread(n) => format!("multi_thread_{n}"),
    }
}

fn parse_flavor(name: &str) -> Flavor {
    match name.strip_prefix("multi_thread_") {
        Some(n) => Flavor::MultiThread(n.parse().expect("worker count")),
        None if name == "current_thread" => Flavor::CurrentThread,
        None => panic!("unknown flavor {name:?}"),
    }
}

/// Connects and waits for the server's greeting: the server has accepted
/// this connection. Waiting for it keeps the clients from outrunning the
/// acceptor (a full accept queue drops SYNs, and each drop costs a 1 s
/// retransmission).
async fn connect_and_greet(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let mut greeting = [0u8; 1];
    s.read_exact(&mut greeting).await?;
    if greeting != GREETING {
        return Err(io::Error::other(format!("bad greeting {greeting:?}")));
    }
    Ok(s)
}

/// Does nothing in a normal run. In the child started by
/// `ten_thousand_concurrent_connections_all_complete_their_exchanges`:
/// opens all [`CONNECTIONS`] to the address in [`CLIENT_ENV`], then runs
/// every exchange at once, and prints `CLIENTS sent=N` (bytes sent).
#[test]
fn client_process() {
    let Ok(spec) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let (addr, flavor) = spec.split_once(' ').expect("ADDR FLAVOR");
    let addr: SocketAddr = addr.parse().unwrap();
    let flavor = parse_flavor(flavor);
    raise_nofile_limit(CONNECTIONS as u64 + 500);
    let started = Instant::now();
    let sent = watchdog_for(LIMIT, move || {
        let rt = flavor.build();
        let sent = rt.block_on(async move {
            // Every connection open before any exchange starts.
            let mut streams = Vec::with_capacity(CONNECTIONS);
            while streams.len() < CONNECTIONS {
                let wave = CONNECT_WAVE.min(CONNECTIONS - streams.len());
                let connects: Vec<_> = (0..wave)
                    .map(|_| kevent::spawn(connect_and_greet(addr)))
                    .collect();
                for c in connects {
                    streams.push(c.await.unwrap().expect("connect"));
                }
            }
            eprintln!(
                "clients: {CONNECTIONS} connections open after {:?}; VmRSS {}",
                started.elapsed(),
                vm_rss()
            );
            let progress = Progress::new();
            let clients: Vec<_> = streams
                .into_iter()
                .enumerate()
                .map(|(i, s)| kevent::spawn(exchange(i, s, progress.clone())))
                .collect();
            let deadline = Instant::now() + STALL;
            let mut sent = 0;
            let mut failed = Vec::new();
            for (i, c) in clients.into_iter().enumerate() {
                match kevent::time::timeout_at(deadline.into(), c).await {
                    Ok(r) => match r.unwrap() {
                        Ok(n) => sent += n,
                        Err(e) => failed.push((i, e)),
                    },
                    Err(_) => panic!(
                        "exchanges stalled for {STALL:?}; {}",
                        progress.report("clients")
                    ),
                }
            }
            assert!(
                failed.is_empty(),
                "{} of {CONNECTIONS} exchanges failed; first: {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            );
            eprintln!(
                "clients: {CONNECTIONS} x {ROUNDS} round trips done after {:?}; VmRSS {}",
                started.elapsed(),
                vm_rss()
            );
            sent
        });
        drop(rt);
        sent
    });
    println!("CLIENTS sent={sent}");
}

/// Runs `client_process` in a child against `addr`; returns the bytes its
/// clients sent, or what went wrong.
fn run_clients(addr: SocketAddr, flavor: Flavor) -> Result<u64, String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "client_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CLIENT_ENV, format!("{addr} {}", flavor_name(flavor)))
        .output()
        .expect("run the test binary as the client process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("clients: ")) {
        eprintln!("{flavor:?} {line}");
    }
    if !out.status.success() {
        let panics: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim_start().starts_with("at ") && !l.contains(": 0x"))
            .collect();
        return Err(format!(
            "client process failed ({}); its stderr without backtraces:\n{}",
            out.status,
            panics.join("\n")
        ));
    }
    stdout
        .lines()
        .find_map(|l| {
            l.find("CLIENTS sent=")
                .map(|i| l[i + 13..].trim().parse().unwrap())
        })
        .ok_or_else(|| format!("client process printed no CLIENTS line:\n{stdout}"))
}

rt_test_sync!(@run crate::run_alone,
    ten_thousand_concurrent_connections_all_complete_their_exchanges:
    current_thread, multi_thread_2, multi_thread_4);
fn ten_thousand_concurrent_connections_all_complete_their_exchanges(flavor: Flavor) {
    raise_nofile_limit(CONNECTIONS as u64 + 500);
    let started = Instant::now();
    let rt = flavor.build();
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Server-side connections alive now, and the most at once.
        let live = Arc::new(AtomicUsize::new(0));
        let most_live = Arc::new(AtomicUsize::new(0));
        let progress = Progress::new();
        let acceptor = {
            let (live, most_live) = (live.clone(), most_live.clone());
            let progress = progress.clone();
            kevent::spawn(async move {
                let mut handlers = Vec::with_capacity(CONNECTIONS);
                for i in 0..CONNECTIONS {
                    let (s, _) = listener.accept().await.expect("accept");
                    let (live, most_live) = (live.clone(), most_live.clone());
                    most_live.fetch_max(live.fetch_add(1, SeqCst) + 1, SeqCst);
                    let progress = progress.clone();
                    handlers.push(kevent::spawn(async move {
                        let echoed = greet_and_echo(i, s, progress).await;
                        live.fetch_sub(1, SeqCst);
                        echoed
                    }));
                }
                handlers
            })
        };
        let sent = kevent::task::spawn_blocking(move || run_clients(addr, flavor))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", progress.report("server")));
        let handlers = acceptor.await.unwrap();
        let mut echoed = 0;
        for h in handlers {
            echoed += h.await.unwrap().expect("server side of an exchange");
        }
        assert_eq!(echoed, sent, "server echoed a different byte count");
        // Every client read its greeting before any exchange began, and a
        // handler ends only after its client's half-close.
        assert_eq!(
            most_live.load(SeqCst),
            CONNECTIONS,
            "the connections were not all open at once"
        );
        eprintln!(
            "{flavor:?} server: done after {:?}; VmRSS {} (peak {})",
            started.elapsed(),
            vm_rss(),
            vm_hwm()
        );
    });
    drop(rt);
}
