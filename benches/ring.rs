//! Benchmarks of the kevent ring (`kevent_reactor`, [`Backend::UserSpace`])
//! against a baseline of `crossbeam_queue::ArrayQueue` plus thread parking.
//!
//! Run with `cargo bench --bench ring`.
//!
//! # Groups
//!
//! * `ring_1p1c`: one producer thread, one consumer thread.
//! * `ring_1p2c`: one producer thread, two consumer threads (wake one).
//! * `wake_latency`: the round trip of waking one sleeping consumer.
//!
//! # What one element is (throughput groups)
//!
//! One element is **one event delivered to a consumer**: posted by the
//! producer, claimed by a consumer, counted once, and (for kevent) committed.
//! Every criterion iteration moves [`BATCH`] elements; throughput is events
//! delivered per second, from the moment the producer starts posting until the
//! consumer that counts the last event of the run has counted it.
//!
//! kevent coalesces: a registration sits in the ring at most once, and a post
//! to a registration that is queued or claimed-but-uncommitted is OR-ed into
//! the pending event instead of adding one. So the kevent producer posts
//! round-robin to [`REGISTRATIONS`] distinct user registrations (registration
//! `i % REGISTRATIONS`, payload 1), and keeps at most one undelivered post per
//! registration: a per-registration "in flight" flag is set by the producer
//! before it posts and cleared by the consumer after it committed the event.
//! The producer waits (spin, then yield) for the flag, exactly as the baseline
//! producer waits (spin, then yield) when its `ArrayQueue` is full. With
//! `REGISTRATIONS == CAPACITY` both sides have the same window of events in
//! flight, every post is delivered as exactly one event, and no post is ever
//! coalesced away. The flag costs kevent's side one extra store per event on
//! the consumer and one load per event on the producer (on a cache line that
//! holds 64 flags); this is harness overhead the baseline does not pay.
//!
//! The baseline is an `ArrayQueue<u64>` of the same capacity; its consumers
//! pop up to [`CLAIM`] elements per round, announce with an atomic flag that
//! they are about to sleep, re-check the queue and `std::thread::park`; the
//! producer, after each push, issues a `SeqCst` fence, checks the sleeper
//! count, and `unpark`s one sleeper (no lost wakeups, wake one). kevent's
//! consumers `claim` up to [`CLAIM`] events, `commit` them, and sleep in
//! `Consumer::wait` when the ring is empty.
//!
//! # Wake latency
//!
//! Per iteration, one sleeping consumer is woken. Before each iteration (not
//! timed) the main thread waits until the consumer announced it is about to
//! sleep, then spins [`GRACE`] more so that it really is asleep. Timed is:
//!
//! * `spin_ack`: main posts/pushes/unparks, the consumer wakes, claims (or
//!   pops) the event and sets an `AtomicBool`; main spins on that flag.
//!   One wakeup plus one cache-line transfer.
//! * `pingpong`: the same, but the consumer answers through the same kind of
//!   channel (a second kevent ring with main as its consumer, a second
//!   `ArrayQueue` + park, or `unpark` of main) and main sleeps until the
//!   answer arrives. Two wakeups: a "futex round trip" for `park_unpark`.
//!
//! Every sleep, kevent's `Consumer::wait` and the baselines' `park`, is
//! untimed, so no side pays for arming a timer; at teardown kevent consumers
//! are woken by a `WAKEUP_ALL` stop event, parked threads by `unpark`.
//!
//! The worker threads live for one benchmark (created when criterion first
//! runs it, joined right after), so thread creation is never measured. At
//! teardown each benchmark prints how often its consumers actually slept.

use std::fmt;
use std::hint::spin_loop;
use std::ops::Deref;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use kevent_reactor::{Backend, Config, Consumer, Flags, Kevent, Key, Token};

/// Ring slots (kevent) and queue capacity (baseline).
const CAPACITY: usize = 1024;
/// Distinct user registrations the kevent producer posts to, round-robin.
const REGISTRATIONS: usize = CAPACITY;
/// Most events a consumer claims (or pops) per round.
const CLAIM: usize = 64;
/// Elements (delivered events) per criterion iteration in the throughput groups.
const BATCH: u64 = 1024;
/// Every sleep in the benches is untimed (no timer is armed on either side);
/// shutdown wakes sleepers with a `WAKEUP_ALL` stop event or an `unpark`.
const FOREVER: Option<Duration> = None;
/// How long the main thread lets a consumer settle into sleep, untimed.
const GRACE: Duration = Duration::from_micros(20);
/// A run that takes this long is stuck: fail loudly instead of hanging.
const HANG: Duration = Duration::from_secs(30);
/// Token of the registration that wakes everyone at shutdown.
const STOP_TOKEN: Token = Token(usize::MAX);

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Keeps values that different threads write on separate cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Spin a little, then yield: how producers wait for room on both sides.
struct Backoff(u32);

impl Backoff {
    fn new() -> Backoff {
        Backoff(0)
    }

    fn snooze(&mut self) {
        if self.0 < 7 {
            for _ in 0..1u32 << self.0 {
                spin_loop();
            }
            self.0 += 1;
        } else {
            thread::yield_now();
        }
    }
}

/// Spins (yielding after a while) until `flag` is set, then clears it.
fn await_flag(flag: &AtomicBool, what: &str) {
    let mut spins = 0u32;
    let mut since = None;
    while !flag.load(Ordering::Acquire) {
        spins = spins.wrapping_add(1);
        if spins < 1 << 14 {
            spin_loop();
            continue;
        }
        thread::yield_now();
        let since = *since.get_or_insert_with(Instant::now);
        assert!(since.elapsed() < HANG, "bench stalled waiting for {what}");
    }
    flag.store(false, Ordering::Relaxed);
}

/// Untimed: waits until the consumer is about to sleep, then lets it settle.
fn await_asleep(armed: &AtomicBool) {
    await_flag(armed, "the consumer to go to sleep");
    let start = Instant::now();
    while start.elapsed() < GRACE {
        spin_loop();
    }
}

fn kevent() -> Kevent {
    Kevent::new(
        Config::default()
            .capacity(CAPACITY)
            .backend(Backend::UserSpace),
    )
    .expect("kevent ring")
}

fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .expect("spawn bench thread")
}

/// Joins worker threads and prints what they report about their sleeps.
fn join_all(label: &str, threads: Vec<JoinHandle<String>>) {
    for t in threads {
        match t.join() {
            Ok(report) if !report.is_empty() => eprintln!("  [{label}] {report}"),
            Ok(_) => {}
            Err(_) => eprintln!("  [{label}] a worker thread panicked"),
        }
    }
}

// ---------------------------------------------------------------------------
// The baseline's sleep/wake protocol
// ---------------------------------------------------------------------------

/// One sleeper slot of [`Parker`].
#[derive(Default)]
struct ParkSlot {
    /// Set by the sleeper before its last check for work; cleared by the
    /// waker that wins the swap (and then unparks it) or by the sleeper
    /// itself when it finds work.
    asleep: AtomicBool,
    /// The sleeping thread, registered by itself before it first sleeps.
    thread: OnceLock<Thread>,
    /// Times this slot really parked (for the teardown report).
    parks: AtomicU64,
}

/// Wake-one parking for the baseline: a sleeper announces itself, re-checks
/// for work and parks; a waker (after publishing work) fences, checks the
/// sleeper count and unparks one sleeper whose flag it swapped off.
struct Parker {
    /// Threads in `sleep` that have announced themselves.
    sleepers: Padded<AtomicUsize>,
    /// Where the next wake-one scan starts.
    rotor: AtomicUsize,
    /// One slot per sleeping thread.
    slots: Box<[Padded<ParkSlot>]>,
}

impl Parker {
    fn new(n: usize) -> Parker {
        Parker {
            sleepers: Padded::default(),
            rotor: AtomicUsize::new(0),
            slots: (0..n).map(|_| Padded::default()).collect(),
        }
    }

    /// Called by the thread that will sleep in slot `id`.
    fn register(&self, id: usize) {
        let _ = self.slots[id].thread.set(thread::current());
    }

    /// Sleeps in slot `id` unless `has_work` says there is something to do.
    fn sleep(&self, id: usize, has_work: impl Fn() -> bool) {
        let slot = &self.slots[id];
        slot.asleep.store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `wake_one`: either the waker sees us in
        // `sleepers`, or we see its work.
        fence(Ordering::SeqCst);
        if has_work() {
            if slot.asleep.swap(false, Ordering::SeqCst) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            // Else a waker took us and will unpark: its token only makes a
            // later `park` return early, which the loop below tolerates.
            return;
        }
        slot.parks.fetch_add(1, Ordering::Relaxed);
        while slot.asleep.load(Ordering::Acquire) {
            thread::park();
        }
    }

    fn wake(&self, id: usize) -> bool {
        let slot = &self.slots[id];
        if slot.asleep.load(Ordering::Relaxed) && slot.asleep.swap(false, Ordering::SeqCst) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            slot.thread.get().expect("sleeper registered").unpark();
            true
        } else {
            false
        }
    }

    /// After publishing work: wakes one sleeper, if any sleeps.
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let n = self.slots.len();
        let start = if n == 1 {
            0
        } else {
            self.rotor.fetch_add(1, Ordering::Relaxed) % n
        };
        for i in 0..n {
            if self.wake((start + i) % n) {
                return;
            }
        }
    }

    fn wake_all(&self) {
        fence(Ordering::SeqCst);
        for i in 0..self.slots.len() {
            self.wake(i);
        }
    }

    fn parks(&self, id: usize) -> u64 {
        self.slots[id].parks.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------
// Throughput: one producer, N consumers
// ---------------------------------------------------------------------------

/// Counts delivered events across consumers and signals the end of a run.
struct Tally {
    /// Events delivered since the pipe was built.
    consumed: Padded<AtomicU64>,
    /// `consumed` at the end of the current run.
    target: Padded<AtomicU64>,
    /// Set at teardown.
    stop: AtomicBool,
    /// Receives the instant the last event of a run was counted.
    done: Sender<Instant>,
}

impl Tally {
    fn new() -> (Arc<Tally>, Receiver<Instant>) {
        let (done, done_rx) = mpsc::channel();
        let tally = Tally {
            consumed: Padded::default(),
            target: Padded::default(),
            stop: AtomicBool::new(false),
            done,
        };
        (Arc::new(tally), done_rx)
    }

    /// A consumer delivered `n` more events.
    fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        let now = self.consumed.fetch_add(n, Ordering::AcqRel) + n;
        if now == self.target.load(Ordering::Acquire) {
            let _ = self.done.send(Instant::now());
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Long-lived producer and consumer threads that move `n` events on demand.
struct Pipe {
    label: String,
    tally: Arc<Tally>,
    /// Jobs for the producer: how many events to post. Dropped at teardown.
    jobs: Option<Sender<u64>>,
    /// The producer reports when it starts posting.
    started: Receiver<Instant>,
    done: Receiver<Instant>,
    /// Events asked for so far (the next run's target builds on it).
    total: u64,
    /// Wakes every consumer at teardown (after `stop` is set).
    wake_all: Box<dyn Fn()>,
    threads: Vec<JoinHandle<String>>,
}

impl Pipe {
    /// Moves `n` events; returns the time from the producer's first post to
    /// the last event's delivery.
    fn run(&mut self, n: u64) -> Duration {
        self.total += n;
        self.tally.target.store(self.total, Ordering::Release);
        self.jobs
            .as_ref()
            .expect("pipe is running")
            .send(n)
            .expect("producer alive");
        let start = self.started.recv_timeout(HANG).expect("producer started");
        let end = self
            .done
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("{}: run of {n} events stalled", self.label));
        end.saturating_duration_since(start)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.tally.stop.store(true, Ordering::SeqCst);
        drop(self.jobs.take());
        (self.wake_all)();
        join_all(&self.label, std::mem::take(&mut self.threads));
    }
}

/// kevent: the producer posts to `REGISTRATIONS` user events round-robin;
/// consumers claim, commit, count, and sleep in `wait` when there is nothing.
fn kevent_pipe(label: &str, consumers: usize) -> Pipe {
    let kq = kevent();
    let keys: Arc<[Key]> = (0..REGISTRATIONS)
        .map(|i| kq.add_user(Token(i), Flags::NONE).expect("add_user"))
        .collect();
    let stop_key = kq
        .add_user(STOP_TOKEN, Flags::WAKEUP_ALL)
        .expect("add_user");
    let in_flight: Arc<[AtomicBool]> = (0..REGISTRATIONS).map(|_| AtomicBool::new(false)).collect();
    let (tally, done) = Tally::new();
    let (jobs, job_rx) = mpsc::channel::<u64>();
    let (started_tx, started) = mpsc::channel();
    let mut threads = Vec::new();

    {
        let (kq, keys, in_flight) = (kq.clone(), keys.clone(), in_flight.clone());
        threads.push(spawn("kevent-producer", move || {
            let mut next = 0usize;
            while let Ok(n) = job_rx.recv() {
                let _ = started_tx.send(Instant::now());
                for _ in 0..n {
                    let k = next;
                    next = (next + 1) % REGISTRATIONS;
                    let mut backoff = Backoff::new();
                    while in_flight[k].load(Ordering::Acquire) {
                        backoff.snooze();
                    }
                    in_flight[k].store(true, Ordering::Relaxed);
                    kq.post(keys[k], 1).expect("post");
                }
            }
            String::new()
        }));
    }

    for id in 0..consumers {
        let (kq, in_flight, tally) = (kq.clone(), in_flight.clone(), tally.clone());
        let mut c: Consumer = kq.consumer().expect("consumer");
        threads.push(spawn("kevent-consumer", move || {
            let mut tokens = Vec::with_capacity(CLAIM);
            let (mut rounds, mut total) = (0u64, 0u64);
            loop {
                let seen = c.front();
                let events = c.claim(CLAIM);
                if events.is_empty() {
                    if tally.stopping() {
                        break;
                    }
                    c.wait(seen, 1, FOREVER).expect("wait");
                    continue;
                }
                rounds += 1;
                tokens.clear();
                tokens.extend(events.iter().map(|e| e.token.0));
                let n = events.len();
                c.commit(n);
                let mut delivered = 0;
                for &t in &tokens {
                    if t < REGISTRATIONS {
                        in_flight[t].store(false, Ordering::Release);
                        delivered += 1;
                    }
                }
                total += delivered;
                tally.add(delivered);
            }
            let s = c.stats();
            format!(
                "consumer {id}: {total} events in {rounds} claims, slept {} times, woken {} times",
                s.sleeps, s.woken
            )
        }));
    }

    Pipe {
        label: label.to_owned(),
        tally,
        jobs: Some(jobs),
        started,
        done,
        total: 0,
        wake_all: Box::new(move || {
            let _ = kq.post(stop_key, 1);
        }),
        threads,
    }
}

/// Baseline: `ArrayQueue<u64>` of the same capacity; consumers park when it
/// is empty, the producer unparks one after every push if anyone sleeps.
fn queue_pipe(label: &str, consumers: usize) -> Pipe {
    let queue = Arc::new(ArrayQueue::<u64>::new(CAPACITY));
    let parker = Arc::new(Parker::new(consumers));
    let (tally, done) = Tally::new();
    let (jobs, job_rx) = mpsc::channel::<u64>();
    let (started_tx, started) = mpsc::channel();
    let mut threads = Vec::new();

    {
        let (queue, parker) = (queue.clone(), parker.clone());
        threads.push(spawn("queue-producer", move || {
            let mut next = 0u64;
            while let Ok(n) = job_rx.recv() {
                let _ = started_tx.send(Instant::now());
                for _ in 0..n {
                    let mut value = next;
                    next += 1;
                    let mut backoff = Backoff::new();
                    while let Err(back) = queue.push(value) {
                        value = back;
                        backoff.snooze();
                    }
                    parker.wake_one();
                }
            }
            String::new()
        }));
    }

    for id in 0..consumers {
        let (queue, parker, tally) = (queue.clone(), parker.clone(), tally.clone());
        threads.push(spawn("queue-consumer", move || {
            parker.register(id);
            let mut rounds = 0u64;
            let mut popped = 0u64;
            loop {
                let mut got = 0;
                while got < CLAIM as u64 && queue.pop().is_some() {
                    got += 1;
                }
                if got > 0 {
                    rounds += 1;
                    popped += got;
                    tally.add(got);
                    continue;
                }
                if tally.stopping() {
                    break;
                }
                parker.sleep(id, || !queue.is_empty() || tally.stopping());
            }
            format!(
                "consumer {id}: {popped} elements in {rounds} rounds, parked {} times",
                parker.parks(id)
            )
        }));
    }

    Pipe {
        label: label.to_owned(),
        tally,
        jobs: Some(jobs),
        started,
        done,
        total: 0,
        wake_all: Box::new(move || parker.wake_all()),
        threads,
    }
}

fn throughput_group(c: &mut Criterion, name: &'static str, consumers: usize) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH));
    let label = |id: &str| format!("{name}/{id}");
    let mut run = |id: &str, make: fn(&str, usize) -> Pipe| {
        let label = label(id);
        let mut pipe: Option<Pipe> = None;
        group.bench_function(id, |b| {
            let pipe = pipe.get_or_insert_with(|| make(&label, consumers));
            b.iter_custom(|iters| pipe.run(iters * BATCH));
        });
        drop(pipe);
    };
    run("kevent", kevent_pipe);
    run("arrayqueue_park", queue_pipe);
    group.finish();
}

fn ring_1p1c(c: &mut Criterion) {
    throughput_group(c, "ring_1p1c", 1);
}

fn ring_1p2c(c: &mut Criterion) {
    throughput_group(c, "ring_1p2c", 2);
}

// ---------------------------------------------------------------------------
// Wake latency
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The consumer answers by setting a flag main spins on.
    SpinAck,
    /// The consumer answers through the same kind of channel; main sleeps.
    PingPong,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::SpinAck => "spin_ack",
            Mode::PingPong => "pingpong",
        })
    }
}

/// Flags shared by main and the one consumer of a latency benchmark.
#[derive(Default)]
struct Ctl {
    /// The consumer is about to sleep (set by it, cleared by main).
    armed: Padded<AtomicBool>,
    /// The consumer got the event (spin_ack, and park_unpark's pingpong).
    ack: Padded<AtomicBool>,
    /// park_unpark: main's request.
    go: Padded<AtomicBool>,
    /// Set at teardown.
    stop: AtomicBool,
}

/// One round trip per iteration; the consumer thread lives as long as this.
trait RoundTrip {
    /// Runs `iters` round trips, returns the sum of the timed parts.
    fn run(&mut self, iters: u64) -> Duration;
}

/// kevent: the consumer sleeps in `Consumer::wait`; main posts a user event.
struct KeventLatency {
    mode: Mode,
    ctl: Arc<Ctl>,
    kq: Kevent,
    ping: Key,
    stop_key: Key,
    /// pingpong: main's own ring and consumer, which the answer comes through.
    back: Option<Consumer>,
    thread: Option<JoinHandle<String>>,
}

impl KeventLatency {
    fn new(mode: Mode) -> KeventLatency {
        let ctl = Arc::new(Ctl::default());
        let kq = kevent();
        let ping = kq.add_user(Token(0), Flags::NONE).expect("add_user");
        let stop_key = kq
            .add_user(STOP_TOKEN, Flags::WAKEUP_ALL)
            .expect("add_user");
        let (back, pong) = match mode {
            Mode::SpinAck => (None, None),
            Mode::PingPong => {
                let bk = kevent();
                let pong = bk.add_user(Token(0), Flags::NONE).expect("add_user");
                (Some(bk.consumer().expect("consumer")), Some((bk, pong)))
            }
        };
        let mut c = kq.consumer().expect("consumer");
        let thread = {
            let ctl = ctl.clone();
            spawn("kevent-sleeper", move || {
                let mut pings = 0u64;
                loop {
                    let seen = c.front();
                    let events = c.claim(CLAIM);
                    let n = events.len();
                    if n == 0 {
                        if ctl.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        ctl.armed.store(true, Ordering::Release);
                        c.wait(seen, 1, FOREVER).expect("wait");
                        continue;
                    }
                    if events.iter().any(|e| e.token == Token(0)) {
                        pings += 1;
                        match &pong {
                            None => ctl.ack.store(true, Ordering::Release),
                            Some((bk, pong)) => bk.post(*pong, 1).expect("post"),
                        }
                    }
                    c.commit(n);
                }
                let s = c.stats();
                format!(
                    "consumer: {pings} pings, slept {} times, woken {} times",
                    s.sleeps, s.woken
                )
            })
        };
        KeventLatency {
            mode,
            ctl,
            kq,
            ping,
            stop_key,
            back,
            thread: Some(thread),
        }
    }
}

impl RoundTrip for KeventLatency {
    fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            await_asleep(&self.ctl.armed);
            let start = Instant::now();
            self.kq.post(self.ping, 1).expect("post");
            match (self.mode, self.back.as_mut()) {
                (Mode::PingPong, Some(c)) => loop {
                    let seen = c.front();
                    let n = c.claim(CLAIM).len();
                    if n > 0 {
                        total += start.elapsed();
                        c.commit(n);
                        break;
                    }
                    c.wait(seen, 1, FOREVER).expect("wait");
                },
                _ => {
                    await_flag(&self.ctl.ack, "the consumer's ack");
                    total += start.elapsed();
                }
            }
        }
        total
    }
}

impl Drop for KeventLatency {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        let _ = self.kq.post(self.stop_key, 1);
        let label = format!("wake_latency/kevent/{}", self.mode);
        join_all(&label, self.thread.take().into_iter().collect());
    }
}

/// Baseline: `ArrayQueue` + park; main pushes and unparks the consumer.
struct QueueLatency {
    mode: Mode,
    ctl: Arc<Ctl>,
    queue: Arc<ArrayQueue<u64>>,
    parker: Arc<Parker>,
    /// pingpong: the answer queue and main's parker.
    back: Option<(Arc<ArrayQueue<u64>>, Arc<Parker>)>,
    thread: Option<JoinHandle<String>>,
}

impl QueueLatency {
    fn new(mode: Mode) -> QueueLatency {
        let ctl = Arc::new(Ctl::default());
        let queue = Arc::new(ArrayQueue::new(CAPACITY));
        let parker = Arc::new(Parker::new(1));
        let back = match mode {
            Mode::SpinAck => None,
            Mode::PingPong => {
                let back = (
                    Arc::new(ArrayQueue::new(CAPACITY)),
                    Arc::new(Parker::new(1)),
                );
                back.1.register(0);
                Some(back)
            }
        };
        let thread = {
            let (ctl, queue, parker, back) =
                (ctl.clone(), queue.clone(), parker.clone(), back.clone());
            spawn("queue-sleeper", move || {
                parker.register(0);
                let mut pings = 0u64;
                loop {
                    if queue.pop().is_some() {
                        pings += 1;
                        match &back {
                            None => ctl.ack.store(true, Ordering::Release),
                            Some((q, p)) => {
                                q.push(1).expect("answer queue has room");
                                p.wake_one();
                            }
                        }
                        continue;
                    }
                    if ctl.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    ctl.armed.store(true, Ordering::Release);
                    parker.sleep(0, || !queue.is_empty() || ctl.stop.load(Ordering::SeqCst));
                }
                format!("consumer: {pings} pings, parked {} times", parker.parks(0))
            })
        };
        QueueLatency {
            mode,
            ctl,
            queue,
            parker,
            back,
            thread: Some(thread),
        }
    }
}

impl RoundTrip for QueueLatency {
    fn run(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            await_asleep(&self.ctl.armed);
            let start = Instant::now();
            self.queue.push(1).expect("queue has room");
            self.parker.wake_one();
            match &self.back {
                Some((q, p)) => loop {
                    if q.pop().is_some() {
                        total += start.elapsed();
                        break;
                    }
                    p.sleep(0, || !q.is_empty());
                },
                None => {
                    await_flag(&self.ctl.ack, "the consumer's ack");
                    total += start.elapsed();
                }
            }
        }
        total
    }
}

impl Drop for QueueLatency {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.parker.wake_all();
        let label = format!("wake_latency/arrayqueue_park/{}", self.mode);
        join_all(&label, self.thread.take().into_iter().collect());
    }
}

/// Baseline: bare `thread::park` / `unpark` (a futex wake; a futex round
/// trip in pingpong mode, where main parks until the consumer unparks it).
struct ParkLatency {
    mode: Mode,
    ctl: Arc<Ctl>,
    main: ThreadId,
    worker: Thread,
    thread: Option<JoinHandle<String>>,
}

impl ParkLatency {
    fn new(mode: Mode) -> ParkLatency {
        let ctl = Arc::new(Ctl::default());
        let main = thread::current();
        let thread = {
            let ctl = ctl.clone();
            let main = main.clone();
            spawn("park-sleeper", move || {
                let (mut pings, mut parks) = (0u64, 0u64);
                'outer: loop {
                    ctl.armed.store(true, Ordering::Release);
                    while !ctl.go.load(Ordering::Acquire) {
                        if ctl.stop.load(Ordering::SeqCst) {
                            break 'outer;
                        }
                        parks += 1;
                        thread::park();
                    }
                    ctl.go.store(false, Ordering::Relaxed);
                    pings += 1;
                    ctl.ack.store(true, Ordering::Release);
                    if mode == Mode::PingPong {
                        main.unpark();
                    }
                }
                format!("consumer: {pings} pings, park() called {parks} times")
            })
        };
        ParkLatency {
            mode,
            ctl,
            main: main.id(),
            worker: thread.thread().clone(),
            thread: Some(thread),
        }
    }
}

impl RoundTrip for ParkLatency {
    fn run(&mut self, iters: u64) -> Duration {
        assert_eq!(
            thread::current().id(),
            self.main,
            "park_unpark pingpong must run on the thread that built it"
        );
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            await_asleep(&self.ctl.armed);
            let start = Instant::now();
            self.ctl.go.store(true, Ordering::Release);
            self.worker.unpark();
            match self.mode {
                Mode::SpinAck => await_flag(&self.ctl.ack, "the consumer's ack"),
                Mode::PingPong => {
                    while !self.ctl.ack.load(Ordering::Acquire) {
                        thread::park();
                    }
                    self.ctl.ack.store(false, Ordering::Relaxed);
                }
            }
            total += start.elapsed();
        }
        total
    }
}

impl Drop for ParkLatency {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.worker.unpark();
        let label = format!("wake_latency/park_unpark/{}", self.mode);
        join_all(&label, self.thread.take().into_iter().collect());
    }
}

/// Builds a latency harness (and its consumer thread) for a mode.
type MakeHarness = fn(Mode) -> Box<dyn RoundTrip>;

fn wake_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake_latency");
    for mode in [Mode::SpinAck, Mode::PingPong] {
        let candidates: [(&str, MakeHarness); 3] = [
            ("kevent", |m| Box::new(KeventLatency::new(m))),
            ("arrayqueue_park", |m| Box::new(QueueLatency::new(m))),
            ("park_unpark", |m| Box::new(ParkLatency::new(m))),
        ];
        for (name, make) in candidates {
            let mut harness: Option<Box<dyn RoundTrip>> = None;
            group.bench_function(format!("{name}/{mode}"), |b| {
                let harness = harness.get_or_insert_with(|| make(mode));
                b.iter_custom(|iters| harness.run(iters));
            });
            drop(harness);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = ring_1p1c, ring_1p2c, wake_latency
}
criterion_main!(benches);
