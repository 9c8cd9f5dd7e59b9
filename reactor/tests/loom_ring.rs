//! loom models of the ring's invariants (ARCHITECTURE.md, section 3; the
//! numbers below are its numbers), run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p kevent-reactor --test loom_ring`.
//!
//! They drive the public API on the user-space backend, whose sleep is a
//! loom condition variable, so loom explores every interleaving of
//! publishing, claiming, committing, sleeping and waking. A lost wakeup shows
//! up as a deadlock, which loom reports as a failure.
#![cfg(loom)]

use kevent_reactor::{Backend, Config, Consumer, Flags, Kevent, Timeout, Token, WaitStatus};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

fn ring(capacity: usize) -> Kevent {
    Kevent::new(
        Config::default()
            .capacity(capacity)
            .max_consumers(2)
            .backend(Backend::UserSpace),
    )
    .unwrap()
}

/// Claims and commits everything there is now; returns the tokens.
fn take_all(c: &mut Consumer) -> Vec<usize> {
    let mut got = Vec::new();
    loop {
        let events = c.claim(8).to_vec();
        if events.is_empty() {
            return got;
        }
        got.extend(events.iter().map(|e| e.token.0));
        c.commit(events.len());
    }
}

/// Invariant 1: an event posted while the only consumer goes to sleep
/// wakes it (the model deadlocks otherwise).
#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let kq = ring(2);
        let user = kq.add_user(Token(1), Flags::NONE).unwrap();
        let mut c = kq.consumer().unwrap();
        let poster = {
            let kq = kq.clone();
            thread::spawn(move || kq.post(user, 1).unwrap())
        };
        let mut got = Vec::new();
        while got.is_empty() {
            let seen = c.front();
            got = take_all(&mut c);
            if got.is_empty() {
                assert_eq!(c.wait(seen, 1, Timeout::NEVER).unwrap(), WaitStatus::Ready);
            }
        }
        assert_eq!(got, vec![1]);
        poster.join().unwrap();
    });
}

/// Invariant 2: with two consumers claiming concurrently, each entry is
/// consumed exactly once.
#[test]
fn exactly_once_with_two_consumers() {
    loom::model(|| {
        let kq = ring(4);
        let a = kq.add_user(Token(0), Flags::NONE).unwrap();
        let b = kq.add_user(Token(1), Flags::NONE).unwrap();
        let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let other = {
            let (kq, counts) = (kq.clone(), counts.clone());
            thread::spawn(move || {
                let mut c = kq.consumer().unwrap();
                for t in take_all(&mut c) {
                    counts[t].fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        kq.post(a, 1).unwrap();
        kq.post(b, 1).unwrap();
        let mut c = kq.consumer().unwrap();
        for t in take_all(&mut c) {
            counts[t].fetch_add(1, Ordering::SeqCst);
        }
        other.join().unwrap();
        // What the other consumer may have left behind is still there.
        for t in take_all(&mut c) {
            counts[t].fetch_add(1, Ordering::SeqCst);
        }
        assert_eq!(counts[0].load(Ordering::SeqCst), 1);
        assert_eq!(counts[1].load(Ordering::SeqCst), 1);
    });
}

/// Commit ordering: a commit by one consumer never frees a slot another
/// consumer still holds, and entries that found the ring full come in, in
/// order, as slots are committed.
#[test]
fn commit_never_frees_a_slot_another_consumer_holds() {
    loom::model(|| {
        let kq = ring(2);
        let keys: Vec<_> = (0..3)
            .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
            .collect();
        kq.post(keys[0], 1).unwrap();
        kq.post(keys[1], 1).unwrap();
        let mut a = kq.consumer().unwrap();
        assert_eq!(a.claim(1)[0].token, Token(0));
        let b_thread = {
            let kq = kq.clone();
            thread::spawn(move || {
                let mut b = kq.consumer().unwrap();
                let got: Vec<usize> = b.claim(1).iter().map(|e| e.token.0).collect();
                b.commit(got.len());
                got
            })
        };
        kq.post(keys[2], 1).unwrap();
        let b_got = b_thread.join().unwrap();
        assert_eq!(b_got, vec![1]);
        // Slot of entry 0 is still held by `a`: entry 2 must not have
        // overwritten it.
        assert!(a.claim(4).is_empty() || a.held() == 2);
        a.commit(a.held());
        let rest = take_all(&mut a);
        assert_eq!(rest, vec![2]);
    });
}

/// Invariant 3: a ring smaller than the number of ready registrations,
/// filled from two threads at once, loses nothing and duplicates nothing.
#[test]
fn nothing_lost_when_the_ring_is_smaller_than_the_ready_set() {
    loom::model(|| {
        let kq = ring(2);
        let keys: Vec<_> = (0..3)
            .map(|i| kq.add_user(Token(i), Flags::NONE).unwrap())
            .collect();
        let poster = {
            let (kq, k) = (kq.clone(), keys[2]);
            thread::spawn(move || kq.post(k, 1).unwrap())
        };
        kq.post(keys[0], 1).unwrap();
        kq.post(keys[1], 1).unwrap();
        let mut c = kq.consumer().unwrap();
        let mut got = take_all(&mut c);
        poster.join().unwrap();
        got.extend(take_all(&mut c));
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    });
}

/// Invariant 4: one event posted while two consumers sleep wakes at most
/// one of them; a WAKEUP_ALL event then wakes the rest.
#[test]
fn one_event_wakes_one_sleeper() {
    loom::model(|| {
        let kq = ring(4);
        let one = kq.add_user(Token(1), Flags::NONE).unwrap();
        let all = kq.add_user(Token(2), Flags::WAKEUP_ALL).unwrap();
        // Seen before any post: a consumer that starts late returns at once.
        let seen = kq.front();
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let kq = kq.clone();
                thread::spawn(move || {
                    let mut c = kq.consumer().unwrap();
                    c.wait(seen, 1, Timeout::NEVER).unwrap();
                    let n = c.claim(4).len();
                    c.commit(n);
                })
            })
            .collect();
        kq.post(one, 1).unwrap();
        let woken = kq.stats().wakeups;
        assert!(woken <= 1, "one event woke {woken} consumers");
        kq.post(all, 1).unwrap();
        for s in sleepers {
            s.join().unwrap();
        }
    });
}

/// Consumers that harvest while busy (the runtime's workers): one that
/// takes the role while the other runs parks instead of sleeping in the
/// backend (HARVESTING becomes SLEEPING). A broadcast racing with that
/// change must still reach it, and with the other consumer parked the same
/// way; a lost wakeup shows up as a deadlock.
#[test]
fn busy_harvesters_park_without_losing_a_wakeup() {
    loom::model(|| {
        let kq = ring(4);
        let all = kq.add_user(Token(2), Flags::WAKEUP_ALL).unwrap();
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let waiting = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (kq, done, waiting) = (kq.clone(), done.clone(), waiting.clone());
                let mut c = kq.consumer().unwrap();
                c.set_harvests_while_busy(true);
                thread::spawn(move || loop {
                    let seen = c.front();
                    let got = take_all(&mut c);
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    if got.is_empty() {
                        waiting.fetch_add(1, Ordering::SeqCst);
                        c.wait(seen, 1, Timeout::NEVER).unwrap();
                    }
                })
            })
            .collect();
        // Broadcast once both are on their way to sleep (each may be
        // anywhere in `wait`).
        while waiting.load(Ordering::SeqCst) < 2 {
            thread::yield_now();
        }
        done.store(true, Ordering::SeqCst);
        kq.post(all, 1).unwrap();
        for c in consumers {
            c.join().unwrap();
        }
    });
}

/// Readiness the OS reports is seen by whoever polls the backend: when a
/// busy consumer goes idle while another one is parked in its place, one of
/// them must end up sleeping in the backend (the model deadlocks otherwise:
/// both parked, the event never read).
#[test]
fn an_os_event_is_read_after_the_busy_consumer_goes_idle() {
    loom::model(|| {
        let kq = ring(4);
        let os = kq.add_user(Token(3), Flags::NONE).unwrap();
        let all = kq.add_user(Token(2), Flags::WAKEUP_ALL).unwrap();
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let mut busy = kq.consumer().unwrap();
        busy.set_harvests_while_busy(true);
        // Running from now on: its claim marks it so.
        assert!(busy.claim(1).is_empty());
        let mut idle = kq.consumer().unwrap();
        idle.set_harvests_while_busy(true);
        let consumers: Vec<_> = [busy, idle]
            .into_iter()
            .map(|mut c| {
                let (kq, done) = (kq.clone(), done.clone());
                thread::spawn(move || loop {
                    let seen = c.front();
                    let got = take_all(&mut c);
                    if got.contains(&3) {
                        done.store(true, Ordering::SeqCst);
                        kq.post(all, 1).unwrap();
                    }
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    if got.is_empty() {
                        c.wait(seen, 1, Timeout::NEVER).unwrap();
                    }
                })
            })
            .collect();
        kq.inject_os_event(os, kevent_reactor::Ready::READABLE);
        for c in consumers {
            c.join().unwrap();
        }
    });
}
