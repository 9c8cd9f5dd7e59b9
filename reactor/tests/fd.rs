//! The ring fed by mio: file descriptors, the harvester role, signals.
#![cfg(not(loom))]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use kevent_reactor::{Backend, Config, Consumer, Event, Flags, Interest, Kevent, Ready, Token};

/// A ring on the OS backend CI selects (`KEVENT_BACKEND=mio|uring`;
/// default `Auto`), so these tests run once per backend.
fn mio_ring(capacity: usize) -> Kevent {
    let backend = match std::env::var("KEVENT_BACKEND").as_deref() {
        Ok("mio") => Backend::Mio,
        Ok("uring") => Backend::Uring,
        _ => Backend::Auto,
    };
    Kevent::new(Config::default().capacity(capacity).backend(backend)).unwrap()
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

fn next_events(c: &mut Consumer, timeout: Duration) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = c.front();
        let events = c.claim(64).to_vec();
        if !events.is_empty() || Instant::now() >= deadline {
            return events;
        }
        c.wait(seen, 1, deadline).unwrap();
    }
}

#[test]
fn a_readable_socket_is_delivered_through_the_harvester() {
    let kq = mio_ring(64);
    eprintln!("backend: {}", kq.backend_name());
    let (a, mut b) = pair();
    let key = kq.register(&a, Token(3), Interest::READABLE).unwrap();
    let mut c = kq.consumer().unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        b.write_all(b"ping").unwrap();
        b
    });
    let events = next_events(&mut c, Duration::from_secs(5));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].token, Token(3));
    assert!(events[0].ready.is_readable());
    c.commit(1);
    let _b = writer.join().unwrap();
    kq.deregister(key).unwrap();
}

#[test]
fn writable_interest_and_hangup_are_reported() {
    let kq = mio_ring(64);
    let (a, b) = pair();
    kq.register(&a, Token(1), Interest::BOTH).unwrap();
    let mut c = kq.consumer().unwrap();
    let ev = next_events(&mut c, Duration::from_secs(5));
    assert!(ev[0].ready.is_writable(), "{:?}", ev[0].ready);
    c.commit(ev.len());
    drop(b);
    let ev = next_events(&mut c, Duration::from_secs(5));
    assert!(
        ev[0].ready.contains(Ready::READ_CLOSED),
        "{:?}",
        ev[0].ready
    );
}

#[test]
fn readiness_arriving_during_dispatch_is_delivered_after_commit() {
    let kq = mio_ring(64);
    let (mut a, mut b) = pair();
    kq.register(&a, Token(1), Interest::READABLE).unwrap();
    let mut c = kq.consumer().unwrap();
    b.write_all(b"1").unwrap();
    let ev = next_events(&mut c, Duration::from_secs(5));
    assert_eq!(ev.len(), 1);
    // Drain, then more data arrives while we still hold the entry: a new
    // edge, which must wait for our commit and then come back.
    let mut buf = [0u8; 16];
    assert_eq!(a.read(&mut buf).unwrap(), 1);
    b.write_all(b"2").unwrap();
    let mut other = kq.consumer().unwrap();
    let _ = other.harvest().unwrap();
    assert!(other.claim(8).is_empty(), "dispatched to c, not to other");
    c.commit(1);
    let ev = next_events(&mut other, Duration::from_secs(5));
    assert_eq!(ev.len(), 1);
    assert!(ev[0].ready.is_readable());
}

#[test]
fn a_ring_of_8_delivers_1000_ready_sockets() {
    let kq = mio_ring(8);
    let mut pairs = Vec::new();
    for i in 0..1000 {
        let (a, mut b) = pair();
        kq.register(&a, Token(i), Interest::READABLE).unwrap();
        b.write_all(b"x").unwrap();
        pairs.push((a, b));
    }
    let mut c = kq.consumer().unwrap();
    let mut seen = vec![0u32; 1000];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.contains(&0) && Instant::now() < deadline {
        let front = c.front();
        let events = c.claim(8).to_vec();
        if events.is_empty() {
            c.wait(front, 1, Duration::from_millis(50)).unwrap();
            continue;
        }
        for e in &events {
            seen[e.token.0] += 1;
        }
        c.commit(events.len());
    }
    assert!(seen.iter().all(|&s| s == 1), "every socket exactly once");
    assert!(kq.stats().overflowed > 0, "the ring really overflowed");
}

#[test]
fn a_blocked_consumer_does_not_hold_up_the_others() {
    let kq = mio_ring(64);
    let (a, mut b) = pair();
    kq.register(&a, Token(1), Interest::READABLE).unwrap();
    // This consumer harvests once, then "blocks" for a long time without
    // waiting: it must not keep the harvester role.
    let mut blocked = kq.consumer().unwrap();
    blocked.harvest().unwrap();
    let mut c = kq.consumer().unwrap();
    b.write_all(b"x").unwrap();
    let start = Instant::now();
    let ev = next_events(&mut c, Duration::from_secs(5));
    assert_eq!(ev.len(), 1);
    assert!(start.elapsed() < Duration::from_secs(1));
    drop(blocked);
}

#[test]
fn a_signal_arrives_as_an_event() {
    let kq = mio_ring(64);
    kq.add_signal(Token(77), libc::SIGUSR2).unwrap();
    let mut c = kq.consumer().unwrap();
    let t = thread::spawn(|| {
        thread::sleep(Duration::from_millis(30));
        // SAFETY: raising a signal for which a handler is installed.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
    });
    let ev = next_events(&mut c, Duration::from_secs(5));
    t.join().unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].token, Token(77));
    assert!(ev[0].ready.contains(Ready::SIGNAL));
    assert_eq!(ev[0].payload, 1 << libc::SIGUSR2);
}

#[cfg(target_os = "linux")]
#[test]
fn wait_installs_the_signal_mask_for_its_duration() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static HANDLED: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_winch(_: libc::c_int) {
        HANDLED.store(true, Ordering::SeqCst);
    }
    let kq = mio_ring(8);
    let mut c = kq.consumer().unwrap();
    // SAFETY: plain libc signal-set manipulation on stack values; the
    // handler only stores to an atomic.
    let (wait_mask, old) = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_winch as *const () as libc::sighandler_t;
        libc::sigaction(libc::SIGWINCH, &action, std::ptr::null_mut());
        // Block SIGWINCH in this thread...
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGWINCH);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        // ...and let the wait unblock it for its duration only.
        let mut wait_mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wait_mask);
        libc::tgkill(libc::getpid(), libc::gettid(), libc::SIGWINCH);
        (wait_mask, old)
    };
    assert!(!HANDLED.load(Ordering::SeqCst), "blocked outside the wait");
    c.set_sigmask(Some(wait_mask));
    let seen = c.front();
    c.wait(seen, 1, Duration::from_millis(200)).unwrap();
    assert!(HANDLED.load(Ordering::SeqCst), "delivered during the wait");
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
}

/// A socket deregistered while readiness for it keeps firing is really
/// closed when its fd is: the peer sees end-of-file. On io_uring the
/// multishot poll holds the file; a removal that loses the race with a
/// wakeup in flight used to leave the poll armed and the socket open.
#[test]
fn a_socket_deregistered_while_readiness_fires_is_closed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let kq = Arc::new(mio_ring(1024));
    let stop = Arc::new(AtomicBool::new(false));
    // One consumer keeps harvesting (on io_uring it owns the polls it
    // submits, so their wakeups run as task work on this thread).
    let harvester = {
        let (kq, stop) = (kq.clone(), stop.clone());
        thread::spawn(move || {
            let mut c = kq.consumer().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let seen = c.front();
                let n = c.claim(1024).len();
                if n == 0 {
                    c.wait(seen, 1, Duration::from_millis(5)).unwrap();
                } else {
                    c.commit(n);
                }
            }
        })
    };
    let mut unclosed = Vec::new();
    for round in 0..400 {
        let (a, b) = pair();
        let key = kq.register(&a, Token(round), Interest::READABLE).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let done = done.clone();
            thread::spawn(move || {
                let mut b = b;
                while !done.load(Ordering::Relaxed) {
                    if b.write(b"x").is_err() {
                        thread::yield_now();
                    }
                }
                b
            })
        };
        thread::sleep(Duration::from_micros(200 + 37 * (round as u64 % 20)));
        kq.deregister(key).unwrap();
        drop(a);
        done.store(true, Ordering::Relaxed);
        let mut b = writer.join().unwrap();
        b.set_nonblocking(false).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        // Closed with our bytes unread, the peer reads a reset; closed
        // cleanly, end-of-file. Still open: the read times out. `EINTR` is
        // retried: this thread wakes the ring (MSG_RING), whose request the
        // kernel may complete later as task work on this thread, which
        // interrupts a read that has a timeout (see the README's io_uring
        // limits).
        let read = loop {
            match b.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(_) => unreachable!("nobody writes to b"),
            Err(e) => unclosed.push((round, e.kind())),
        }
        if unclosed.len() == 5 {
            break; // each costs a 2 s read timeout; five make the point
        }
    }
    stop.store(true, Ordering::Relaxed);
    harvester.join().unwrap();
    assert!(
        unclosed.is_empty(),
        "deregistered sockets never closed (round, read error): {unclosed:?}"
    );
}

/// Readiness for driving a [`kevent_reactor::StreamIo`] by hand: always
/// ready, except that the first poll after a clear reports `Pending` (so a
/// read that would block returns instead of spinning).
#[derive(Default)]
struct Retry {
    /// A clear happened since the last poll.
    cleared: std::cell::Cell<bool>,
}

impl kevent_reactor::Readiness for Retry {
    type Event = ();

    fn poll_ready(
        &self,
        _cx: &mut std::task::Context<'_>,
        _dir: kevent_reactor::Direction,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.cleared.replace(false) {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn current(&self, _dir: kevent_reactor::Direction) -> Option<()> {
        Some(())
    }

    fn clear(&self, _ev: ()) {
        self.cleared.set(true);
    }

    fn clear_with_closed(&self, _ev: ()) {
        self.cleared.set(true);
    }

    fn ready(_ev: ()) -> Ready {
        Ready::READABLE | Ready::WRITABLE
    }
}

/// A stream receiving through the ring (io_uring) gets every byte in order,
/// 8 MiB through a 256 KiB inbox that pauses and resumes the receive,
/// then end-of-stream. (On mio the stream reads its socket: the runtime's
/// tests cover that path.)
#[test]
fn a_stream_receives_through_the_ring_in_order_then_eof() {
    use std::mem::MaybeUninit;
    use std::task::{Context, Waker};

    let kq = mio_ring(64);
    let (a, b) = pair();
    let (key, io) = kq.register_stream(&a, Token(9), Interest::BOTH).unwrap();
    if kq.backend_name() != "io_uring" {
        return;
    }
    let r = Retry::default();
    let mut buf = vec![MaybeUninit::uninit(); 3000];
    // The first read arms the receive; nothing has arrived yet.
    let mut cx = Context::from_waker(Waker::noop());
    assert!(io.poll_read(&mut cx, &r, &mut buf, false).is_pending());
    const TOTAL: usize = 8 << 20;
    let writer = thread::spawn(move || {
        let mut b = b;
        b.set_nonblocking(false).unwrap();
        let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
        for chunk in data.chunks(10_000) {
            b.write_all(chunk).unwrap();
        }
        // b drops: end of stream.
    });
    let mut c = kq.consumer().unwrap();
    let mut got = Vec::with_capacity(TOTAL);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Read slowly at first so the inbox fills past its mark.
    // (The harvester is this thread's consumer: let it harvest meanwhile.)
    let until = Instant::now() + Duration::from_millis(150);
    while Instant::now() < until {
        let ev = next_events(&mut c, Duration::from_millis(20));
        c.commit(ev.len());
    }
    // Not all 8 MiB: receiving paused past the inbox's mark (256 KiB, plus
    // what was in flight: at most the 2 MiB buffer pool) and the rest waits
    // in the kernel. Nothing harvests while this thread reads, so what it
    // reads before `WouldBlock` is what the inbox held.
    let mut read = |got: &mut Vec<u8>| loop {
        match io.try_read(&r, &mut buf) {
            Ok(0) => return true,
            // SAFETY: the read initialised the first n bytes.
            Ok(n) => got.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() })),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) => panic!("recv: {e}"),
        }
    };
    let mut eof = read(&mut got);
    let held = got.len();
    eprintln!("inbox held {held} bytes unread");
    assert!(held < 3 << 20, "the inbox did not pause: {held} bytes");
    while !eof {
        assert!(
            Instant::now() < deadline,
            "stalled after {} bytes",
            got.len()
        );
        let ev = next_events(&mut c, Duration::from_millis(200));
        c.commit(ev.len());
        eof = read(&mut got);
    }
    writer.join().unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "bytes out of order"
    );
    drop(io);
    kq.deregister(key).unwrap();
}

/// A stream that may receive through the ring (io_uring) is watched from
/// its first use: bytes that arrive before it is read or armed raise no
/// event, `arm` reports them (the poll it submits finds them there), and
/// deregistering a stream never armed has nothing to cancel. On mio the
/// stream is watched at once.
#[test]
fn a_stream_receiving_through_the_ring_is_watched_from_its_first_use() {
    let kq = mio_ring(64);
    let (a, mut b) = pair();
    let (key, _io) = kq
        .register_stream(&a, Token(11), Interest::READABLE)
        .unwrap();
    let mut c = kq.consumer().unwrap();
    b.write_all(b"ping").unwrap();
    let early = next_events(&mut c, Duration::from_millis(300));
    if kq.backend_name() != "io_uring" {
        assert_eq!(early.len(), 1, "mio watches a stream at once: {early:?}");
        assert!(early[0].ready.is_readable());
        c.commit(1);
        kq.arm(key).unwrap();
        kq.deregister(key).unwrap();
        return;
    }
    assert!(early.is_empty(), "an unarmed stream raised {early:?}");
    kq.arm(key).unwrap();
    // A second arm submits nothing more.
    kq.arm(key).unwrap();
    let events = next_events(&mut c, Duration::from_secs(5));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].token, Token(11));
    assert!(events[0].ready.is_readable());
    c.commit(1);
    kq.deregister(key).unwrap();

    // Registered, never used, deregistered: the socket closes at once (no
    // poll holds it), so the peer sees the end of the stream.
    let (a2, mut b2) = pair();
    let (key2, io2) = kq.register_stream(&a2, Token(12), Interest::BOTH).unwrap();
    drop(io2);
    kq.deregister(key2).unwrap();
    drop(a2);
    b2.set_nonblocking(false).unwrap();
    b2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        b2.read(&mut buf).unwrap(),
        0,
        "the peer did not see the close"
    );
}

/// A waker that records that it was woken.
#[derive(Default)]
struct Flag(std::sync::atomic::AtomicBool);

impl std::task::Wake for Flag {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A send through the ring that cannot finish inline (the peer reads late)
/// completes on its worker's own send ring while that worker is parked and
/// another consumer sleeps in the shared ring, with nothing else to wake
/// anyone (the socket is watched for reading only, and nothing arrives).
/// The shared ring watches the send ring, so the sleeper hears of the
/// completion, reads it, and the flush waiter is woken.
#[test]
fn a_send_finishing_late_reaches_its_parked_writer_through_the_harvester() {
    use std::task::{Context, Waker};

    let kq = mio_ring(64);
    let (a, b) = pair();
    let (key, io) = kq
        .register_stream(&a, Token(5), Interest::READABLE)
        .unwrap();
    if kq.backend_name() != "io_uring" {
        return;
    }
    // Another consumer takes the harvester role and sleeps in the backend.
    let stop = kq.add_user(Token(99), Flags::NONE).unwrap();
    let harvester = {
        let kq = kq.clone();
        thread::spawn(move || {
            let mut h = kq.consumer().unwrap();
            loop {
                let seen = h.front();
                let events = h.claim(64).to_vec();
                h.commit(events.len());
                if events.iter().any(|e| e.token == Token(99)) {
                    return;
                }
                h.wait(seen, 1, Instant::now() + Duration::from_secs(30))
                    .unwrap();
            }
        })
    };
    thread::sleep(Duration::from_millis(50));
    let mut c = kq.consumer().unwrap();
    // Claiming makes this thread a consumer: its sends go through its own
    // send ring.
    assert!(c.claim(1).is_empty());
    let data: Vec<u8> = (0..kevent_reactor::OUTBOX_LIMIT)
        .map(|i| (i % 251) as u8)
        .collect();
    // Queued whole in the stream's outbox, and the send started.
    assert_eq!(io.try_write(&Retry::default(), &data).unwrap(), data.len());
    // As a runtime's worker does before it goes idle: submit what this
    // thread queued.
    c.harvest().unwrap();
    let len = data.len();
    let reader = thread::spawn(move || {
        // Past the socket's buffer, the send waits for this reader.
        thread::sleep(Duration::from_millis(200));
        let mut b = b;
        b.set_nonblocking(false).unwrap();
        let mut got = vec![0u8; len];
        b.read_exact(&mut got).unwrap();
        got
    });
    let flag = std::sync::Arc::new(Flag::default());
    let waker = Waker::from(flag.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waits = 0;
    while io.poll_flush(&mut Context::from_waker(&waker)).is_pending() {
        assert!(
            Instant::now() < deadline,
            "the send's completion never reached anyone"
        );
        // Parked (the other consumer holds the harvester role), with a
        // timeout: this thread never harvests its own send ring here.
        let seen = c.front();
        let n = c.claim(64).len();
        c.commit(n);
        waits += 1;
        c.wait(seen, 1, Instant::now() + Duration::from_millis(20))
            .unwrap();
    }
    assert!(
        waits > 1,
        "the send finished at once: the test tests nothing"
    );
    assert!(
        flag.0.load(std::sync::atomic::Ordering::SeqCst),
        "the flush waiter was not woken"
    );
    assert_eq!(reader.join().unwrap(), data);
    kq.post(stop, 1).unwrap();
    harvester.join().unwrap();
    kq.deregister(key).unwrap();
}

/// A busy consumer (one that harvests between tasks) and a sleeping one;
/// `k` sockets become readable, hinted to the sleeper, and the busy one
/// harvests. Returns the events the busy one claimed and the sleeper's
/// wakeups.
fn busy_harvest_of(k: usize) -> (usize, u64) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let kq = mio_ring(256);
    let mut busy = kq.consumer_for(0).unwrap();
    busy.set_harvests_while_busy(true);
    let pairs: Vec<_> = (0..k).map(|_| pair()).collect();
    let keys: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, _))| {
            let key = kq.register(a, Token(i), Interest::READABLE).unwrap();
            kq.set_hint(key, 1);
            key
        })
        .collect();
    // The busy consumer submits the polls, so the kernel runs their
    // completion work on it. Were the sleeper to submit them (its first
    // sleep would), on io_uring with `KEVENT_CQ_SLEEP=1` it would be woken
    // for that work and read the events itself, whatever the wake policy
    // says.
    busy.harvest().unwrap();
    let by_sleeper = Arc::new(AtomicUsize::new(0));
    let kq2 = kq.clone();
    let counted = by_sleeper.clone();
    let sleeper = thread::spawn(move || {
        let mut c = kq2.consumer_for(1).unwrap();
        c.set_harvests_while_busy(true);
        let seen = c.front();
        let _ = c.wait(seen, 1, Duration::from_millis(700));
        // Whatever woke it is claimed, so the busy side counts only its own.
        let n = c.claim(256).len();
        c.commit(n);
        counted.store(n, Ordering::SeqCst);
    });
    thread::sleep(Duration::from_millis(150));
    for (_, b) in &pairs {
        (&*b).write_all(b"x").unwrap();
    }
    // Every readiness is with the backend before the one harvest that
    // counts (io_uring posts completions as task work, a little later).
    thread::sleep(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut claimed = 0;
    while claimed + by_sleeper.load(Ordering::SeqCst) < k && Instant::now() < deadline {
        busy.harvest().unwrap();
        let n = busy.claim(256).len();
        busy.commit(n);
        claimed += n;
        if n == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let woken = kq.consumer_wakeups(1);
    drop(busy);
    sleeper.join().unwrap();
    assert_eq!(
        claimed + by_sleeper.load(Ordering::SeqCst),
        k,
        "every readiness is delivered once"
    );
    for key in keys {
        kq.deregister(key).unwrap();
    }
    (claimed, woken)
}

#[test]
fn a_busy_consumers_harvest_of_a_batch_it_claims_wakes_no_sleeper() {
    // Eight ready sockets hinted to the sleeper: the busy consumer takes
    // them all and the sleeper sleeps on (the hint is only a hint).
    let (claimed, woken) = busy_harvest_of(8);
    assert_eq!(
        woken, 0,
        "the sleeper was woken for entries the busy consumer claimed"
    );
    assert_eq!(claimed, 8);
}

#[test]
fn a_busy_consumers_harvest_beyond_its_claim_batch_wakes_one_sleeper() {
    let k = kevent_reactor::BUSY_CLAIM + 40;
    let (_, woken) = busy_harvest_of(k);
    assert_eq!(woken, 1, "a batch larger than one claim wakes one sleeper");
}

#[test]
fn a_parked_consumer_reads_what_its_own_requests_complete_while_the_harvester_sleeps_on() {
    // io_uring runs a request's completion work on the thread that
    // submitted it. That thread, parked, comes back for the completion and
    // reads it itself; the consumer asleep in the backend is not woken
    // (with `KEVENT_CQ_SLEEP=1`; without it each is woken once for such an
    // event: the parked one for nothing, the harvester to read it).
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let kq = mio_ring(64);
    if kq.backend_name() != "io_uring"
        || std::env::var_os("KEVENT_CQ_SLEEP").is_none_or(|v| v != "1")
    {
        return;
    }
    let stop = kq.add_user(Token(99), Flags::NONE).unwrap();
    // Attached before the harvester sleeps: an only consumer sleeps in
    // `io_uring_enter` instead, where any completion wakes it.
    let mut c = kq.consumer().unwrap();
    let returns = Arc::new(AtomicUsize::new(0));
    let harvester = {
        let (kq, returns) = (kq.clone(), returns.clone());
        thread::spawn(move || {
            let mut h = kq.consumer().unwrap();
            loop {
                let seen = h.front();
                let events = h.claim(64).to_vec();
                h.commit(events.len());
                if events.iter().any(|e| e.token == Token(99)) {
                    return events.len();
                }
                h.wait(seen, 1, Instant::now() + Duration::from_secs(30))
                    .unwrap();
                returns.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    thread::sleep(Duration::from_millis(50));
    // This thread becomes a consumer and submits the socket's poll itself.
    assert!(c.claim(1).is_empty());
    let (a, b) = pair();
    let key = kq.register(&a, Token(7), Interest::READABLE).unwrap();
    c.harvest().unwrap();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        (&b).write_all(b"x").unwrap();
        b
    });
    let started = Instant::now();
    let seen = c.front();
    c.wait(seen, 1, started + Duration::from_secs(5)).unwrap();
    let waited = started.elapsed();
    let events = c.claim(8).to_vec();
    c.commit(events.len());
    assert!(
        events.iter().any(|e| e.token == Token(7)),
        "the parked owner did not get its socket's event: {events:?}"
    );
    assert!(waited < Duration::from_secs(2), "woken after {waited:?}");
    assert_eq!(
        returns.load(Ordering::SeqCst),
        0,
        "the harvester was woken for an event its owner read"
    );
    kq.post(stop, 1).unwrap();
    assert_eq!(harvester.join().unwrap(), 1);
    drop(writer.join().unwrap());
    kq.deregister(key).unwrap();
}
