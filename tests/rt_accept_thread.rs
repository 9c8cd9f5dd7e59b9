//! The thread that builds a runtime and runs an accept loop in `block_on`,
//! as `#[kevent::main]` does, is no ring consumer: the kernel's completion
//! work for the ring's requests must not run on it (io_uring runs a
//! request's completion work on the thread that submitted it). The
//! listeners' poll is therefore submitted by a worker (ARCHITECTURE.md,
//! "Registering"); submitted by the building thread, every new connection
//! woke that thread twice, once for the completion work and once for the
//! accept.

use std::time::Duration;

use kevent::net::TcpListener;
use kevent::runtime::Builder;

/// Voluntary context switches of the calling thread.
fn my_voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn the_accepting_thread_sleeps_about_once_per_connection() {
    const CONNECTIONS: u64 = 300;
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let per_connection = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // One connection at a time, with a pause, so that this thread is
        // parked in `block_on` whenever the next one arrives.
        let client = std::thread::spawn(move || {
            for _ in 0..CONNECTIONS {
                let s = std::net::TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                drop(s);
            }
        });
        let before = my_voluntary_switches();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        }
        let after = my_voluntary_switches();
        client.join().unwrap();
        (after - before) as f64 / CONNECTIONS as f64
    });
    eprintln!("the accepting thread slept {per_connection:.2} times per connection");
    // At least once (it waits for each connection); twice when the
    // listeners' completion work runs on it.
    assert!(
        per_connection < 1.5,
        "the accepting thread slept {per_connection:.2} times per connection"
    );
}
