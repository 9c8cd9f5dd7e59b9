//! Accept errors reach the caller and leave the listener usable. Its own
//! test binary (so its own process): it exhausts the file-descriptor table.

mod net_support;

use std::fs::File;

use kevent::net::{TcpListener, TcpStream};
use net_support::each_flavor;

/// `EMFILE` on Linux and the BSDs.
const EMFILE: i32 = 24;

#[test]
fn accept_reports_emfile_and_the_listener_recovers() {
    each_flavor(|| async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // The kernel completes these handshakes into the backlog; only
        // `accept` needs a new descriptor.
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();

        let mut hog = Vec::new();
        loop {
            match File::open("/dev/null") {
                Ok(f) => hog.push(f),
                Err(e) if e.raw_os_error() == Some(EMFILE) => break,
                Err(e) => panic!("unexpected error exhausting descriptors: {e}"),
            }
            if hog.len() > 500_000 {
                eprintln!("descriptor limit too high to exhaust; skipping");
                return;
            }
        }
        for _ in 0..2 {
            let err = l.accept().await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(EMFILE), "{err}");
        }
        drop(hog);
        let (_s1, p1) = l.accept().await.unwrap();
        let (_s2, p2) = l.accept().await.unwrap();
        assert_ne!(p1, p2);
    });
}
