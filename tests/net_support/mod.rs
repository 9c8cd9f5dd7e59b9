//! Shared by the `net_*` integration tests: run a test body under every
//! runtime flavor with a deadline, and small helpers.
#![allow(dead_code)]

use std::fmt;
use std::future::{poll_fn, Future};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use kevent::runtime::{Builder, Runtime};

pub mod tcp;

/// How long one flavor's run of a test body may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A runtime configuration every test runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Multi-thread with this many workers.
    MultiThread(usize),
    /// The thread calling `block_on` is the only worker.
    CurrentThread,
}

/// Multi-thread with 1, 2 and 4 workers, and current-thread.
pub const FLAVORS: [Flavor; 4] = [
    Flavor::MultiThread(1),
    Flavor::MultiThread(2),
    Flavor::MultiThread(4),
    Flavor::CurrentThread,
];

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flavor::MultiThread(n) => write!(f, "multi_thread({n} workers)"),
            Flavor::CurrentThread => f.write_str("current_thread"),
        }
    }
}

impl Flavor {
    /// Builds a runtime of this flavor.
    pub fn build(self) -> Runtime {
        match self {
            Flavor::MultiThread(n) => Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            Flavor::CurrentThread => Builder::new_current_thread().enable_all().build(),
        }
        .unwrap_or_else(|e| panic!("building a {self} runtime: {e}"))
    }
}

/// Aborts the process if a run outlives its deadline by far (the runtime's
/// own timer may be what hangs); dropping it disarms it.
struct Watchdog(
    /// Dropped to disarm.
    mpsc::Sender<()>,
);

impl Watchdog {
    fn arm(what: String, after: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(after) {
                eprintln!("watchdog: {what} still running after {after:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog(tx)
    }
}

/// Runs `test` to completion under each of [`FLAVORS`], each within
/// [`DEADLINE`]; a hang fails the test instead of blocking the run.
pub fn each_flavor<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for flavor in FLAVORS {
        eprintln!("-- running under {flavor}");
        let _watchdog = Watchdog::arm(format!("test under {flavor}"), DEADLINE * 3);
        let rt = flavor.build();
        rt.block_on(async {
            if kevent::time::timeout(DEADLINE, test()).await.is_err() {
                panic!("under {flavor}: timed out after {DEADLINE:?}");
            }
        });
        rt.shutdown_timeout(Duration::from_secs(5));
    }
}

/// Polls both futures until both finish.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (
        ra.expect("polled to completion"),
        rb.expect("polled to completion"),
    )
}

/// `len` pseudo-random bytes determined by `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a, fed incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(
    /// The running hash.
    pub u64,
);

impl Checksum {
    /// The empty input's checksum.
    pub fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The checksum of `bytes`.
    pub fn of(bytes: &[u8]) -> Checksum {
        let mut c = Checksum::new();
        c.update(bytes);
        c
    }
}

/// A fresh path for a Unix socket in the temp directory.
pub fn socket_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("kevent-net-{}-{name}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}
