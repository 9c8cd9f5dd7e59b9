//! A bounded randomized stress run of the scheduler: for a fixed time per
//! configuration, rounds of tasks wake each other along random chains of
//! oneshots, across workers, doing random work at every hop: yields,
//! timers (sleeps, timeouts that elapse), I/O round trips over loopback TCP
//! and Unix socket pairs, spawning and joining children, `spawn_blocking`,
//! aborting victims. Every hop, chain, child and victim is counted, and
//! every round must finish within a deadline (a hang fails, printing the
//! PRNG seed).
//!
//! The plan of every round comes from a xorshift PRNG with a fixed seed
//! (printed on failure; `KEVENT_STRESS_SEED=0x...` replays a plan; the
//! interleaving, decided by the scheduler, is not replayed).

#[macro_use]
mod common;

use std::future::pending;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{watchdog_for, DropCounter, Flavor};
use futures::channel::{mpsc, oneshot};
use futures::lock::Mutex;
use futures::StreamExt;
use kevent::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream, UnixStream};
use kevent::task::{spawn_blocking, yield_now};
use kevent::time::{sleep, timeout};

/// How long each configuration keeps starting rounds.
const RUN_FOR: Duration = Duration::from_secs(5);
/// Most one round may take before it counts as hung.
const ROUND_LIMIT: Duration = Duration::from_secs(10);
/// Loopback TCP pairs and Unix pairs shared by the hops.
const PAIRS: usize = 8;

/// xorshift64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The seed for `flavor`: `KEVENT_STRESS_SEED` if set, else fixed.
fn seed_for(flavor: Flavor) -> u64 {
    if let Ok(s) = std::env::var("KEVENT_STRESS_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.expect("KEVENT_STRESS_SEED: a number, decimal or 0x hex");
    }
    0x9e37_79b9_7f4a_7c15
        ^ flavor.workers() as u64
        ^ (matches!(flavor, Flavor::CurrentThread) as u64) << 8
}

/// What one hop does before passing the token on.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Nothing.
    Nothing,
    /// `yield_now` this many times.
    Yield(u32),
    /// Sleeps this many microseconds.
    Sleep(u64),
    /// A timeout of this many microseconds around a future that never
    /// completes: must elapse.
    Timeout(u64),
    /// A round trip of this many bytes over TCP pair `.0`.
    Tcp(usize, usize),
    /// A round trip of this many bytes over Unix pair `.0`.
    Unix(usize, usize),
    /// Spawns a child that yields, and joins it.
    Child,
    /// Runs a closure on the blocking pool and joins it.
    Blocking,
    /// Aborts victim `.0` of the round.
    Abort(usize),
}

impl Work {
    fn random(rng: &mut Rng, victims: usize) -> Work {
        match rng.range(0, 100) {
            0..=19 => Work::Nothing,
            20..=34 => Work::Yield(rng.range(1, 4) as u32),
            35..=49 => Work::Sleep(rng.range(0, 2_000)),
            50..=54 => Work::Timeout(rng.range(100, 1_500)),
            55..=64 => Work::Tcp(
                rng.range(0, PAIRS as u64) as usize,
                rng.range(1, 2_000) as usize,
            ),
            65..=74 => Work::Unix(
                rng.range(0, PAIRS as u64) as usize,
                rng.range(1, 2_000) as usize,
            ),
            75..=86 => Work::Child,
            87..=89 => Work::Blocking,
            _ if victims > 0 => Work::Abort(rng.range(0, victims as u64) as usize),
            _ => Work::Nothing,
        }
    }
}

/// The client ends of the echo pairs, each used by one hop at a time.
struct Pairs {
    /// Loopback TCP clients.
    tcp: Vec<Mutex<TcpStream>>,
    /// Unix socket clients.
    unix: Vec<Mutex<UnixStream>>,
}

/// Echoes until EOF or error.
async fn echo(mut s: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Opens the pairs and spawns their echo tasks.
async fn open_pairs() -> Pairs {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut tcp = Vec::new();
    let mut unix = Vec::new();
    for _ in 0..PAIRS {
        let c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        kevent::spawn(echo(s));
        tcp.push(Mutex::new(c));
        let (a, b) = UnixStream::pair().unwrap();
        kevent::spawn(echo(b));
        unix.push(Mutex::new(a));
    }
    Pairs { tcp, unix }
}

/// Writes `len` bytes tagged with `tag` and reads them back.
async fn round_trip(s: &mut (impl AsyncRead + AsyncWrite + Unpin), len: usize, tag: u8) {
    let msg: Vec<u8> = (0..len).map(|i| tag ^ i as u8).collect();
    let mut back = vec![0u8; len];
    // Write and read concurrently: a large message may not fit the
    // buffers in one go.
    let (mut r, mut w) = s.split();
    let (wrote, read) = futures::join!(w.write_all(&msg), r.read_exact(&mut back));
    wrote.unwrap();
    read.unwrap();
    assert_eq!(back, msg, "echo corrupted");
}

/// Shared per-round state the hops touch.
struct Round {
    /// Echo pairs.
    pairs: Arc<Pairs>,
    /// Victims' abort handles.
    victims: Vec<kevent::task::AbortHandle>,
    /// Hops completed.
    hops: AtomicUsize,
    /// Children joined.
    children: AtomicUsize,
}

/// One hop: waits for the token, works, passes it on (or, at a chain's
/// end, reports it).
async fn hop(
    round: Arc<Round>,
    work: Work,
    token_in: oneshot::Receiver<u64>,
    token_out: Result<oneshot::Sender<u64>, mpsc::UnboundedSender<u64>>,
) {
    let token = token_in.await.expect("the previous hop dropped the token");
    match work {
        Work::Nothing => {}
        Work::Yield(n) => {
            for _ in 0..n {
                yield_now().await;
            }
        }
        Work::Sleep(us) => sleep(Duration::from_micros(us)).await,
        Work::Timeout(us) => {
            let started = Instant::now();
            let r = timeout(Duration::from_micros(us), pending::<()>()).await;
            assert!(r.is_err(), "a timeout around a pending future completed");
            assert!(
                started.elapsed() >= Duration::from_micros(us),
                "timeout elapsed early"
            );
        }
        Work::Tcp(i, len) => {
            let mut s = round.pairs.tcp[i].lock().await;
            round_trip(&mut *s, len, token as u8).await;
        }
        Work::Unix(i, len) => {
            let mut s = round.pairs.unix[i].lock().await;
            round_trip(&mut *s, len, token as u8).await;
        }
        Work::Child => {
            let r = round.clone();
            let v = kevent::spawn(async move {
                yield_now().await;
                r.children.fetch_add(1, SeqCst);
                token + 1
            })
            .await
            .unwrap();
            assert_eq!(v, token + 1);
        }
        Work::Blocking => {
            let v = spawn_blocking(move || token * 2).await.unwrap();
            assert_eq!(v, token * 2);
        }
        Work::Abort(v) => round.victims[v].abort(),
    }
    round.hops.fetch_add(1, SeqCst);
    match token_out {
        Ok(next) => next.send(token + 1).expect("the next hop is gone"),
        Err(done) => done
            .unbounded_send(token + 1)
            .expect("the collector is gone"),
    }
}

/// Runs one round from `rng`; panics (saying what) if it goes wrong.
async fn run_round(rng: &mut Rng, pairs: Arc<Pairs>) -> usize {
    let n_hops = rng.range(20, 400) as usize;
    let n_chains = rng.range(1, 12).min(n_hops as u64) as usize;
    let n_victims = rng.range(0, 20) as usize;

    // Victims wait forever unless aborted; each counts its drop.
    let victim_drops = Arc::new(AtomicUsize::new(0));
    let mut victim_handles = Vec::new();
    let mut victims = Vec::new();
    for _ in 0..n_victims {
        let guard = DropCounter::new(&victim_drops);
        let h = kevent::spawn(async move {
            let _guard = guard;
            pending::<()>().await
        });
        victims.push(h.abort_handle());
        victim_handles.push(h);
    }
    let round = Arc::new(Round {
        pairs,
        victims,
        hops: AtomicUsize::new(0),
        children: AtomicUsize::new(0),
    });

    // Hops in random order, cut into chains; each chain starts at its
    // first hop and reports its token (its length) to the collector.
    let mut order: Vec<usize> = (0..n_hops).collect();
    for i in (1..n_hops).rev() {
        order.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    let works: Vec<Work> = (0..n_hops).map(|_| Work::random(rng, n_victims)).collect();
    let children_expected = works.iter().filter(|w| matches!(w, Work::Child)).count();
    let (done_tx, mut done_rx) = mpsc::unbounded();
    let mut starts = Vec::new();
    let mut handles = Vec::new();
    let chain_len = n_hops.div_ceil(n_chains);
    for chain in order.chunks(chain_len) {
        let (first_tx, mut rx) = oneshot::channel();
        starts.push(first_tx);
        for (k, &h) in chain.iter().enumerate() {
            let (out, next_rx) = if k + 1 == chain.len() {
                (Err(done_tx.clone()), None)
            } else {
                let (tx, next_rx) = oneshot::channel();
                (Ok(tx), Some(next_rx))
            };
            handles.push(kevent::spawn(hop(round.clone(), works[h], rx, out)));
            match next_rx {
                Some(next) => rx = next,
                None => break,
            }
        }
    }
    drop(done_tx);
    let chains = starts.len();
    // Kick every chain from this task (wakes cross workers).
    for s in starts {
        s.send(0).unwrap();
    }
    let mut reported = 0;
    let mut tokens = 0u64;
    while let Some(t) = done_rx.next().await {
        reported += 1;
        tokens += t;
    }
    assert_eq!(reported, chains, "chains that reported");
    assert_eq!(tokens as usize, n_hops, "hops counted along the chains");
    for h in handles {
        h.await.expect("a hop failed");
    }
    assert_eq!(round.hops.load(SeqCst), n_hops, "hops completed");
    assert_eq!(
        round.children.load(SeqCst),
        children_expected,
        "children joined"
    );

    // Victims: the aborted ones are cancelled; abort the rest, then every
    // one must be dropped exactly once.
    for v in &round.victims {
        v.abort();
    }
    for h in victim_handles {
        let err = h.await.expect_err("a victim completed");
        assert!(err.is_cancelled(), "{err:?}");
    }
    assert_eq!(victim_drops.load(SeqCst), n_victims, "victims dropped");
    n_hops
}

/// Prints the seed if the test panics while this is alive.
struct SeedOnPanic(
    /// What to print.
    String,
);

impl Drop for SeedOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "stress failure: {}; replay the plan with KEVENT_STRESS_SEED",
                self.0
            );
        }
    }
}

rt_test_sync!(random_wake_chains_with_timers_and_io_all_complete:
    current_thread, multi_thread_2, multi_thread_4);
fn random_wake_chains_with_timers_and_io_all_complete(flavor: Flavor) {
    let seed = seed_for(flavor);
    watchdog_for(RUN_FOR + ROUND_LIMIT + Duration::from_secs(20), move || {
        let _seed = SeedOnPanic(format!("{flavor:?}, seed {seed:#x}"));
        let rt = flavor.build();
        let (rounds, hops, slowest) = rt.block_on(async move {
            let pairs = Arc::new(open_pairs().await);
            let mut rng = Rng(seed);
            let started = Instant::now();
            let (mut rounds, mut hops, mut slowest) = (0, 0, Duration::ZERO);
            while started.elapsed() < RUN_FOR {
                let state = rng.clone();
                let round_started = Instant::now();
                hops += timeout(ROUND_LIMIT, run_round(&mut rng, pairs.clone()))
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "round {rounds} (rng state {:#x}) hung for {ROUND_LIMIT:?}",
                            state.0
                        )
                    });
                slowest = slowest.max(round_started.elapsed());
                rounds += 1;
            }
            (rounds, hops, slowest)
        });
        eprintln!(
            "{flavor:?} seed {seed:#x}: {rounds} rounds, {hops} hops, slowest round {slowest:?}"
        );
        assert!(rounds > 0);
        drop(rt);
    });
}
