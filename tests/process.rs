//! `kevent::process`: spawning, waiting, pipes, signals and reaping, under
//! each runtime flavor (the backend comes from `KEVENT_BACKEND`; CI also
//! runs this file with `KEVENT_PIDFD=0`, the `SIGCHLD` path).

mod net_support;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::process::Command;
use net_support::{each_flavor, pattern, Checksum};

/// The state letter of `/proc/PID/stat` (`Z` for a zombie), or `None` once
/// the process is gone (reaped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Waits (up to 10 s) until `pid` has left the process table.
async fn until_gone(pid: u32) {
    let start = Instant::now();
    while let Some(state) = proc_state(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "process {pid} still in the process table (state {state}) after 10 s"
        );
        kevent::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn output_captures_both_streams_and_the_exit_code() {
    each_flavor(|| async {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    });
}

#[test]
fn a_missing_program_fails_to_spawn_with_not_found() {
    each_flavor(|| async {
        let err = Command::new("/nonexistent/kevent-no-such-program")
            .spawn()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Command::new("kevent-no-such-program-in-path")
            .output()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // A directory is not a program.
        let err = Command::new("/").status().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    });
}

#[test]
fn output_reads_far_more_than_a_pipe_buffer_from_both_streams() {
    each_flavor(|| async {
        // 1 MiB on each stream, both written by the child before it exits:
        // it blocks unless both pipes are drained while it runs.
        let script =
            "head -c 1048576 /dev/zero | tr '\\0' a; head -c 1048576 /dev/zero | tr '\\0' b >&2";
        let out = Command::new("sh")
            .args(["-c", script])
            .output()
            .await
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1 << 20);
        assert!(out.stdout.iter().all(|&b| b == b'a'));
        assert_eq!(out.stderr.len(), 1 << 20);
        assert!(out.stderr.iter().all(|&b| b == b'b'));
    });
}

#[test]
fn piped_stdin_and_stdout_carry_a_large_stream_both_ways() {
    each_flavor(|| async {
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let data = pattern(7, 3 << 20);
        let expected = Checksum::of(&data);
        let mut stdin = cat.stdin.take().unwrap();
        let writer = kevent::spawn(async move {
            stdin.write_all(&data).await.unwrap();
            // Dropping stdin is cat's end of file.
        });
        let mut stdout = cat.stdout.take().unwrap();
        let mut got = Vec::new();
        stdout.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got.len(), 3 << 20);
        assert_eq!(Checksum::of(&got), expected);
        assert!(cat.wait().await.unwrap().success());
    });
}

#[test]
fn writing_to_an_exited_childs_stdin_is_broken_pipe() {
    each_flavor(|| async {
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        assert!(child.wait().await.unwrap().success());
        // Big enough that the pipe cannot hold it whatever the kernel
        // does with a reader gone.
        let err = stdin.write_all(&vec![0; 1 << 20]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn a_child_killed_by_a_signal_reports_the_signal() {
    each_flavor(|| async {
        let status = Command::new("sh")
            .args(["-c", "kill -TERM $$; sleep 5"])
            .status()
            .await
            .unwrap();
        assert!(!status.success());
        assert_eq!(status.code(), None);
        assert_eq!(status.signal(), Some(libc::SIGTERM));

        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        child.kill().await.unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn try_wait_id_and_kill_follow_the_childs_life() {
    each_flavor(|| async {
        let mut child = Command::new("sh")
            .args(["-c", "read line; exit 7"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().expect("a running child has an id");
        assert_eq!(child.try_wait().unwrap(), None);
        assert_eq!(proc_state(pid).map(|s| s != 'Z'), Some(true));
        // `wait` closes stdin: `read` sees end of file and the shell exits.
        let status = child.wait().await.unwrap();
        assert_eq!(status.code(), Some(7));
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.id(), None);
        assert_eq!(
            child.start_kill().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(child.wait().await.unwrap(), status);
        assert_eq!(proc_state(pid), None, "waited child reaped");
    });
}

#[test]
fn wait_cancelled_by_a_timeout_can_be_awaited_again() {
    each_flavor(|| async {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let early = kevent::time::timeout(Duration::from_millis(20), child.wait()).await;
        assert!(early.is_err(), "sleep 0.2 exited within 20 ms");
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn kill_on_drop_kills_and_reaps_the_child() {
    each_flavor(|| async {
        let child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        drop(child);
        until_gone(pid).await;
    });
}

#[test]
fn a_dropped_child_runs_on_and_is_reaped_when_it_exits() {
    each_flavor(|| async {
        let mut pids = Vec::new();
        for _ in 0..20 {
            pids.push(Command::new("true").spawn().unwrap().id().unwrap());
        }
        let child = Command::new("sleep").arg("0.3").spawn().unwrap();
        let sleeper = child.id().unwrap();
        drop(child);
        kevent::time::sleep(Duration::from_millis(100)).await;
        // Not killed: still sleeping.
        assert_eq!(proc_state(sleeper).map(|s| s != 'Z'), Some(true));
        pids.push(sleeper);
        for pid in pids {
            until_gone(pid).await;
        }
    });
}

#[test]
fn many_children_waited_concurrently_all_exit() {
    each_flavor(|| async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                kevent::spawn(async move {
                    Command::new("sh")
                        .args(["-c", &format!("exit {}", i % 4)])
                        .status()
                        .await
                        .unwrap()
                        .code()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Some(i as i32 % 4));
        }
    });
}

#[test]
fn environment_directory_and_arguments_reach_the_child() {
    each_flavor(|| async {
        let dir = std::env::temp_dir();
        let out = Command::new("/bin/sh")
            .env_clear()
            .env("KEVENT_A", "one")
            .envs([("KEVENT_B", "two"), ("KEVENT_C", "three")])
            .env_remove("KEVENT_C")
            .current_dir(&dir)
            .args([
                "-c",
                "echo \"$KEVENT_A $KEVENT_B ${KEVENT_C-unset} $0 $1\"; pwd -P",
                "zero",
                "first",
            ])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("one two unset zero first"));
        assert_eq!(
            lines.next().map(std::path::PathBuf::from),
            Some(dir.canonicalize().unwrap())
        );
    });
}

#[test]
fn a_childs_stdout_becomes_the_next_childs_stdin() {
    each_flavor(|| async {
        let mut first = Command::new("echo")
            .arg("handed over")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: Stdio = first.stdout.take().unwrap().try_into().unwrap();
        let out = Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(stdout)
            .output()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"HANDED OVER\n");
        assert!(first.wait().await.unwrap().success());
    });
}

#[test]
fn output_closes_stdin_unless_it_was_set() {
    each_flavor(|| async {
        // `cat` with stdin closed exits at once with nothing.
        let out = Command::new("cat").output().await.unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
    });
}

#[test]
fn a_child_held_by_a_task_at_runtime_shutdown_is_killed_and_reaped_later() {
    let rt = kevent::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let child = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        tx.send(child.id().unwrap()).unwrap();
        std::future::pending::<()>().await;
        drop(child);
    });
    let pid = rx.recv().unwrap();
    // The task, and with it the child, is dropped with the runtime.
    drop(rt);
    // Killed: a zombie (or gone) soon, not sleeping for 30 s.
    let start = Instant::now();
    while let Some(state) = proc_state(pid).filter(|&s| s != 'Z') {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not killed: {state}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Any later spawn sweeps the killed child out of the process table.
    each_flavor(|| async move {
        let start = Instant::now();
        while proc_state(pid).is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{pid} never reaped"
            );
            Command::new("true").status().await.unwrap();
            kevent::time::sleep(Duration::from_millis(5)).await;
        }
    });
}
