//! `kevent::io::{stdin, stdout, stderr}`, checked from outside: this test
//! binary runs itself as a child (argument `child`) whose standard streams
//! are pipes, under each runtime flavor. No harness: the child must own
//! its standard streams.

mod net_support;

use std::io;

use kevent::io::{AsyncReadExt, AsyncWriteExt};
use kevent::process::{Command, Stdio};
use net_support::{each_flavor, pattern, Checksum};

/// The child: copies standard input to standard output, byte for byte,
/// then reports the count on standard error.
fn child() -> io::Result<()> {
    let rt = kevent::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    rt.block_on(async {
        let (mut input, mut output) = (kevent::io::stdin(), kevent::io::stdout());
        let mut buf = vec![0; 10_000];
        let mut total = 0;
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            output.write_all(&buf[..n]).await?;
            total += n;
        }
        output.flush().await?;
        let mut err = kevent::io::stderr();
        err.write_all(format!("copied {total}").as_bytes()).await?;
        err.flush().await
    })
}

/// A large stream through the child's stdin and back out of its stdout.
fn stdin_to_stdout_through_the_blocking_pool() {
    each_flavor(|| async {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .arg("child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let data = pattern(11, 1 << 20);
        let sum = Checksum::of(&data);
        let mut stdin = child.stdin.take().unwrap();
        let writer = kevent::spawn(async move { stdin.write_all(&data).await.unwrap() });
        let out = child.wait_with_output().await.unwrap();
        writer.await.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(Checksum::of(&out.stdout), sum);
        assert_eq!(out.stderr, format!("copied {}", 1 << 20).as_bytes());
    });
}

/// The child writing to a closed stdout gets `BrokenPipe` (not `SIGPIPE`).
fn stdout_to_a_closed_pipe_is_broken_pipe() {
    each_flavor(|| async {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .arg("child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut stdin = child.stdin.take().unwrap();
        // The child fails at its first write and exits; this write may or
        // may not see the pipe closed by then.
        let _ = stdin.write_all(&[1; 100_000]).await;
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Broken pipe") || err.contains("BrokenPipe"),
            "{err}"
        );
    });
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("child") {
        if let Err(e) = child() {
            eprintln!("child failed: {e:?}");
            std::process::exit(1);
        }
        return;
    }
    for (name, test) in [
        (
            "stdin_to_stdout_through_the_blocking_pool",
            stdin_to_stdout_through_the_blocking_pool as fn(),
        ),
        (
            "stdout_to_a_closed_pipe_is_broken_pipe",
            stdout_to_a_closed_pipe_is_broken_pipe,
        ),
    ] {
        eprintln!("test {name} ...");
        test();
        eprintln!("test {name} ... ok");
    }
}
