//! Noticing that a child exited, and reaping children nobody waits for.
//!
//! On Linux a child's exit is a pidfd (`pidfd_open(2)`) that turns readable
//! when the child exits: it is registered with the ring like any fd, so it
//! works on both backends, and no signal handler is involved. Where
//! `pidfd_open` fails (kernels before 5.3, seccomp filters) the runtime
//! watches `SIGCHLD` instead: every delivery makes each waiting child retry
//! a nonblocking `waitpid`.
//!
//! A [`Child`](super::Child) dropped before it exited must still be
//! reaped, or it stays a zombie: its watch moves into an orphan task on the
//! current runtime, which reaps it when it exits. Outside a runtime, or if
//! that task is dropped first (runtime shutdown), the child joins a
//! process-wide orphan list that every later spawn sweeps.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use kevent_reactor::Interest;
use parking_lot::Mutex;

use crate::driver::slab::Direction;
use crate::net::evented::Evented;
use crate::signal::unix::{signal, Signal, SignalKind};

/// How a child's exit reaches its waiters.
#[derive(Debug)]
enum Notify {
    /// The child's pidfd, readable once it exited.
    Pidfd(Evented<File>),
    /// `SIGCHLD` deliveries (any child's), where pidfds are not available.
    Sigchld(Signal),
}

/// A running child and how its exit is noticed.
#[derive(Debug)]
pub(crate) struct ExitWatch {
    /// std's child (its standard streams already taken): `try_wait` is a
    /// nonblocking `waitpid`, `kill` a `SIGKILL`.
    pub(crate) child: std::process::Child,
    /// How its exit is noticed.
    notify: Notify,
}

/// Set once `pidfd_open` failed with `ENOSYS`/`EPERM`: skip it from then on.
/// `KEVENT_PIDFD=0` sets it at start, to exercise the `SIGCHLD` path.
static NO_PIDFD: AtomicBool = AtomicBool::new(false);

fn pidfds_disabled() -> bool {
    static ENV: std::sync::Once = std::sync::Once::new();
    ENV.call_once(|| {
        if std::env::var_os("KEVENT_PIDFD").is_some_and(|v| v == "0") {
            NO_PIDFD.store(true, Ordering::Relaxed);
        }
    });
    NO_PIDFD.load(Ordering::Relaxed)
}

/// A pidfd for `pid`, or `None` where the kernel cannot give one.
#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    if pidfds_disabled() {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd (with
    // close-on-exec set) or -1; it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let err = io::Error::last_os_error().raw_os_error();
        if matches!(err, Some(libc::ENOSYS) | Some(libc::EPERM)) {
            NO_PIDFD.store(true, Ordering::Relaxed);
        }
        return None;
    }
    // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: u32) -> Option<OwnedFd> {
    let _ = pidfds_disabled();
    None
}

impl ExitWatch {
    /// Starts watching `child`, just spawned (not reaped, so its pid
    /// cannot have been reused).
    #[track_caller]
    pub(crate) fn new(mut child: std::process::Child) -> io::Result<ExitWatch> {
        let notify = match pidfd_open(child.id()) {
            Some(fd) => Evented::new(File::from(fd), Interest::READABLE).map(Notify::Pidfd),
            // The signal is watched from here on; an exit before this point
            // is found by the `waitpid` every poll starts with.
            None => signal(SignalKind::child()).map(Notify::Sigchld),
        };
        match notify {
            Ok(notify) => Ok(ExitWatch { child, notify }),
            Err(e) => {
                // Nobody could wait for it: stop it, and reap it later.
                let _ = child.kill();
                ORPHANS.lock().push(child);
                Err(e)
            }
        }
    }

    /// The exit status once the child exited (reaping it), or registers the
    /// task to be woken when it may have.
    pub(crate) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        let child = &mut self.child;
        let try_wait = |child: &mut std::process::Child| match child.try_wait() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            Err(e) => Err(e),
        };
        match &mut self.notify {
            Notify::Pidfd(fd) => fd.poll_io(cx, Direction::Read, |_| try_wait(child)),
            Notify::Sigchld(sig) => loop {
                match try_wait(child) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    res => return Poll::Ready(res),
                }
                // A delivery since the last look means some child changed
                // state: look again. None means the driver is gone.
                if std::task::ready!(sig.poll_recv(cx)).is_none() {
                    return Poll::Ready(Err(io::Error::other(
                        "the runtime that watched this child is gone",
                    )));
                }
            },
        }
    }
}

/// Children dropped unreaped where no orphan task could take them.
static ORPHANS: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

/// Reaps the orphans that exited since the last sweep.
pub(crate) fn sweep_orphans() {
    let mut orphans = ORPHANS.lock();
    // Keep those still running (or whose state cannot be read, to retry).
    orphans.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
}

/// Takes over a dropped, still running child so that it is reaped when it
/// exits.
pub(crate) fn adopt(watch: ExitWatch) {
    match crate::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn(Orphan(Some(watch)))),
        Err(_) => ORPHANS.lock().push(watch.child),
    }
}

/// A task that reaps one orphan when it exits.
struct Orphan(Option<ExitWatch>);

impl Future for Orphan {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(watch) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        match watch.poll_exit(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(res) => {
                let watch = self.0.take().expect("checked above");
                if res.is_err() {
                    // Not reaped (the runtime is going away): keep it on
                    // the list.
                    ORPHANS.lock().push(watch.child);
                }
                Poll::Ready(())
            }
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        // Dropped before its child exited (runtime shutdown): the list
        // takes it over.
        if let Some(watch) = self.0.take() {
            ORPHANS.lock().push(watch.child);
        }
    }
}
