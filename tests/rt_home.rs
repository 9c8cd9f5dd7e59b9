//! The ring's home worker (io_uring, by default at 2 workers): worker 0 submits
//! every request to the shared ring and is the one that sleeps in it, so
//! the kernel's completion work for a socket never wakes another worker
//! that is parked (ARCHITECTURE.md, "One home for the ring's requests").
//! The default; `KEVENT_HOME_WORKER=0` turns it off (CI runs the suite
//! that way too, and this test then checks nothing).

use std::io::{Read, Write};
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::TcpListener;
use kevent::runtime::Builder;

/// Voluntary context switches of the process's thread named `name`.
fn voluntary_switches(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        return status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok());
    }
    None
}

/// Light load, as a service idles between requests: echo round trips on
/// 8 connections, one at a time with a pause between. With a home, each
/// request's completion wakes the home worker, which runs the handler
/// itself; the other worker stays parked. Without one, the other worker
/// owns about half of the sockets and is woken for each of their requests
/// (and goes back to sleep while the harvester takes the event).
#[test]
fn a_parked_worker_is_not_woken_for_the_completions_of_light_load() {
    if std::env::var_os("KEVENT_HOME_WORKER").is_some_and(|v| v == "0") {
        return; // no home: nothing to check
    }
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if rt.handle().metrics().backend != "io_uring" {
        return; // readiness backends have one waiter already
    }
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            kevent::spawn(async move {
                let mut buf = [0u8; 8];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut conns: Vec<_> = (0..8)
        .map(|_| {
            let s = std::net::TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    let trip = |c: &mut std::net::TcpStream, n: u64| {
        c.write_all(&n.to_le_bytes()).unwrap();
        let mut back = [0u8; 8];
        c.read_exact(&mut back).unwrap();
        assert_eq!(u64::from_le_bytes(back), n);
    };
    // Warm up: every connection accepted, armed and answered.
    for (i, c) in conns.iter_mut().enumerate() {
        trip(c, i as u64);
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = voluntary_switches("kevent-worker-1").expect("worker 1's thread");
    let trips = 1000;
    for n in 0..trips {
        let c = &mut conns[n % 8];
        trip(c, n as u64);
        std::thread::sleep(Duration::from_micros(200));
    }
    let woken = voluntary_switches("kevent-worker-1").unwrap() - before;
    eprintln!("worker 1 switched out {woken} times in {trips} round trips");
    assert!(
        woken * 5 <= trips as u64,
        "worker 1 switched out {woken} times in {trips} round trips"
    );
}
