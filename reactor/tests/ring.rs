//! The ring's rules, one test each, on the user-space backend (no OS noise)
//! unless the rule is about file descriptors.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kevent_reactor::{
    Backend, Config, Consumer, Event, Flags, Kevent, Ready, Timeout, Token, WaitStatus,
};

fn user_ring(capacity: usize) -> Kevent {
    Kevent::new(
        Config::default()
            .capacity(capacity)
            .backend(Backend::UserSpace),
    )
    .unwrap()
}

/// Claims and commits until `n` events were seen or `timeout` passes.
fn drain(c: &mut Consumer, n: usize, timeout: Duration) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while seen.len() < n && Instant::now() < deadline {
        let front = c.front();
        let events = c.claim(64).to_vec();
        if events.is_empty() {
            c.wait(front, 1, deadline).unwrap();
            continue;
        }
        c.commit(events.len());
        seen.extend(events);
    }
    seen
}

#[test]
fn wait_returns_at_once_when_the_front_moved_past_seen() {
    let kq = user_ring(8);
    let user = kq.add_user(Token(1), Flags::NONE).unwrap();
    let mut c = kq.consumer().unwrap();
    let seen = c.front();
    kq.post(user, 1).unwrap();
    let start = Instant::now();
    // min = 100 cannot be met, but the front moved: no sleep.
    assert_eq!(
        c.wait(seen, 100, Duration::from_secs(10)).unwrap(),
        WaitStatus::Ready
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn wait_times_out_with_relative_and_absolute_deadlines() {
    let kq = user_ring(8);
    let mut c = kq.consumer().unwrap();
    let seen = c.front();
    let start = Instant::now();
    assert_eq!(
        c.wait(seen, 1, Duration::from_millis(30)).unwrap(),
        WaitStatus::TimedOut
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    let at = Instant::now() + Duration::from_millis(30);
    assert_eq!(c.wait(seen, 1, at).unwrap(), WaitStatus::TimedOut);
    assert!(Instant::now() >= at);
}

#[test]
fn wait_sleeps_until_min_entries_are_there() {
    let kq = user_ring(16);
    let users: Vec<_> = (0..3)
        .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
        .collect();
    let mut c = kq.consumer().unwrap();
    let seen = c.front();
    let poster = {
        let kq = kq.clone();
        let users = users.clone();
        thread::spawn(move || {
            for u in users {
                thread::sleep(Duration::from_millis(20));
                kq.post(u, 0).unwrap();
            }
        })
    };
    assert_eq!(
        c.wait(seen, 3, Duration::from_secs(10)).unwrap(),
        WaitStatus::Ready
    );
    assert_eq!(c.claim(16).len(), 3);
    poster.join().unwrap();
}

#[test]
fn a_post_from_another_thread_wakes_a_sleeping_consumer() {
    let kq = user_ring(8);
    let user = kq.add_user(Token(9), Flags::NONE).unwrap();
    let mut c = kq.consumer().unwrap();
    let seen = c.front();
    let kq2 = kq.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        kq2.post(user, 42).unwrap();
    });
    assert_eq!(
        c.wait(seen, 1, Duration::from_secs(10)).unwrap(),
        WaitStatus::Ready
    );
    let ev = c.claim(4).to_vec();
    assert_eq!(
        ev,
        vec![Event {
            token: Token(9),
            ready: Ready::USER,
            payload: 42
        }]
    );
    t.join().unwrap();
}

#[test]
fn posts_coalesce_and_payloads_are_ored() {
    let kq = user_ring(8);
    let user = kq.add_user(Token(1), Flags::NONE).unwrap();
    for bit in 0..3 {
        kq.post(user, 1 << bit).unwrap();
    }
    assert_eq!(kq.front(), 1, "one registration sits in the ring once");
    let mut c = kq.consumer().unwrap();
    let ev = c.claim(8).to_vec();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].payload, 0b111);
}

#[test]
fn a_dispatched_registration_goes_to_no_second_consumer_until_commit() {
    let kq = user_ring(8);
    let user = kq.add_user(Token(1), Flags::NONE).unwrap();
    let mut a = kq.consumer().unwrap();
    let mut b = kq.consumer().unwrap();
    kq.post(user, 1).unwrap();
    assert_eq!(a.claim(8).len(), 1);
    kq.post(user, 2).unwrap();
    assert!(b.claim(8).is_empty(), "b must not see it while a holds it");
    assert!(a.claim(8).is_empty());
    a.commit(1);
    let ev = b.claim(8).to_vec();
    assert_eq!(ev.len(), 1, "re-armed on commit, then delivered");
    assert_eq!(ev[0].payload, 2);
}

#[test]
fn commit_frees_the_oldest_entries_first() {
    let kq = user_ring(4);
    let users: Vec<_> = (0..6)
        .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
        .collect();
    let mut c = kq.consumer().unwrap();
    for &u in &users[..4] {
        kq.post(u, 0).unwrap();
    }
    assert_eq!(c.claim(2).len(), 2);
    assert_eq!(c.held(), 2);
    kq.post(users[4], 0).unwrap();
    kq.post(users[5], 0).unwrap();
    c.commit(1);
    assert_eq!(c.held(), 1);
    // One slot came free: the oldest overflow entry moved in, FIFO.
    let ev = c.claim(8).to_vec();
    let tokens: Vec<usize> = ev.iter().map(|e| e.token.0).collect();
    assert_eq!(tokens, vec![2, 3, 4]);
    c.commit(4);
    assert_eq!(c.claim(8)[0].token, Token(5));
}

#[test]
fn a_full_ring_is_reported_as_full_and_loses_nothing() {
    let kq = user_ring(8);
    let users: Vec<_> = (0..1000)
        .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
        .collect();
    for &u in &users {
        kq.post(u, 0).unwrap();
    }
    let mut c = kq.consumer().unwrap();
    assert_eq!(c.claim(8).len(), 8);
    assert_eq!(
        c.wait(c.front(), 1, Duration::ZERO).unwrap(),
        WaitStatus::Full
    );
    c.commit(8);
    let mut seen = vec![false; 1000];
    for e in drain(&mut c, 992, Duration::from_secs(10)) {
        assert!(!seen[e.token.0], "token {} delivered twice", e.token.0);
        seen[e.token.0] = true;
    }
    assert_eq!(seen.iter().filter(|s| **s).count(), 992);
    assert!(kq.stats().overflowed >= 992);
}

#[test]
fn two_consumers_see_every_post_exactly_once() {
    let kq = user_ring(16);
    let n = 200usize;
    let users: Vec<_> = (0..n)
        .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
        .collect();
    let counts = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let total = Arc::new(AtomicUsize::new(0));
    let rounds = 50;
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (kq, counts, total) = (kq.clone(), counts.clone(), total.clone());
        threads.push(thread::spawn(move || {
            let mut c = kq.consumer().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while total.load(Ordering::SeqCst) < n * rounds && Instant::now() < deadline {
                let front = c.front();
                let events = c.claim(8).to_vec();
                if events.is_empty() {
                    c.wait(front, 1, Duration::from_millis(20)).unwrap();
                    continue;
                }
                for e in &events {
                    counts[e.token.0].fetch_add(e.payload.count_ones() as usize, Ordering::SeqCst);
                }
                let got: usize = events.iter().map(|e| e.payload.count_ones() as usize).sum();
                c.commit(events.len());
                total.fetch_add(got, Ordering::SeqCst);
            }
        }));
    }
    // Each round posts a distinct payload bit, so coalesced posts still
    // count exactly: a bit lost or duplicated shows in the totals.
    for round in 0..rounds {
        for &u in &users {
            kq.post(u, 1 << round).unwrap();
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    for (i, c) in counts.iter().enumerate() {
        assert_eq!(c.load(Ordering::SeqCst), rounds, "registration {i}");
    }
}

/// Starts `k` consumers that wait once, then report whether they woke.
type Sleeper = thread::JoinHandle<(WaitStatus, Duration, usize)>;

fn sleepers(kq: &Kevent, k: usize) -> (Vec<Sleeper>, Arc<Barrier>) {
    let barrier = Arc::new(Barrier::new(k + 1));
    let handles = (0..k)
        .map(|_| {
            let kq = kq.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = kq.consumer().unwrap();
                let seen = c.front();
                barrier.wait();
                let start = Instant::now();
                let status = c.wait(seen, 1, Duration::from_millis(600)).unwrap();
                let elapsed = start.elapsed();
                // Take what woke us, so the others' re-checks find nothing.
                let n = c.claim(8).len();
                c.commit(n);
                (status, elapsed, n)
            })
        })
        .collect();
    (handles, barrier)
}

#[test]
fn a_batch_wakes_one_sleeper() {
    let kq = user_ring(64);
    let users: Vec<_> = (0..5)
        .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
        .collect();
    let (handles, barrier) = sleepers(&kq, 3);
    barrier.wait();
    thread::sleep(Duration::from_millis(100));
    kq.post(users[0], 1).unwrap();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let early = results
        .iter()
        .filter(|r| r.1 < Duration::from_millis(400))
        .count();
    let claimed: usize = results.iter().map(|r| r.2).sum();
    assert_eq!(claimed, 1, "{results:?}");
    assert_eq!(
        early, 1,
        "one post wakes one sleeper; the others sleep on: {results:?}"
    );
}

#[test]
fn wakeup_all_wakes_every_sleeper() {
    let kq = user_ring(64);
    let shutdown = kq.add_user(Token(0), Flags::WAKEUP_ALL).unwrap();
    let (handles, barrier) = sleepers(&kq, 3);
    barrier.wait();
    thread::sleep(Duration::from_millis(100));
    kq.post(shutdown, 1).unwrap();
    for h in handles {
        let (status, elapsed, _) = h.join().unwrap();
        assert_eq!(status, WaitStatus::Ready);
        assert!(elapsed < Duration::from_millis(400), "woken, not timed out");
    }
}

#[test]
fn a_hinted_entry_wakes_and_goes_to_its_consumer_first() {
    let kq = user_ring(64);
    let hinted = kq.add_user(Token(5), Flags::NONE).unwrap();
    kq.set_hint(hinted, 2);
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..3)
        .map(|id| {
            let kq = kq.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut c = kq.consumer_for(id).unwrap();
                let seen = c.front();
                barrier.wait();
                let status = c.wait(seen, 1, Duration::from_millis(600)).unwrap();
                let got = c.claim(4).to_vec();
                c.commit(got.len());
                (id, status, got)
            })
        })
        .collect();
    barrier.wait();
    thread::sleep(Duration::from_millis(100));
    kq.post(hinted, 1).unwrap();
    for h in handles {
        let (id, status, got) = h.join().unwrap();
        if id == 2 {
            assert_eq!(status, WaitStatus::Ready);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].token, Token(5));
        } else {
            assert_eq!(
                status,
                WaitStatus::TimedOut,
                "consumer {id} should sleep on"
            );
            assert!(got.is_empty());
        }
    }
}

#[test]
fn a_hint_to_a_busy_consumer_never_delays_delivery() {
    let kq = user_ring(64);
    let hinted = kq.add_user(Token(5), Flags::NONE).unwrap();
    // Consumer 0 is attached but busy (never waits, never claims).
    let _busy = kq.consumer_for(0).unwrap();
    kq.set_hint(hinted, 0);
    let mut other = kq.consumer_for(1).unwrap();
    let seen = other.front();
    let kq2 = kq.clone();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        kq2.post(hinted, 1).unwrap();
    });
    assert_eq!(
        other.wait(seen, 1, Duration::from_secs(5)).unwrap(),
        WaitStatus::Ready
    );
    let got = other.claim(4).to_vec();
    assert_eq!(got.len(), 1, "the idle consumer takes the busy one's entry");
    t.join().unwrap();
}

#[test]
fn timers_fire_at_relative_and_absolute_deadlines_and_never_early() {
    let kq = user_ring(8);
    let start = Instant::now();
    kq.add_timer(Token(1), Duration::from_millis(40), Flags::NONE)
        .unwrap();
    kq.add_timer(Token(2), start + Duration::from_millis(20), Flags::NONE)
        .unwrap();
    let mut c = kq.consumer().unwrap();
    let first = drain(&mut c, 1, Duration::from_secs(5));
    assert_eq!(first[0].token, Token(2));
    assert!(start.elapsed() >= Duration::from_millis(20));
    let second = drain(&mut c, 1, Duration::from_secs(5));
    assert_eq!(second[0].token, Token(1));
    assert!(second[0].ready.contains(Ready::TIMER));
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn a_removed_or_reset_timer_fires_only_as_asked() {
    let kq = user_ring(8);
    let removed = kq
        .add_timer(Token(1), Duration::from_millis(10), Flags::NONE)
        .unwrap();
    let reset = kq
        .add_timer(Token(2), Duration::from_millis(10), Flags::NONE)
        .unwrap();
    kq.deregister(removed).unwrap();
    let start = Instant::now();
    kq.reset_timer(reset, Duration::from_millis(60)).unwrap();
    let mut c = kq.consumer().unwrap();
    let got = drain(&mut c, 2, Duration::from_millis(300));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].token, Token(2));
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert!(kq.deregister(removed).is_err(), "a stale key is an error");
}

#[test]
fn a_stale_entry_is_never_delivered() {
    let kq = user_ring(8);
    let user = kq.add_user(Token(1), Flags::NONE).unwrap();
    kq.post(user, 1).unwrap();
    kq.deregister(user).unwrap();
    let reused = kq.add_user(Token(2), Flags::NONE).unwrap();
    let mut c = kq.consumer().unwrap();
    assert!(c.claim(8).is_empty());
    kq.post(reused, 1).unwrap();
    assert_eq!(c.claim(8)[0].token, Token(2));
    assert_eq!(
        kq.post(user, 1).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
}

#[test]
fn consumer_slots_are_limited_and_reusable() {
    let kq = Kevent::new(
        Config::default()
            .max_consumers(2)
            .backend(Backend::UserSpace),
    )
    .unwrap();
    let a = kq.consumer().unwrap();
    let _b = kq.consumer().unwrap();
    assert!(kq.consumer().is_err());
    assert!(kq.consumer_for(a.id()).is_err());
    let id = a.id();
    drop(a);
    assert_eq!(kq.consumer_for(id).unwrap().id(), id);
}

#[test]
fn user_space_backend_refuses_file_descriptors_clearly() {
    let kq = user_ring(8);
    let err = kq
        .register_fd(0, Token(0), kevent_reactor::Interest::READABLE)
        .unwrap_err();
    assert!(err.to_string().contains("Backend::Mio"), "{err}");
}

#[test]
fn timers_stay_watched_when_the_watching_consumer_leaves_to_run() {
    // Two idle consumers park while a third runs (so neither sleeps in the
    // backend and both watch the timers). Each round one of them is woken
    // by work and stays away, as a worker stuck in a long task would; the
    // timer armed next must still fire, through the other one. A lost
    // watch never fires it at all.
    const WORK: Token = Token(1);
    const TICK: Token = Token(2);
    let kq = user_ring(64);
    let work = kq.add_user(WORK, Flags::NONE).unwrap();
    let mut busy = kq.consumer().unwrap();
    busy.set_harvests_while_busy(true);
    let _ = busy.claim(1); // running from now on, and never waiting
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Token)>();
    let resume: Vec<_> = (0..2).map(|_| std::sync::mpsc::channel::<bool>()).collect();
    let mut resumers = Vec::new();
    let mut idlers = Vec::new();
    for (i, (resume_tx, resume_rx)) in resume.into_iter().enumerate() {
        resumers.push(resume_tx);
        let (kq, tx) = (kq.clone(), tx.clone());
        idlers.push(thread::spawn(move || {
            let mut c = kq.consumer().unwrap();
            c.set_harvests_while_busy(true);
            loop {
                let front = c.front();
                let events = c.claim(8).to_vec();
                if events.is_empty() {
                    c.wait(front, 1, Timeout::NEVER).unwrap();
                    continue;
                }
                c.commit(events.len());
                for e in events {
                    tx.send((i, e.token)).unwrap();
                    // Work keeps us away until told to come back (or to stop).
                    if e.token == WORK && !resume_rx.recv().unwrap() {
                        return;
                    }
                }
            }
        }));
    }
    let patience = Duration::from_secs(5);
    for round in 0..100 {
        thread::sleep(Duration::from_millis(2));
        kq.post(work, round).unwrap();
        let (away, token) = rx.recv_timeout(patience).expect("work was not taken");
        assert_eq!(token, WORK);
        kq.add_timer(TICK, Duration::from_millis(2), Flags::NONE)
            .unwrap();
        let (fired_by, token) = rx
            .recv_timeout(patience)
            .unwrap_or_else(|_| panic!("round {round}: the timer never fired"));
        assert_eq!((fired_by, token), (1 - away, TICK));
        resumers[away].send(true).unwrap();
    }
    // Stop both: each is woken by work and told to return.
    for _ in 0..2 {
        kq.post(work, 0).unwrap();
        let (away, _) = rx.recv_timeout(patience).unwrap();
        resumers[away].send(false).unwrap();
    }
    for t in idlers {
        t.join().unwrap();
    }
}
