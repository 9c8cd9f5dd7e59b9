//! The paused test clock: `time::pause`, `advance`, `resume`,
//! `Builder::start_paused` and `#[kevent::test(start_paused = true)]`.
//! While paused, the clock moves only by `advance` or when every task waits
//! and nothing is ready on the ring: then it jumps to the next timer.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::runtime::Builder;
use kevent::time::{self, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// Real time, to check that paused sleeps cost none.
fn real_now() -> std::time::Instant {
    std::time::Instant::now()
}

#[kevent::test(start_paused = true)]
async fn an_hour_of_sleep_ends_at_once_on_a_paused_clock() {
    let real = real_now();
    let start = Instant::now();
    time::sleep(HOUR).await;
    assert!(
        start.elapsed() >= HOUR,
        "paused clock read {:?}",
        start.elapsed()
    );
    assert!(
        real.elapsed() < Duration::from_secs(5),
        "took {:?}",
        real.elapsed()
    );
}

#[kevent::test(start_paused = true)]
async fn the_paused_clock_moves_only_by_advance() {
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(Instant::now(), start, "the paused clock moved by itself");
    time::advance(Duration::from_secs(5)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
}

#[kevent::test]
async fn advance_fires_the_timers_due_and_no_later_one() {
    time::pause();
    let early = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicBool::new(false));
    let (e, l) = (early.clone(), late.clone());
    let s_early = time::sleep(Duration::from_millis(10));
    let s_late = time::sleep(Duration::from_millis(100));
    kevent::spawn(async move {
        s_early.await;
        e.store(true, Ordering::SeqCst);
    });
    kevent::spawn(async move {
        s_late.await;
        l.store(true, Ordering::SeqCst);
    });
    // Let both tasks wait on their timers first.
    kevent::task::yield_now().await;
    time::advance(Duration::from_millis(50)).await;
    assert!(
        early.load(Ordering::SeqCst),
        "a timer due 40 ms ago did not fire"
    );
    assert!(
        !late.load(Ordering::SeqCst),
        "a timer due in 50 ms fired early"
    );
    time::advance(Duration::from_millis(50)).await;
    assert!(late.load(Ordering::SeqCst), "a timer due now did not fire");
}

#[kevent::test(start_paused = true)]
async fn timers_fire_in_deadline_order_when_the_clock_jumps() {
    let order = Arc::new(parking_lot_free::Order::default());
    let mut handles = Vec::new();
    for secs in [30u64, 10, 20, 40] {
        let order = order.clone();
        handles.push(kevent::spawn(async move {
            time::sleep(Duration::from_secs(secs)).await;
            order.push(secs);
            Instant::now()
        }));
    }
    let start = Instant::now();
    let mut ends = Vec::new();
    for h in handles {
        ends.push(h.await.unwrap() - start);
    }
    assert_eq!(order.take(), vec![10, 20, 30, 40]);
    // Each task woke exactly at its deadline on the paused clock.
    let secs: Vec<u64> = ends.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![30, 10, 20, 40]);
}

#[kevent::test(start_paused = true)]
async fn timeout_on_a_paused_clock_picks_the_earlier_deadline() {
    let real = real_now();
    let r = time::timeout(HOUR, std::future::pending::<()>()).await;
    assert!(r.is_err(), "a pending future beat its timeout");
    let r = time::timeout(HOUR, time::sleep(Duration::from_secs(10))).await;
    assert!(r.is_ok(), "a 10 s sleep lost to a 1 h timeout");
    assert!(real.elapsed() < Duration::from_secs(5));
}

#[kevent::test(start_paused = true)]
async fn a_dropped_sleep_does_not_move_the_paused_clock() {
    let start = Instant::now();
    // The timeout's sleep is dropped unfired when the future completes.
    time::timeout(HOUR, async {}).await.unwrap();
    drop(time::sleep(HOUR * 2));
    time::sleep(Duration::from_secs(10)).await;
    assert_eq!(Instant::now() - start, Duration::from_secs(10));
}

#[kevent::test(start_paused = true)]
async fn an_interval_ticks_exactly_on_its_period_when_paused() {
    let start = Instant::now();
    let mut iv = time::interval(Duration::from_secs(1));
    for k in 0..5u32 {
        let tick = iv.tick().await;
        assert_eq!(tick - start, Duration::from_secs(1) * k);
    }
    assert_eq!(Instant::now() - start, Duration::from_secs(4));
}

#[kevent::test(start_paused = true)]
async fn resume_lets_the_clock_run_from_where_it_was_paused() {
    let start = Instant::now();
    time::advance(HOUR).await;
    time::resume();
    let real = real_now();
    time::sleep(Duration::from_millis(30)).await;
    assert!(
        real.elapsed() >= Duration::from_millis(25),
        "a running clock skipped time"
    );
    let elapsed = Instant::now() - start;
    assert!(
        elapsed >= HOUR + Duration::from_millis(30),
        "clock read {elapsed:?}"
    );
    assert!(
        elapsed < HOUR + Duration::from_secs(10),
        "clock read {elapsed:?}"
    );
}

#[kevent::test]
async fn a_sleep_armed_before_pause_waits_on_the_paused_clock() {
    let s = time::sleep(Duration::from_secs(600));
    let mut s = std::pin::pin!(s);
    // Armed on the ring with the clock running.
    assert!(futures::poll!(s.as_mut()).is_pending());
    time::pause();
    let real = real_now();
    s.await;
    assert!(real.elapsed() < Duration::from_secs(5));
}

#[kevent::test(start_paused = true)]
async fn the_clock_does_not_jump_while_a_blocking_closure_runs() {
    let blocking = kevent::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(50));
        7
    });
    kevent::select! {
        r = blocking => assert_eq!(r.unwrap(), 7),
        _ = time::sleep(HOUR) => panic!("the clock jumped past a running blocking closure"),
    }
}

/// I/O already ready wins over a timer the paused clock could jump to:
/// the runtime looks at the ring before each jump.
#[kevent::test(start_paused = true)]
async fn ready_io_is_seen_before_the_paused_clock_jumps() {
    let listener = kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Connected and written before the runtime looks: on loopback the
    // connection waits in the accept queue once `connect` returns.
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client.write_all(b"ping").unwrap();
    let (mut stream, _) = time::timeout(HOUR, listener.accept())
        .await
        .expect("accept lost to the paused clock")
        .unwrap();
    // Wait in real time until the bytes are in the kernel: the read below
    // must see them rather than the clock jump an hour.
    while !peek_ready(&stream) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut buf = [0; 4];
    time::timeout(HOUR, stream.read_exact(&mut buf))
        .await
        .expect("ready bytes lost to the paused clock")
        .unwrap();
    assert_eq!(&buf, b"ping");
    stream.write_all(b"pong").await.unwrap();
    let mut buf = [0; 4];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

/// Whether the socket has bytes waiting in the kernel.
fn peek_ready(stream: &kevent::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut b = 0u8;
    // SAFETY: `b` is a valid one-byte buffer; MSG_PEEK leaves the data queued.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n > 0
}

#[test]
fn builder_start_paused_pauses_a_current_thread_runtime() {
    let rt = Builder::new_current_thread()
        .start_paused(true)
        .build()
        .unwrap();
    let real = real_now();
    let virt = rt.block_on(async {
        let start = Instant::now();
        time::sleep(HOUR * 24).await;
        Instant::now() - start
    });
    assert_eq!(virt, HOUR * 24);
    assert!(real.elapsed() < Duration::from_secs(5));
}

#[test]
fn start_paused_on_a_multi_thread_runtime_is_refused() {
    let err = Builder::new_multi_thread()
        .worker_threads(1)
        .start_paused(true)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("current-thread"), "{err}");
}

fn panic_text(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn pause_on_a_multi_thread_runtime_panics_saying_what_to_use() {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let msg = panic_text(|| rt.block_on(async { time::pause() }));
    assert_eq!(
        msg,
        "`kevent::time::pause()` needs a current-thread runtime: a multi-thread runtime's clock \
         cannot be paused. Use `#[kevent::test]` (current-thread by default) or \
         `Builder::new_current_thread()`"
    );
}

#[test]
fn pause_outside_a_runtime_panics_saying_where_to_call_it() {
    let msg = panic_text(time::pause);
    assert!(msg.contains("outside a kevent runtime"), "{msg}");
}

#[test]
fn misuse_of_pause_advance_and_resume_panics_clearly() {
    let rt = Builder::new_current_thread().build().unwrap();
    let msg = panic_text(|| rt.block_on(time::advance(Duration::from_secs(1))));
    assert!(msg.contains("call `kevent::time::pause()` first"), "{msg}");
    let msg = panic_text(|| rt.block_on(async { time::resume() }));
    assert!(msg.contains("was not paused"), "{msg}");
    let msg = panic_text(|| {
        rt.block_on(async {
            time::pause();
            time::pause();
        })
    });
    assert!(msg.contains("already paused"), "{msg}");
}

#[test]
fn instant_outside_a_runtime_reads_std_clock() {
    let a = std::time::Instant::now();
    let b = Instant::now().into_std();
    let c = std::time::Instant::now();
    assert!(a <= b && b <= c);
}

/// A tiny ordered log shared by tasks.
mod parking_lot_free {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Order(Mutex<Vec<u64>>);

    impl Order {
        pub fn push(&self, v: u64) {
            self.0.lock().unwrap().push(v);
        }

        pub fn take(&self) -> Vec<u64> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }
}
