//! Child processes (tokio's `tokio::process`): a [`Command`] builder whose
//! [`spawn`](Command::spawn) gives a [`Child`] to await, and whose
//! [`output`](Command::output) and [`status`](Command::status) run a
//! program to the end.
//!
//! ```
//! use kevent_runtime::io::{AsyncReadExt, AsyncWriteExt};
//! use kevent_runtime::process::{Command, Stdio};
//!
//! # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let out = Command::new("echo").arg("hello").output().await?;
//! assert!(out.status.success());
//! assert_eq!(out.stdout, b"hello\n");
//!
//! let mut cat = Command::new("cat")
//!     .stdin(Stdio::piped())
//!     .stdout(Stdio::piped())
//!     .spawn()?;
//! let mut stdin = cat.stdin.take().unwrap();
//! stdin.write_all(b"through a pipe").await?;
//! drop(stdin); // end of file for cat
//! let mut echoed = String::new();
//! cat.stdout.take().unwrap().read_to_string(&mut echoed).await?;
//! assert_eq!(echoed, "through a pipe");
//! assert!(cat.wait().await?.success());
//! # Ok::<(), std::io::Error>(())
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A child's exit reaches the runtime through the ring: on Linux as a
//! pidfd turning readable (on both backends), elsewhere or where pidfds are
//! refused as `SIGCHLD`. A [`Child`] dropped before it exited is still
//! reaped when it exits (no zombies), and killed first if
//! [`kill_on_drop`](Command::kill_on_drop) was set.

mod exit;
mod pipe;

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::task::{Context, Poll};

use futures_util::io::AsyncReadExt;

pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

use exit::ExitWatch;

/// A process builder (tokio's `Command`): std's `Command` whose `spawn`,
/// `output` and `status` are async.
#[derive(Debug)]
pub struct Command {
    /// The builder every setting goes to.
    std: std::process::Command,
    /// Whether a dropped [`Child`] that is still running gets `SIGKILL`.
    kill_on_drop: bool,
    /// Whether `stdin` was set (else [`Command::output`] closes it).
    stdin_set: bool,
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            stdin_set: false,
        }
    }
}

impl Command {
    /// A command running `program` (looked up in `PATH` when it has no
    /// slash), with no arguments, the parent's environment and directory,
    /// and standard streams inherited by [`spawn`](Command::spawn) and
    /// [`status`](Command::status).
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// The std builder, to read settings back.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The std builder, for settings this type does not forward.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// The std builder, dropping this type's own settings (`kill_on_drop`).
    pub fn into_std(self) -> std::process::Command {
        self.std
    }

    /// Adds one argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input: `Stdio::piped()` gives
    /// [`Child::stdin`].
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's standard output: `Stdio::piped()` gives
    /// [`Child::stdout`].
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's standard error: `Stdio::piped()` gives
    /// [`Child::stderr`].
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// Whether dropping the [`Child`] before it exited sends it `SIGKILL`
    /// (off by default: the child runs on, and is reaped when it exits).
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// Whether [`Command::kill_on_drop`] is set.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// The child's user id (`setuid`).
    #[cfg(unix)]
    pub fn uid(&mut self, id: u32) -> &mut Command {
        std::os::unix::process::CommandExt::uid(&mut self.std, id);
        self
    }

    /// The child's group id (`setgid`).
    #[cfg(unix)]
    pub fn gid(&mut self, id: u32) -> &mut Command {
        std::os::unix::process::CommandExt::gid(&mut self.std, id);
        self
    }

    /// The child's `argv[0]`, in place of the program name.
    #[cfg(unix)]
    pub fn arg0<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        std::os::unix::process::CommandExt::arg0(&mut self.std, arg);
        self
    }

    /// Puts the child in process group `pgroup` (0: a new group led by the
    /// child).
    #[cfg(unix)]
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        std::os::unix::process::CommandExt::process_group(&mut self.std, pgroup);
        self
    }

    /// Runs `f` in the child between `fork` and `exec`.
    ///
    /// # Safety
    ///
    /// As std's `CommandExt::pre_exec`: `f` runs in a forked copy of a
    /// multi-threaded process, so it may only do async-signal-safe things
    /// (no allocation, no locks).
    #[cfg(unix)]
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: the caller upholds `pre_exec`'s contract (see above).
        unsafe { std::os::unix::process::CommandExt::pre_exec(&mut self.std, f) };
        self
    }

    /// Starts the program. A program that cannot be run (missing, not
    /// executable) fails here with std's error (`NotFound`,
    /// `PermissionDenied`).
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn spawn(&mut self) -> io::Result<Child> {
        exit::sweep_orphans();
        let mut std = self.std.spawn()?;
        let stdin = std.stdin.take();
        let stdout = std.stdout.take();
        let stderr = std.stderr.take();
        let watch = ExitWatch::new(std)?;
        let mut child = Child {
            stdin: None,
            stdout: None,
            stderr: None,
            watch: Some(watch),
            status: None,
            kill_on_drop: self.kill_on_drop,
        };
        child.stdin = stdin.map(ChildStdin::from_std).transpose()?;
        child.stdout = stdout.map(ChildStdout::from_std).transpose()?;
        child.stderr = stderr.map(ChildStderr::from_std).transpose()?;
        Ok(child)
    }

    /// Runs the program to the end, with standard streams inherited, and
    /// returns how it exited.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        // Streams the caller asked to pipe have no reader here: close them
        // (as tokio does) so the child does not block on them.
        child.stdin.take();
        child.stdout.take();
        child.stderr.take();
        child.wait().await
    }

    /// Runs the program to the end with its standard output and error
    /// captured (and its standard input closed unless set), reading both
    /// while it runs, however much it writes.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn output(&mut self) -> io::Result<Output> {
        self.std.stdout(Stdio::piped());
        self.std.stderr(Stdio::piped());
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        let child = self.spawn()?;
        child.wait_with_output().await
    }
}

/// A spawned child process (tokio's `Child`).
///
/// Dropping it does not wait for the child, which runs on (or is killed
/// with [`Command::kill_on_drop`]) and is reaped when it exits.
#[derive(Debug)]
pub struct Child {
    /// The write end of the child's standard input, when piped.
    pub stdin: Option<ChildStdin>,
    /// The read end of the child's standard output, when piped.
    pub stdout: Option<ChildStdout>,
    /// The read end of the child's standard error, when piped.
    pub stderr: Option<ChildStderr>,
    /// The running child; `None` once its exit status was collected.
    watch: Option<ExitWatch>,
    /// The exit status, once collected.
    status: Option<ExitStatus>,
    /// Whether a drop before exit kills the child.
    kill_on_drop: bool,
}

impl Child {
    /// The child's process id, until its exit status is collected (then
    /// the id may already belong to another process).
    pub fn id(&self) -> Option<u32> {
        self.watch.as_ref().map(|w| w.child.id())
    }

    /// Sends `SIGKILL` without waiting for the child to die.
    ///
    /// Fails with `InvalidInput` once the exit status was collected.
    pub fn start_kill(&mut self) -> io::Result<()> {
        match &mut self.watch {
            Some(watch) => watch.child.kill(),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot kill a child whose exit status was already collected",
            )),
        }
    }

    /// Sends `SIGKILL` and waits for the child to exit.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Closes the child's standard input (so that a child reading it sees
    /// end of file) and waits for it to exit. Cancel-safe: awaiting again
    /// picks up where it left.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin.take();
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let watch = self.watch.as_mut().expect("no status means a watch");
        let status = watch.child.try_wait()?;
        if let Some(status) = status {
            self.collected(status);
        }
        Ok(status)
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(status) = self.status {
            return Poll::Ready(Ok(status));
        }
        let watch = self.watch.as_mut().expect("no status means a watch");
        let status = std::task::ready!(watch.poll_exit(cx))?;
        self.collected(status);
        Poll::Ready(Ok(status))
    }

    /// Records the exit status and releases the watch (the pidfd).
    fn collected(&mut self, status: ExitStatus) {
        self.status = Some(status);
        self.watch = None;
    }

    /// Reads the child's standard output and error (those piped) to their
    /// end while waiting for it to exit.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        async fn read_all<R: futures_io::AsyncRead + Unpin>(r: Option<R>) -> io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                r.read_to_end(&mut buf).await?;
            }
            Ok(buf)
        }
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let (stdout, stderr, status) =
            tokio::try_join!(read_all(stdout), read_all(stderr), self.wait())?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut watch) = self.watch.take() else {
            return;
        };
        if let Ok(Some(_)) = watch.child.try_wait() {
            return;
        }
        if self.kill_on_drop {
            let _ = watch.child.kill();
        }
        exit::adopt(watch);
    }
}
