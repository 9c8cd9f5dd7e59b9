//! `kevent::hyper::Timer`, the timer hyper uses for its header-read
//! timeouts: a sleep takes its runtime at its first poll, so one made and
//! dropped unpolled (hyper's timeout for a request whose head was already
//! buffered) touches no runtime; once polled it behaves as
//! `kevent::time::sleep`, resets included.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{ms, Flavor};
use futures::poll;
use hyper::rt::Timer as _;
use kevent::hyper::Timer;

#[test]
fn a_timeout_made_and_dropped_unpolled_needs_no_runtime() {
    // No runtime on this thread: making, moving and dropping must not look
    // for one.
    let timer = Timer::new();
    let mut s = timer.sleep(Duration::from_secs(5));
    timer.reset(&mut s, Instant::now() + Duration::from_secs(10));
    drop(s);
    drop(timer.sleep_until(Instant::now() + Duration::from_secs(1)));
}

#[test]
#[should_panic(expected = "no kevent runtime")]
fn a_timeout_polled_outside_a_runtime_panics_with_the_reason() {
    let timer = Timer::new();
    futures::executor::block_on(timer.sleep(ms(1)));
}

rt_test!(a_reset_before_the_first_poll_moves_the_deadline);
async fn a_reset_before_the_first_poll_moves_the_deadline(_: Flavor) {
    let timer = Timer::new();
    // Later: not before the new deadline.
    let start = Instant::now();
    let mut s = timer.sleep(ms(5));
    timer.reset(&mut s, start + ms(60));
    s.await;
    let took = start.elapsed();
    assert!(
        took >= ms(60),
        "fired after {took:?}, before its reset deadline"
    );
    // Earlier: well before the old one.
    let start = Instant::now();
    let mut s = timer.sleep(Duration::from_secs(30));
    timer.reset(&mut s, start + ms(20));
    s.await;
    let took = start.elapsed();
    assert!(took >= ms(20), "fired after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the reset did not move it: {took:?}"
    );
}

rt_test!(a_polled_timeout_resets_like_a_sleep);
async fn a_polled_timeout_resets_like_a_sleep(_: Flavor) {
    let timer = Timer::new();
    let start = Instant::now();
    let mut s = timer.sleep(Duration::from_secs(30));
    assert!(poll!(s.as_mut()).is_pending());
    // Earlier than the armed deadline.
    timer.reset(&mut s, start + ms(30));
    assert!(poll!(s.as_mut()).is_pending());
    s.as_mut().await;
    let took = start.elapsed();
    assert!(took >= ms(30), "fired after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the reset did not move it: {took:?}"
    );
    // Fired, then moved again: waits again.
    let again = Instant::now();
    timer.reset(&mut s, again + ms(25));
    assert!(poll!(s.as_mut()).is_pending());
    s.await;
    assert!(again.elapsed() >= ms(25));
}

rt_test!(many_timeouts_dropped_unpolled_leave_polled_ones_working);
async fn many_timeouts_dropped_unpolled_leave_polled_ones_working(_: Flavor) {
    let timer = Timer::new();
    let start = Instant::now();
    let waited = timer.sleep(ms(40));
    for _ in 0..10_000 {
        drop(timer.sleep(ms(1)));
    }
    waited.await;
    assert!(start.elapsed() >= ms(40));
}

/// hyper reads the time for its deadlines from `Timer::now`: on a paused
/// clock that must be the runtime's clock, as the sleeps it makes run on
/// it. Here the clock is an hour ahead of the machine's; a deadline taken
/// from the machine's clock would be an hour in the past, and the
/// connection would fail its header-read timeout at the first poll,
/// before the client had sent anything.
#[kevent::test(start_paused = true)]
async fn hypers_deadlines_follow_the_paused_clock() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use kevent::io::{AsyncReadExt, AsyncWriteExt};
    use kevent::net::{TcpListener, TcpStream};

    kevent::time::advance(Duration::from_secs(3600)).await;
    let timer = Timer::new();
    let ahead = timer.now() - Instant::now();
    assert!(
        ahead >= Duration::from_secs(3599),
        "Timer::now is {ahead:?} ahead of the machine's clock, not the paused clock's hour"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = futures::channel::oneshot::channel();
    let server = kevent::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(Timer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(
                stream,
                hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                }),
            );
        let mut conn = std::pin::pin!(conn);
        // The first poll finds no request yet and arms the header timer.
        let first = futures::poll!(conn.as_mut());
        let _ = accepted_tx.send(first.is_pending());
        conn.await
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    let pending = accepted_rx.await.unwrap();
    assert!(
        pending,
        "the connection ended at its first poll (header-read timeout)"
    );
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "got {response:?}");
    server.await.unwrap().unwrap();
}
