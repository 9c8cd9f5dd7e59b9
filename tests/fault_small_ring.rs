//! The ring smaller than the ready set: a runtime whose ring has 8 slots,
//! 1 000 sockets each with a task waiting to read, and data plus EOF
//! written to all of them at once from a thread outside the runtime. Every
//! task must read all of its data and its EOF: readiness that finds the
//! ring full waits in overflow and is never lost. Runs under each flavor,
//! on mio and, where the kernel allows it, on io_uring.

#[macro_use]
mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, ms, Flavor};
use kevent::io::AsyncReadExt;
use kevent::net::TcpStream;
use kevent::runtime::{Backend, Runtime};

/// Sockets made readable at once.
const SOCKETS: usize = 1_000;
/// Ring slots: far fewer than the ready sockets.
const RING: usize = 8;
/// Bytes written to each socket.
const MESSAGE: usize = 24;

/// The message for socket `i`.
fn message(i: usize) -> Vec<u8> {
    let tag = (i as u32).to_le_bytes();
    (0..MESSAGE)
        .map(|k| tag[k % 4].wrapping_add(k as u8))
        .collect()
}

/// `SOCKETS` connected pairs made with std (accepted one by one, so the
/// listen backlog never overflows).
fn std_pairs() -> Vec<(StdStream, StdStream)> {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (0..SOCKETS)
        .map(|_| {
            let c = StdStream::connect(addr).unwrap();
            let (s, _) = l.accept().unwrap();
            (c, s)
        })
        .collect()
}

/// Builds `flavor` with an 8-slot ring on `backend`; `None` if the
/// backend is refused (io_uring on a kernel without it).
fn build(flavor: Flavor, backend: Backend) -> Option<Runtime> {
    match flavor
        .builder()
        .ring_capacity(RING)
        .backend(backend)
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) if backend == Backend::Uring => {
            eprintln!("io_uring refused ({e}); skipping the io_uring run");
            None
        }
        Err(e) => panic!("building {flavor:?} on {backend:?}: {e}"),
    }
}

fn every_socket_of_a_burst_is_read(flavor: Flavor, backend: Backend) {
    let Some(rt) = build(flavor, backend) else {
        return;
    };
    let (clients, servers): (Vec<_>, Vec<_>) = std_pairs().into_iter().unzip();
    let waiting = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = servers
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let waiting = waiting.clone();
            rt.spawn(async move {
                let mut s = TcpStream::from_std(s).unwrap();
                waiting.fetch_add(1, SeqCst);
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.map(|_| (i, got))
            })
        })
        .collect();
    rt.block_on(async {
        eventually("every reader waits", Duration::from_secs(10), || {
            waiting.load(SeqCst) == SOCKETS
        })
        .await;
        // Let each reader reach its pending read.
        kevent::time::sleep(ms(50)).await;
    });
    let before = rt.handle().metrics();
    // From outside the runtime, as fast as possible: data, then EOF.
    let writer = std::thread::spawn(move || {
        for (i, mut c) in clients.iter().enumerate() {
            c.write_all(&message(i)).unwrap();
        }
        for c in &clients {
            c.shutdown(Shutdown::Write).unwrap();
        }
        clients
    });
    let results = rt.block_on(async {
        let mut results = Vec::with_capacity(SOCKETS);
        for r in readers {
            results.push(
                kevent::time::timeout(Duration::from_secs(20), r)
                    .await
                    .expect("a reader never saw its data or its EOF (readiness lost?)")
                    .unwrap(),
            );
        }
        results
    });
    let _clients = writer.join().unwrap();
    for r in results {
        let (i, got) = r.expect("read");
        assert_eq!(got, message(i), "socket {i} read the wrong bytes");
    }
    let after = rt.handle().metrics();
    let overflowed = after.ring_overflowed - before.ring_overflowed;
    eprintln!(
        "{flavor:?} on {}: ring entries published {}, overflowed {overflowed}",
        after.backend,
        after.ring_published - before.ring_published,
    );
    // Otherwise this test did not test what it says.
    assert!(
        overflowed > 0,
        "the burst never filled the {RING}-slot ring"
    );
}

rt_test_sync!(every_socket_of_a_burst_is_read_through_an_8_slot_ring_on_mio);
fn every_socket_of_a_burst_is_read_through_an_8_slot_ring_on_mio(flavor: Flavor) {
    every_socket_of_a_burst_is_read(flavor, Backend::Mio);
}

rt_test_sync!(every_socket_of_a_burst_is_read_through_an_8_slot_ring_on_uring);
fn every_socket_of_a_burst_is_read_through_an_8_slot_ring_on_uring(flavor: Flavor) {
    every_socket_of_a_burst_is_read(flavor, Backend::Uring);
}
