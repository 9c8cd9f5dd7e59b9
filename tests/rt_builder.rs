//! `runtime::Builder`: worker count (argument and `KEVENT_WORKERS`),
//! thread names, the tokio-compatible `enable_*` calls, backends, and the
//! blocking pool's settings.
//!
//! Environment variables are read at `build()`, and setting them in this
//! process would race with the other tests, so those cases re-run this
//! test binary as a child (`child_process_probe`) with the variable set.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{eventually, ms, watchdog, Flavor};
use kevent::runtime::{Backend, Builder, Handle};
use kevent::time::sleep;

// ---------------------------------------------------------------- workers

rt_test_sync!(worker_threads_sets_the_worker_count);
fn worker_threads_sets_the_worker_count(flavor: Flavor) {
    let rt = flavor.build();
    assert_eq!(rt.handle().metrics().num_workers(), flavor.workers());
    let inside = rt.block_on(async { Handle::current().metrics().num_workers() });
    assert_eq!(inside, flavor.workers());
}

#[test]
fn current_thread_has_one_worker_whatever_worker_threads_says() {
    watchdog(|| {
        let rt = Builder::new_current_thread()
            .worker_threads(4)
            .build()
            .unwrap();
        assert_eq!(rt.handle().metrics().num_workers(), 1);
        assert_eq!(
            rt.block_on(async { kevent::spawn(async { 2 }).await })
                .unwrap(),
            2
        );
    });
}

#[test]
#[should_panic(expected = "greater than 0")]
fn worker_threads_zero_panics() {
    Builder::new_multi_thread().worker_threads(0);
}

rt_test_sync!(thread_name_names_the_worker_threads: multi_thread_1, multi_thread_2, multi_thread_4);
fn thread_name_names_the_worker_threads(flavor: Flavor) {
    let rt = flavor
        .builder()
        .thread_name("my-pool")
        .enable_all()
        .build()
        .unwrap();
    let names = Arc::new(Mutex::new(HashSet::new()));
    rt.block_on(async {
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let names = names.clone();
                kevent::spawn(async move {
                    let name = thread::current().name().map(str::to_string);
                    names.lock().unwrap().insert(name);
                    sleep(ms(1)).await;
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let names = names.lock().unwrap();
    assert!(!names.is_empty());
    for name in names.iter() {
        let name = name.as_deref().unwrap_or("<unnamed>");
        assert!(
            name.starts_with("my-pool"),
            "a task ran on thread {name:?}, expected the prefix \"my-pool\""
        );
    }
}

// ---------------------------------------------------------------- environment

/// Modes of the child process, chosen by `KEVENT_RT_PROBE`.
const PROBE_ENV: &str = "KEVENT_RT_PROBE";

/// Does nothing in a normal run. In a child started by `probe`, builds a
/// runtime as `KEVENT_RT_PROBE` says and prints what happened, with the
/// environment the parent set.
#[test]
fn child_process_probe() {
    let Ok(mode) = std::env::var(PROBE_ENV) else {
        return;
    };
    let built = match mode.as_str() {
        "multi" => Builder::new_multi_thread().build(),
        "multi-explicit-2" => Builder::new_multi_thread().worker_threads(2).build(),
        "current" => Builder::new_current_thread().build(),
        other => panic!("unknown probe mode {other:?}"),
    };
    match built {
        Ok(rt) => {
            let works = rt.block_on(async {
                sleep(ms(1)).await;
                kevent::spawn(async { 40 + 2 }).await.unwrap()
            });
            let m = rt.handle().metrics();
            println!(
                "PROBE ok workers={} backend={} works={works}",
                m.num_workers(),
                m.backend
            );
        }
        Err(e) => println!("PROBE err kind={:?} msg={e}", e.kind()),
    }
}

/// Runs `child_process_probe` in a child with `env` (and no inherited
/// `KEVENT_*`), returning its `PROBE` line.
fn probe(mode: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_process_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("KEVENT_WORKERS")
        .env_remove("KEVENT_BACKEND")
        .env(PROBE_ENV, mode)
        .envs(env.iter().copied())
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints "test child_process_probe ... " before the output.
    stdout
        .lines()
        .find_map(|l| l.find("PROBE ").map(|i| l[i..].trim_end().to_string()))
        .unwrap_or_else(|| panic!("child printed no PROBE line:\n{stdout}"))
}

#[test]
fn kevent_workers_env_sets_the_worker_count() {
    let line = watchdog(|| probe("multi", &[("KEVENT_WORKERS", "3")]));
    assert!(line.starts_with("PROBE ok workers=3 "), "{line}");
    assert!(line.ends_with("works=42"), "{line}");
}

#[test]
fn explicit_worker_threads_overrides_kevent_workers() {
    let line = watchdog(|| probe("multi-explicit-2", &[("KEVENT_WORKERS", "3")]));
    assert!(line.starts_with("PROBE ok workers=2 "), "{line}");
}

#[test]
fn without_kevent_workers_one_worker_per_core() {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let line = watchdog(|| probe("multi", &[]));
    assert!(
        line.starts_with(&format!("PROBE ok workers={cores} ")),
        "{line}"
    );
}

#[test]
fn kevent_workers_not_a_number_is_an_invalid_input_error() {
    for bad in ["abc", "0", "-1", ""] {
        let line = watchdog(move || probe("multi", &[("KEVENT_WORKERS", bad)]));
        assert!(
            line.starts_with("PROBE err kind=InvalidInput"),
            "KEVENT_WORKERS={bad:?}: {line}"
        );
        assert!(line.contains("KEVENT_WORKERS"), "{line}");
    }
}

#[test]
fn kevent_backend_env_selects_or_rejects() {
    let line = watchdog(|| probe("multi", &[("KEVENT_BACKEND", "mio")]));
    assert!(
        line.starts_with("PROBE ok ") && line.contains("mio"),
        "{line}"
    );
    let line = watchdog(|| probe("current", &[("KEVENT_BACKEND", "bogus")]));
    assert!(line.starts_with("PROBE err kind=InvalidInput"), "{line}");
    assert!(line.contains("KEVENT_BACKEND"), "{line}");
}

// ---------------------------------------------------------------- compatibility calls

rt_test_sync!(enable_all_io_and_time_are_accepted);
fn enable_all_io_and_time_are_accepted(flavor: Flavor) {
    let builds = [
        flavor.builder().enable_all().build(),
        flavor.builder().enable_io().build(),
        flavor.builder().enable_time().build(),
        flavor.builder().enable_io().enable_time().build(),
        flavor.builder().build(),
    ];
    for rt in builds {
        let rt = rt.expect("build");
        let v = rt.block_on(async {
            sleep(ms(2)).await;
            kevent::spawn(async { 4 }).await.unwrap()
        });
        assert_eq!(v, 4);
    }
}

// ---------------------------------------------------------------- backends

rt_test_sync!(backend_mio_runs_tasks_and_timers);
fn backend_mio_runs_tasks_and_timers(flavor: Flavor) {
    let rt = flavor.builder().backend(Backend::Mio).build().unwrap();
    let v = rt.block_on(async {
        sleep(ms(5)).await;
        kevent::spawn(async {
            sleep(ms(1)).await;
            8
        })
        .await
        .unwrap()
    });
    assert_eq!(v, 8);
    let backend = rt.handle().metrics().backend;
    assert!(backend.contains("mio"), "backend is {backend:?}");
}

rt_test_sync!(backend_uring_runs_tasks_timers_and_io);
fn backend_uring_runs_tasks_timers_and_io(flavor: Flavor) {
    let rt = match flavor.builder().backend(Backend::Uring).build() {
        Ok(rt) => rt,
        // A kernel without io_uring (or a seccomp filter) refuses clearly.
        Err(e) => {
            assert!(
                e.raw_os_error().is_some() || e.to_string().contains("io_uring"),
                "{e}"
            );
            return;
        }
    };
    assert_eq!(rt.handle().metrics().backend, "io_uring");
    let v = rt.block_on(async {
        sleep(ms(5)).await;
        let listener = kevent::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = kevent::spawn(async move {
            use kevent::io::AsyncReadExt;
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1];
            s.read_exact(&mut buf).await.unwrap();
            buf[0]
        });
        use kevent::io::AsyncWriteExt;
        let mut c = kevent::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(&[8]).await.unwrap();
        server.await.unwrap()
    });
    assert_eq!(v, 8);
}

/// Runs the probe child with io_uring made to fail as an old kernel would,
/// returning (PROBE line, stderr).
fn probe_without_uring(backend: &str) -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_process_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("KEVENT_WORKERS")
        .env(PROBE_ENV, "current")
        .env("KEVENT_BACKEND", backend)
        .env("KEVENT_TEST_URING_UNAVAILABLE", "1")
        .output()
        .expect("run the test binary as a child");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let line = stdout
        .lines()
        .find_map(|l| l.find("PROBE ").map(|i| l[i..].trim_end().to_string()))
        .unwrap_or_else(|| panic!("child printed no PROBE line:\n{stdout}"));
    (line, String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn auto_falls_back_to_mio_with_one_log_line_when_io_uring_is_refused() {
    let (line, stderr) = watchdog(|| probe_without_uring("auto"));
    assert!(line.starts_with("PROBE ok"), "{line}");
    assert!(line.contains("backend=mio"), "{line}");
    assert_eq!(
        stderr.matches("io_uring unavailable").count(),
        1,
        "exactly one log line: {stderr}"
    );
}

#[test]
fn an_explicit_uring_backend_fails_clearly_when_io_uring_is_refused() {
    let (line, _) = watchdog(|| probe_without_uring("uring"));
    assert!(line.starts_with("PROBE err"), "{line}");
}

// ---------------------------------------------------------------- blocking pool and threads

rt_test_sync!(max_blocking_threads_caps_concurrent_blocking_jobs);
fn max_blocking_threads_caps_concurrent_blocking_jobs(flavor: Flavor) {
    let rt = flavor.builder().max_blocking_threads(2).build().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (running, max_running) = (running.clone(), max_running.clone());
                kevent::task::spawn_blocking(move || {
                    let now = running.fetch_add(1, SeqCst) + 1;
                    max_running.fetch_max(now, SeqCst);
                    thread::sleep(ms(20));
                    running.fetch_sub(1, SeqCst);
                    i
                })
            })
            .collect();
        assert!(Handle::current().metrics().blocking_threads <= 2);
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i);
        }
    });
    let max = max_running.load(SeqCst);
    assert!((1..=2).contains(&max), "{max} blocking jobs ran at once");
}

rt_test_sync!(thread_keep_alive_retires_idle_blocking_threads);
fn thread_keep_alive_retires_idle_blocking_threads(flavor: Flavor) {
    let rt = flavor.builder().thread_keep_alive(ms(50)).build().unwrap();
    rt.block_on(async {
        kevent::task::spawn_blocking(|| ()).await.unwrap();
        eventually(
            "idle blocking threads exit after keep-alive",
            Duration::from_secs(3),
            || Handle::current().metrics().blocking_threads == 0,
        )
        .await;
        // The pool starts threads again afterwards.
        assert_eq!(kevent::task::spawn_blocking(|| 5).await.unwrap(), 5);
    });
}

rt_test_sync!(thread_stack_size_is_accepted);
fn thread_stack_size_is_accepted(flavor: Flavor) {
    let rt = flavor
        .builder()
        .thread_stack_size(4 * 1024 * 1024)
        .build()
        .unwrap();
    let deep = Arc::new(AtomicBool::new(false));
    let d = deep.clone();
    rt.block_on(async move {
        kevent::spawn(async move {
            // A 64 KiB local on the configured stack.
            let buf = [1u8; 64 * 1024];
            d.store(
                buf.iter().map(|&b| b as usize).sum::<usize>() == 64 * 1024,
                SeqCst,
            );
        })
        .await
        .unwrap()
    });
    assert!(deep.load(SeqCst));
}
