//! `kevent::net` TCP failures: resets, refused connections, taken
//! addresses, misuse outside a runtime. Every test runs under each runtime
//! flavor (see `net_support::each_flavor`).

mod net_support;

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::net::{TcpListener, TcpStream};
use net_support::each_flavor;
use net_support::tcp::{closed_addr, listener, pair};

#[test]
fn peer_reset_fails_the_pending_read_and_later_writes() {
    each_flavor(|| async {
        let (client, server) = pair().await;
        client.set_linger(Some(Duration::ZERO)).unwrap();
        let server = Arc::new(server);
        let s = server.clone();
        // The read is already waiting when the reset arrives.
        let reader = kevent::spawn(async move {
            let mut buf = [0; 16];
            (&*s).read(&mut buf).await
        });
        kevent::time::sleep(Duration::from_millis(20)).await;
        drop(client); // linger 0: close sends RST
        match reader.await.unwrap() {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
            Ok(n) => assert_eq!(n, 0, "read data from a reset connection"),
        }
        let mut server = Arc::try_unwrap(server).unwrap();
        let mut writes = 0;
        let err = loop {
            match server.write_all(&[7; 1024]).await {
                Ok(()) => writes += 1,
                Err(e) => break e,
            }
            assert!(
                writes < 10_000,
                "writes to a reset connection kept succeeding"
            );
        };
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "unexpected write error {err:?}"
        );
    });
}

#[test]
fn unread_data_at_close_resets_the_peer() {
    each_flavor(|| async {
        let (client, mut server) = pair().await;
        server.write_all(b"never read").await.unwrap();
        client.readable().await.unwrap();
        // Closing with unread data sends RST instead of FIN.
        drop(client);
        let mut buf = [0; 16];
        let mut result = server.read(&mut buf).await;
        // The RST can race the first read: a second one must fail or EOF.
        if let Ok(n) = result {
            assert_eq!(n, 0);
            result = server.read(&mut buf).await;
        }
        match result {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            Ok(n) => assert_eq!(n, 0),
        }
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    each_flavor(|| async {
        let addr = closed_addr().await;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
}

#[test]
fn bind_to_a_taken_address_fails_with_addr_in_use() {
    each_flavor(|| async {
        let l = listener().await;
        let err = TcpListener::bind(l.local_addr().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn creating_a_socket_outside_a_runtime_panics_with_advice() {
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let panic = std::panic::catch_unwind(move || TcpListener::from_std(std_listener))
        .expect_err("registered a socket without a runtime");
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("runtime"), "unhelpful panic message: {msg:?}");
}
