//! Feature `tokio-compat`: tokio's runtime calls (`tokio::time`,
//! `tokio::spawn`, `tokio::task::spawn_blocking`, `tokio::net`) from kevent
//! tasks, blocking threads and `block_on`, and tokio's io traits on
//! kevent's streams. Loopback only.

use std::time::{Duration, Instant};

use kevent::runtime::{Builder, Runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn multi() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn current() -> Runtime {
    Builder::new_current_thread().build().unwrap()
}

/// Every runtime flavor the tests run on.
fn runtimes() -> [Runtime; 2] {
    [multi(), current()]
}

#[test]
fn tokio_sleep_timeout_and_interval_work_in_a_kevent_task() {
    for rt in runtimes() {
        let elapsed = rt.block_on(async {
            kevent::spawn(async {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let slept = start.elapsed();
                let timed_out =
                    tokio::time::timeout(Duration::from_millis(10), std::future::pending::<()>())
                        .await;
                assert!(timed_out.is_err(), "tokio::time::timeout fired");
                let mut ticks = tokio::time::interval(Duration::from_millis(5));
                for _ in 0..3 {
                    ticks.tick().await;
                }
                slept
            })
            .await
            .unwrap()
        });
        assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

#[test]
fn tokio_sleep_works_directly_in_block_on() {
    for rt in runtimes() {
        let start = Instant::now();
        // Created inside `block_on`: as on tokio, creating a tokio sleep
        // needs the runtime's context.
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
        assert!(start.elapsed() >= Duration::from_millis(10));
    }
}

#[test]
fn tokio_spawn_from_a_kevent_task_runs_on_tokios_thread() {
    for rt in runtimes() {
        let (value, thread) = rt.block_on(async {
            kevent::spawn(async {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    (42, std::thread::current().name().map(str::to_owned))
                })
                .await
                .unwrap()
            })
            .await
            .unwrap()
        });
        assert_eq!(value, 42);
        assert_eq!(thread.as_deref(), Some("kevent-worker-tokio"));
    }
}

#[test]
fn tokio_spawn_blocking_from_a_kevent_task() {
    let rt = multi();
    let got = rt.block_on(async {
        kevent::spawn(async { tokio::task::spawn_blocking(|| 6 * 7).await.unwrap() })
            .await
            .unwrap()
    });
    assert_eq!(got, 42);
}

#[test]
fn kevent_blocking_threads_see_tokios_runtime() {
    let rt = multi();
    let found = rt.block_on(async {
        kevent::task::spawn_blocking(|| tokio::runtime::Handle::try_current().is_ok())
            .await
            .unwrap()
    });
    assert!(
        found,
        "tokio's handle is entered on kevent's blocking threads"
    );
}

#[test]
fn tokio_net_echo_inside_kevent_tasks() {
    for rt in runtimes() {
        let echoed = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = kevent::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            });
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).await.unwrap();
            server.await.unwrap();
            buf
        });
        assert_eq!(&echoed, b"hello");
    }
}

/// The panic message of a task that failed.
fn panic_message(err: kevent::task::JoinError) -> String {
    assert!(err.is_panic(), "{err}");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn without_the_switch_tokio_calls_panic_with_tokios_message() {
    let rt = Builder::new_multi_thread()
        .worker_threads(1)
        .tokio_compat(false)
        .build()
        .unwrap();
    let (sleep, spawn) = rt.block_on(async {
        let sleep = kevent::spawn(async { tokio::time::sleep(Duration::from_millis(1)).await });
        let spawn = kevent::spawn(async { drop(tokio::spawn(async {})) });
        (sleep.await.unwrap_err(), spawn.await.unwrap_err())
    });
    for msg in [panic_message(sleep), panic_message(spawn)] {
        eprintln!("tokio call without the switch: {msg}");
        assert!(
            msg.contains("must be called from the context of a Tokio 1.x runtime"),
            "{msg}"
        );
    }
}

#[test]
fn pending_tokio_timers_and_tasks_do_not_hold_up_shutdown() {
    let rt = multi();
    rt.block_on(async {
        kevent::spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
        tokio::spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
    });
    let start = Instant::now();
    drop(rt);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn tokio_io_traits_on_kevent_tcp_streams_and_their_halves() {
    for rt in runtimes() {
        rt.block_on(async {
            let listener = kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = kevent::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                // The whole stream, through tokio's extension traits.
                let mut buf = [0u8; 4];
                AsyncReadExt::read_exact(&mut s, &mut buf).await.unwrap();
                AsyncWriteExt::write_all(&mut s, &buf).await.unwrap();
                // Owned halves.
                let (mut r, mut w) = s.into_split();
                let mut buf = [0u8; 4];
                AsyncReadExt::read_exact(&mut r, &mut buf).await.unwrap();
                AsyncWriteExt::write_all(&mut w, &buf).await.unwrap();
                AsyncWriteExt::shutdown(&mut w).await.unwrap();
            });
            let mut c = kevent::net::TcpStream::connect(addr).await.unwrap();
            AsyncWriteExt::write_all(&mut c, b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            AsyncReadExt::read_exact(&mut c, &mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            // Borrowed halves.
            let (mut r, mut w) = c.split();
            AsyncWriteExt::write_all(&mut w, b"pong").await.unwrap();
            let mut rest = Vec::new();
            AsyncReadExt::read_to_end(&mut r, &mut rest).await.unwrap();
            assert_eq!(rest, b"pong", "echo, then end of stream after the shutdown");
            server.await.unwrap();
        });
    }
}

#[test]
fn tokio_io_traits_on_kevent_unix_streams() {
    for rt in runtimes() {
        rt.block_on(async {
            let (mut a, b) = kevent::net::UnixStream::pair().unwrap();
            let (mut r, mut w) = b.into_split();
            AsyncWriteExt::write_all(&mut a, b"over unix")
                .await
                .unwrap();
            let mut buf = [0u8; 9];
            AsyncReadExt::read_exact(&mut r, &mut buf).await.unwrap();
            AsyncWriteExt::write_all(&mut w, &buf).await.unwrap();
            let mut back = [0u8; 9];
            AsyncReadExt::read_exact(&mut a, &mut back).await.unwrap();
            assert_eq!(&back, b"over unix");
        });
    }
}

#[test]
fn tokio_io_traits_and_two_step_seek_on_kevent_files() {
    use std::io::SeekFrom;
    use std::pin::Pin;
    use tokio::io::{AsyncSeek, AsyncSeekExt};

    let path = std::env::temp_dir().join(format!("kevent-tokio-seek-{}", std::process::id()));
    for rt in runtimes() {
        rt.block_on(async {
            let mut f = kevent::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .await
                .unwrap();
            // tokio's AsyncWriteExt / AsyncSeekExt / AsyncReadExt.
            AsyncWriteExt::write_all(&mut f, b"0123456789")
                .await
                .unwrap();
            AsyncWriteExt::flush(&mut f).await.unwrap();
            assert_eq!(
                AsyncSeekExt::seek(&mut f, SeekFrom::Start(3))
                    .await
                    .unwrap(),
                3
            );
            let mut three = [0u8; 3];
            AsyncReadExt::read_exact(&mut f, &mut three).await.unwrap();
            assert_eq!(&three, b"345");
            // Relative to where the reader is, not past its read-ahead.
            assert_eq!(f.stream_position().await.unwrap(), 6);

            // The two steps by hand: a second start before completing is
            // refused; completing with none started tells the position.
            Pin::new(&mut f).start_seek(SeekFrom::End(-2)).unwrap();
            let again = Pin::new(&mut f).start_seek(SeekFrom::Start(0));
            assert!(again.is_err(), "a seek was already in progress");
            let pos = std::future::poll_fn(|cx| Pin::new(&mut f).poll_complete(cx))
                .await
                .unwrap();
            assert_eq!(pos, 8);
            let pos = std::future::poll_fn(|cx| Pin::new(&mut f).poll_complete(cx))
                .await
                .unwrap();
            assert_eq!(pos, 8, "nothing started: the position");
            let mut rest = String::new();
            AsyncReadExt::read_to_string(&mut f, &mut rest)
                .await
                .unwrap();
            assert_eq!(rest, "89");
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// kevent's paused clock is kevent's only: a tokio timer called from a
/// kevent task runs on tokio's clock, in real time, and while it is
/// pending kevent's runtime has no work of its own, so its paused clock
/// jumps to its next timer. A kevent `timeout` around a tokio sleep then
/// fires at once. (README, "Using the tokio ecosystem": tests that pause
/// the clock should use kevent's timers.)
#[test]
fn tokio_timers_keep_real_time_under_kevents_paused_clock() {
    let rt = Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let real = Instant::now();
        let paused = kevent::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(real.elapsed() >= Duration::from_millis(100));
        assert_eq!(paused.elapsed(), Duration::ZERO, "kevent's clock moved");

        let real = Instant::now();
        let outer = kevent::time::timeout(
            Duration::from_secs(3600),
            tokio::time::sleep(Duration::from_secs(30)),
        )
        .await;
        assert!(
            outer.is_err(),
            "kevent's paused clock waited for tokio's timer"
        );
        assert!(real.elapsed() < Duration::from_secs(30));
    });
}
