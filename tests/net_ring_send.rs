//! Streams sending through the ring (io_uring, write-behind): a write
//! queues its bytes in the stream's outbox and returns; the ring sends
//! them. Nothing written may be lost or reordered: not when the stream is
//! dropped or shut down right after a large write, not when the runtime
//! itself goes away, not when the peer reads slowly; `flush` waits for the
//! bytes to be sent (hyper's flush does not, and loses nothing); a raw
//! write that would overtake queued bytes fails clearly. On mio, or with `send_through_ring(false)`, the same tests
//! pass on the plain `send(2)` path.

mod net_support;

use std::io::{self, Read, Write};
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};
use kevent::reactor::Interest;
use kevent::runtime::{Builder, Runtime};
use net_support::tcp::pair;

fn runtime(workers: usize, ring: bool) -> Runtime {
    let mut b = if workers == 0 {
        Builder::new_current_thread()
    } else {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.send_through_ring(ring).enable_all().build().unwrap()
}

/// Runtimes to run each test on: both send paths, one and two workers and
/// the current-thread flavor.
fn each(test: impl Fn(&Runtime)) {
    for ring in [true, false] {
        for workers in [0, 1, 2] {
            eprintln!("-- send_through_ring({ring}), workers {workers}");
            let rt = runtime(workers, ring);
            test(&rt);
        }
    }
}

/// A pattern that shows loss and reordering (not a repeated byte).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads the peer to end of file on a plain thread (a reader outside the
/// runtime), slowly at first so the writer's queue fills.
fn read_all_slowly(mut s: std::net::TcpStream) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    })
}

/// `got` is `pattern(len)`: nothing lost, reordered or corrupted.
fn assert_every_byte(got: &[u8], len: usize) {
    assert_eq!(got.len(), len, "bytes lost");
    assert!(got == pattern(len), "bytes reordered or corrupted");
}

/// A std client connected to a kevent server stream.
async fn std_pair() -> (std::net::TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().await.unwrap();
    (client, server)
}

const BIG: usize = 8 << 20;

/// Writes `all` with `try_write` until it would block (the peer does not
/// read): the socket's buffer and the outbox are full. Returns the bytes
/// written.
async fn fill(server: &TcpStream, all: &[u8]) -> usize {
    let mut sent = 0;
    server.writable().await.unwrap();
    loop {
        match server.try_write(&all[sent..sent + 65536]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return sent,
            Err(e) => panic!("{e}"),
        }
        assert!(sent + 65536 <= all.len(), "64 MiB queued without blocking");
    }
}

#[test]
fn a_stream_dropped_right_after_a_large_write_delivers_every_byte_then_eof() {
    each(|rt| {
        let reader = rt.block_on(async {
            let (client, mut server) = std_pair().await;
            let reader = read_all_slowly(client);
            server.write_all(&pattern(BIG)).await.unwrap();
            drop(server);
            reader
        });
        assert_every_byte(&reader.join().unwrap(), BIG);
    });
}

#[test]
fn shutdown_after_a_large_write_sends_every_byte_before_the_fin() {
    each(|rt| {
        let (reader, server) = rt.block_on(async {
            let (client, mut server) = std_pair().await;
            let reader = read_all_slowly(client);
            server.write_all(&pattern(BIG)).await.unwrap();
            server.close().await.unwrap();
            // Writes after the shutdown fail (as on a shut socket).
            let err = server.write_all(b"late").await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            // Keep the stream open: the FIN must come from the shutdown.
            kevent::time::sleep(Duration::from_millis(10)).await;
            (reader, server)
        });
        assert_every_byte(&reader.join().unwrap(), BIG);
        drop(server);
    });
}

#[test]
fn bytes_written_before_the_runtime_is_dropped_still_arrive() {
    for workers in [1, 2] {
        let rt = runtime(workers, true);
        let (reader, server) = rt.block_on(async {
            let (client, mut server) = std_pair().await;
            // write_all returns with up to an outbox of bytes still queued
            // (the reader is slow): they must survive the runtime.
            let reader = read_all_slowly(client);
            server.write_all(&pattern(BIG)).await.unwrap();
            (reader, server)
        });
        drop(server);
        drop(rt);
        assert_every_byte(&reader.join().unwrap(), BIG);
    }
}

/// Every send completed (each stream's batches chained over several sends,
/// its peer read it all): the runtime holds nothing in flight, so its drop
/// does not wait out the linger it gives sends still queued (2 s). A send
/// whose completion failed to release its outbox would keep it waiting.
#[test]
fn a_runtime_whose_sends_all_completed_drops_at_once() {
    const STREAMS: usize = 16;
    const LEN: usize = 1 << 20;
    for workers in [0, 1, 2] {
        let rt = runtime(workers, true);
        let readers = rt.block_on(async {
            let mut readers = Vec::new();
            let mut servers = Vec::new();
            for _ in 0..STREAMS {
                let (client, server) = std_pair().await;
                readers.push(read_all_slowly(client));
                servers.push(server);
            }
            let writers: Vec<_> = servers
                .into_iter()
                .map(|mut server| {
                    kevent::spawn(async move {
                        server.write_all(&pattern(LEN)).await.unwrap();
                        // Waits until the ring has sent every byte.
                        server.flush().await.unwrap();
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
            readers
        });
        for r in readers {
            assert_every_byte(&r.join().unwrap(), LEN);
        }
        let start = std::time::Instant::now();
        drop(rt);
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "workers {workers}: the drop took {took:?}, as if a send were still in flight"
        );
    }
}

/// The send in flight waits for room in a full socket when the runtime
/// goes away: the kernel cancels it once its submitting worker has exited
/// (`ECANCELED` when the socket drains), and the bytes must still arrive,
/// sent again by the thread that drops the runtime.
#[test]
fn a_send_blocked_on_a_full_socket_survives_its_workers_exit() {
    for workers in [1, 2] {
        let rt = runtime(workers, true);
        let all = pattern(64 << 20);
        let (client, sent) = rt.block_on(async {
            let (client, server) = std_pair().await;
            // The peer reads nothing yet: the socket buffer and the outbox
            // fill, until the send in flight waits for room (no byte more
            // is taken in 100 ms).
            let mut sent = 0;
            let mut still = 0;
            while still < 10 {
                match server.try_write(&all[sent..sent + 65536]) {
                    Ok(n) => {
                        sent += n;
                        still = 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        still += 1;
                        kevent::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
                assert!(sent + 65536 <= all.len(), "64 MiB queued without blocking");
            }
            drop(server);
            (client, sent)
        });
        // The reader starts once the workers are surely gone (dropping the
        // runtime waits for its sends, so it starts from here).
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut client = client;
            client
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        drop(rt);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), sent, "bytes lost ({workers} workers)");
        assert!(got[..] == all[..sent], "bytes reordered or corrupted");
    }
}

#[test]
fn flush_returns_once_the_bytes_are_sent() {
    each(|rt| {
        rt.block_on(async {
            let (client, mut server) = std_pair().await;
            let mut client = client;
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            for round in 0..50u8 {
                server.write_all(&[round; 1000]).await.unwrap();
                server.flush().await.unwrap();
                // Sent: readable by a blocking reader without further help
                // from the runtime (this thread does not poll it meanwhile).
                let mut buf = [0u8; 1000];
                client.read_exact(&mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == round));
            }
        });
    });
}

#[test]
fn echo_of_many_small_writes_keeps_order_across_tasks() {
    each(|rt| {
        rt.block_on(async {
            let (client, server) = pair().await;
            let (mut rd, mut wr) = server.into_split();
            let echo = kevent::spawn(async move {
                let mut buf = vec![0; 1500];
                loop {
                    let n = rd.read(&mut buf).await.unwrap();
                    if n == 0 {
                        wr.close().await.unwrap();
                        return;
                    }
                    wr.write_all(&buf[..n]).await.unwrap();
                }
            });
            let sent = pattern(1 << 20);
            let writer = {
                let sent = sent.clone();
                let (mut crd, mut cwr) = client.into_split();
                let write = async {
                    for chunk in sent.chunks(777) {
                        cwr.write_all(chunk).await.unwrap();
                    }
                    cwr.close().await.unwrap();
                };
                let read = async {
                    let mut got = Vec::new();
                    crd.read_to_end(&mut got).await.unwrap();
                    got
                };
                net_support::join(write, read).await.1
            };
            assert_eq!(writer.len(), sent.len());
            assert!(writer == sent, "echo reordered or corrupted");
            echo.await.unwrap();
        });
    });
}

#[test]
fn a_raw_write_that_would_overtake_queued_bytes_fails_clearly() {
    let rt = runtime(2, true);
    let uring = rt.handle().metrics().backend == "io_uring";
    rt.block_on(async {
        let (client, mut server) = std_pair().await;
        // The peer does not read yet: fill the socket and the outbox.
        let all = pattern(64 << 20);
        let sent = fill(&server, &all).await;
        let raw = server.try_io(Interest::WRITABLE, || Ok(()));
        if uring {
            let err = raw.expect_err("a raw write while bytes are queued");
            assert!(err.to_string().contains("flush"), "{err}");
        }
        let reader = read_all_slowly(client);
        server.flush().await.unwrap();
        // Flushed: raw writes are allowed again (they may still find the
        // socket full: WouldBlock is a socket's answer, not ours).
        match server.try_io(Interest::WRITABLE, || Ok(())) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("a raw write after flush: {e}"),
        }
        drop(server);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), sent);
        assert!(got[..] == all[..sent]);
    });
}

/// A server stream whose peer has reset the connection: the client
/// closed with data unread, so its kernel sent a RST.
async fn reset_by_its_peer() -> TcpStream {
    let (mut client, server) = std_pair().await;
    client.write_all(b"unread").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(client);
    std::thread::sleep(Duration::from_millis(20));
    server
}

/// The error of the first of up to 1 000 `attempt`s that fails (writes
/// to a reset peer, which must not keep succeeding).
async fn first_failure(mut attempt: impl AsyncFnMut() -> io::Result<()>) -> io::Error {
    for _ in 0..1000 {
        if let Err(e) = attempt().await {
            return e;
        }
    }
    panic!("writes to a reset peer kept succeeding");
}

/// `e` is what a write to a reset peer fails with.
fn assert_reset(e: &io::Error) {
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{e:?}"
    );
}

#[test]
fn a_write_to_a_reset_peer_fails_and_keeps_failing() {
    each(|rt| {
        rt.block_on(async {
            let mut server = reset_by_its_peer().await;
            let e = first_failure(async || {
                server.write_all(&[1; 4096]).await?;
                server.flush().await
            })
            .await;
            assert_reset(&e);
            // And the next write fails too.
            assert!(server.write_all(b"again").await.is_err());
        });
    });
}

#[test]
fn the_builder_and_env_choose_the_send_path() {
    // Forced off: the readiness path (no outbox), still correct.
    let rt = runtime(1, false);
    rt.block_on(async {
        let (mut client, mut server) = pair().await;
        server.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    });
    let bad = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "bad_env_child", "--nocapture"])
        .env("KEVENT_SEND", "sometimes")
        .env("NET_RING_SEND_CHILD", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&bad.stderr).to_string() + &String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("KEVENT_SEND must be ring or readiness"),
        "{text}"
    );
}

/// Runs only as the child of `the_builder_and_env_choose_the_send_path`.
#[test]
fn bad_env_child() {
    if std::env::var_os("NET_RING_SEND_CHILD").is_none() {
        return;
    }
    let err = Builder::new_multi_thread().build().unwrap_err();
    println!("{err}");
}

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Sending through the ring costs no descriptor of its own: a server at
/// its descriptor limit must not hit `EMFILE` at half its connections.
#[test]
fn sending_through_the_ring_uses_no_extra_descriptor() {
    let rt = runtime(2, true);
    rt.block_on(async {
        let before = open_fds();
        let mut pairs = Vec::new();
        for _ in 0..100 {
            let (mut client, mut server) = pair().await;
            server.write_all(b"ping").await.unwrap();
            server.flush().await.unwrap();
            let mut buf = [0; 4];
            client.read_exact(&mut buf).await.unwrap();
            pairs.push((client, server));
        }
        let used = open_fds() - before;
        // Two per pair (and a listener per pair, closed by now).
        assert!(used <= 2 * 100 + 10, "{used} descriptors for 100 pairs");
        drop(pairs);
    });
}

/// Two tasks wait on one stream at once, one in `flush`, one in
/// `writable()` after a write found it full: both are woken as the peer
/// reads (neither waiter displaces the other).
#[test]
fn a_flusher_and_a_writable_waiter_on_one_stream_are_both_woken() {
    let rt = runtime(2, true);
    rt.block_on(async {
        let (client, server) = std_pair().await;
        let server = std::sync::Arc::new(server);
        let all = pattern(64 << 20);
        let sent = fill(&server, &all).await;
        let s = server.clone();
        let flusher = kevent::spawn(async move {
            let mut w = &*s;
            w.flush().await
        });
        let s = server.clone();
        let waiter = kevent::spawn(async move { s.writable().await });
        kevent::time::sleep(Duration::from_millis(20)).await;
        let reader = read_all_slowly(client);
        let limit = Duration::from_secs(10);
        kevent::time::timeout(limit, flusher)
            .await
            .expect("the flusher was never woken")
            .unwrap()
            .unwrap();
        kevent::time::timeout(limit, waiter)
            .await
            .expect("the writable() waiter was never woken")
            .unwrap()
            .unwrap();
        drop(server);
        let got = reader.join().unwrap();
        assert_eq!(got.len(), sent);
    });
}

/// Segments the kernel sent on `fd`'s connection so far (`TCP_INFO`).
fn segments_out(fd: std::os::fd::RawFd) -> u32 {
    // SAFETY: `tcp_info` is plain old data; zeroed is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are valid for writes of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
    info.tcpi_segs_out
}

#[test]
fn a_vectored_write_leaves_as_one_segment() {
    use std::os::fd::AsRawFd;
    each(|rt| {
        rt.block_on(async {
            let (mut client, mut server) = std_pair().await;
            server.set_nodelay(true).unwrap();
            let fd = server.as_raw_fd();
            // Let the handshake's segments settle before counting.
            kevent::time::sleep(Duration::from_millis(20)).await;
            let before = segments_out(fd);
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n";
            let body = b"Hello, World!";
            let bufs = [io::IoSlice::new(head), io::IoSlice::new(body)];
            let n = futures::future::poll_fn(|cx| {
                futures::io::AsyncWrite::poll_write_vectored(
                    std::pin::Pin::new(&mut server),
                    cx,
                    &bufs,
                )
            })
            .await
            .unwrap();
            assert_eq!(n, head.len() + body.len(), "one write takes both slices");
            server.flush().await.unwrap();
            let sent = segments_out(fd) - before;
            let mut got = vec![0u8; n];
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got[..head.len()], head);
            assert_eq!(&got[head.len()..], body);
            assert_eq!(sent, 1, "headers and body left in {sent} segments");
        });
    });
}

/// hyper's flush (`hyper::rt::Write::poll_flush`) through kevent's
/// `TcpStream`, polled once.
fn hyper_flush(server: &mut TcpStream) -> std::task::Poll<io::Result<()>> {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    hyper::rt::Write::poll_flush(std::pin::Pin::new(server), &mut cx)
}

/// [`each`], for a test that returns whether its run reached the case it
/// is about (`what`), which only the ring's send path can reach: on
/// io_uring, some run must have, or the test proved nothing.
fn each_reaching(what: &str, test: impl Fn(&Runtime) -> bool) {
    let uring = std::cell::Cell::new(false);
    let reached = std::cell::Cell::new(false);
    each(|rt| {
        uring.set(uring.get() | (rt.handle().metrics().backend == "io_uring"));
        reached.set(reached.get() | test(rt));
    });
    assert!(!uring.get() || reached.get(), "no run on io_uring {what}");
}

#[test]
fn hypers_flush_does_not_wait_for_the_ring_and_nothing_is_lost() {
    each_reaching("queued bytes in an outbox", |rt| {
        rt.block_on(async {
            let (client, mut server) = std_pair().await;
            // The peer does not read yet: the socket's buffer and the
            // outbox (where the stream has one) fill.
            let all = pattern(16 << 20);
            let sent = fill(&server, &all).await;
            let queued = server.try_io(Interest::WRITABLE, || Ok(())).is_err();
            // Ready at once, bytes queued or not: no second wakeup of the
            // connection's task per response.
            match hyper_flush(&mut server) {
                std::task::Poll::Ready(Ok(())) => {}
                other => panic!("hyper's flush: {other:?}"),
            }
            // ...and the bytes still all arrive, in order, after a drop.
            let reader = read_all_slowly(client);
            drop(server);
            let got = reader.join().unwrap();
            assert_eq!(got.len(), sent, "bytes lost");
            assert!(got[..] == all[..sent], "bytes reordered or corrupted");
            queued
        })
    });
}

#[test]
fn hypers_flush_reports_a_send_that_failed() {
    each_reaching("failed a send in the ring", |rt| {
        rt.block_on(async {
            let mut server = reset_by_its_peer().await;
            let e = first_failure(async || {
                server.write_all(&[1; 4096]).await?;
                kevent::time::sleep(Duration::from_millis(1)).await;
                match hyper_flush(&mut server) {
                    std::task::Poll::Ready(res) => res,
                    std::task::Poll::Pending => panic!("hyper's flush waited"),
                }
            })
            .await;
            assert_reset(&e);
            // Where the failed send was the ring's, hyper's flush itself
            // reports it (every time); on `send(2)` the write did, and a
            // socket's flush has nothing to report.
            let through_ring = server.try_io(Interest::WRITABLE, || Ok(())).is_err();
            match hyper_flush(&mut server) {
                std::task::Poll::Ready(Err(e)) if through_ring => assert_reset(&e),
                std::task::Poll::Ready(Ok(())) if !through_ring => {}
                other => {
                    panic!("hyper's flush after the failure: {other:?} (ring: {through_ring})")
                }
            }
            through_ring
        })
    });
}

/// A task that writes and then blocks its worker's thread (a long
/// computation, a blocking call) has its bytes sent anyway: the worker
/// would submit them at its next harvest, after the task returns, so an
/// idle worker (woken by the runtime's stall check) submits them for it.
/// With a home worker (the default at 2 workers) a task on the other
/// worker hands its sends to the home instead; CI also runs this file with
/// `KEVENT_HOME_WORKER=0`, where every worker sends on its own ring.
#[test]
fn bytes_written_before_a_task_blocks_its_worker_leave_while_it_blocks() {
    const BLOCK: Duration = Duration::from_secs(2);
    let rt = runtime(2, true);
    let (client, server) = rt.block_on(std_pair());
    let blocked_until = std::sync::Arc::new(std::sync::Mutex::new(None));
    let until = blocked_until.clone();
    let task = rt.spawn(async move {
        let mut server = server;
        server.write_all(b"sent before the block").await.unwrap();
        std::thread::sleep(BLOCK);
        *until.lock().unwrap() = Some(std::time::Instant::now());
        server
    });
    let mut client = client;
    client.set_read_timeout(Some(BLOCK * 5)).unwrap();
    let mut got = [0u8; 21];
    client.read_exact(&mut got).unwrap();
    let arrived = std::time::Instant::now();
    assert_eq!(&got, b"sent before the block");
    assert!(
        blocked_until.lock().unwrap().is_none(),
        "the bytes waited until the writer's worker was free again"
    );
    drop(rt.block_on(task).unwrap());
    let unblocked = blocked_until
        .lock()
        .unwrap()
        .expect("the task ran to its end");
    assert!(arrived < unblocked);
}
