//! The Linux backend: io_uring. The kernel posts readiness into the
//! completion ring itself (multishot `POLL_ADD`), so harvesting what is
//! already there costs no syscall; a consumer only enters the kernel to
//! submit registrations or to sleep.
//!
//! One ring serves every consumer. Submissions go through a lock and are
//! submitted by the registering thread at once (one `io_uring_enter`, as
//! `epoll_ctl` would cost); the completion queue is read only by the
//! harvester, which the ring's role protocol makes unique. Waking a sleeping
//! harvester writes an eventfd that the ring itself polls.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring};

use super::Backend;
use crate::event::{Interest, Ready};

/// `user_data` of the wake eventfd's poll.
const WAKE: u64 = u64::MAX;
/// `user_data` of cancel requests (their own completions).
const REMOVE: u64 = u64::MAX - 1;
/// Completion ring size (the submission ring is half).
const ENTRIES: u32 = 1024;

/// Whether an io_uring with what this backend needs can be set up here;
/// the error says why not (old kernel, seccomp, `io_uring_disabled`).
pub(crate) fn probe() -> io::Result<()> {
    if std::env::var_os("KEVENT_TEST_URING_UNAVAILABLE").is_some() {
        // Lets tests force the fallback path, as a kernel without io_uring would.
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    UringBackend::new().map(drop)
}

/// A wait that ended without completions: timeout, signal, or a CQ
/// overflow the harvester is about to drain.
fn interrupted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
    )
}

/// io_uring behind the [`Backend`] trait.
pub(crate) struct UringBackend {
    /// The ring. Shared: the SQ is guarded by `sq`, the CQ is read only by
    /// the single harvester.
    ring: IoUring,
    /// Serialises pushes to the submission queue.
    sq: parking_lot::Mutex<()>,
    /// fd and poll mask of every registration, to re-arm a multishot poll
    /// the kernel ended (it does when its completion cannot be posted).
    polls: parking_lot::Mutex<HashMap<u64, (RawFd, u32)>>,
    /// The eventfd `wake` writes.
    wake_fd: RawFd,
    /// A harvester sleeps in `io_uring_enter` now.
    in_wait: std::sync::atomic::AtomicBool,
    /// Poll requests queued in the SQ but not yet submitted.
    unsubmitted: std::sync::atomic::AtomicBool,
    /// `io_uring_enter` calls and eventfd writes/reads.
    syscalls: AtomicU64,
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("wake_fd", &self.wake_fd)
            .finish_non_exhaustive()
    }
}

fn poll_mask(interest: Interest) -> u32 {
    let mut mask = (libc::POLLERR | libc::POLLHUP) as u32;
    if interest.is_readable() {
        mask |= (libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) as u32;
    }
    if interest.is_writable() {
        mask |= libc::POLLOUT as u32;
    }
    mask
}

fn ready_of(mask: u32) -> Ready {
    let mask = mask as i16;
    let mut ready = Ready::EMPTY;
    if mask & (libc::POLLIN | libc::POLLPRI) != 0 {
        ready |= Ready::READABLE;
    }
    if mask & libc::POLLOUT != 0 {
        ready |= Ready::WRITABLE;
    }
    if mask & libc::POLLERR != 0 {
        ready |= Ready::ERROR;
    }
    if mask & libc::POLLHUP != 0 {
        ready |= Ready::READ_CLOSED | Ready::WRITE_CLOSED;
    }
    if mask & libc::POLLRDHUP != 0 {
        ready |= Ready::READ_CLOSED;
    }
    ready
}

impl UringBackend {
    pub(crate) fn new() -> io::Result<UringBackend> {
        let ring = IoUring::builder().setup_clamp().build(ENTRIES)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks EXT_ARG or NODROP (kernel older than 5.11)",
            ));
        }
        // SAFETY: eventfd(2) with valid flags; the result is checked.
        let wake_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if wake_fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let backend = UringBackend {
            ring,
            sq: parking_lot::Mutex::new(()),
            polls: parking_lot::Mutex::new(HashMap::new()),
            wake_fd,
            in_wait: std::sync::atomic::AtomicBool::new(false),
            unsubmitted: std::sync::atomic::AtomicBool::new(false),
            syscalls: AtomicU64::new(0),
        };
        backend.submit_poll(wake_fd, WAKE, libc::POLLIN as u32)?;
        Ok(backend)
    }

    /// Pushes SQEs and submits them from this thread.
    fn submit(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        self.push(entries)?;
        self.enter_submit()
    }

    /// Queues a new poll for a harvester to submit.
    ///
    /// The kernel posts a request's completions from task work run by the
    /// thread that submitted it. Submitted from a thread that is not a ring
    /// consumer (say `main`, running an accept loop in `block_on`), every
    /// readiness of that socket would interrupt that thread. So new polls
    /// are submitted by the harvester's next `io_uring_enter`; one sleeping
    /// there now is woken to do it.
    fn queue_poll(&self, entry: io_uring::squeue::Entry) -> io::Result<()> {
        self.push(&[entry])?;
        self.unsubmitted.store(true, Ordering::SeqCst);
        if self.in_wait.load(Ordering::SeqCst) {
            self.wake()?;
        }
        Ok(())
    }

    /// Pushes SQEs without submitting them.
    fn push(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        {
            let _guard = self.sq.lock();
            // SAFETY: `sq` serialises every access to the submission queue,
            // so no other SubmissionQueue handle exists meanwhile.
            let mut sq = unsafe { self.ring.submission_shared() };
            for e in entries {
                // SAFETY: poll and poll-remove SQEs reference no user
                // memory; they stay valid whatever happens to our stack.
                while unsafe { sq.push(e) }.is_err() {
                    // Full: hand what is queued to the kernel, then retry.
                    sq.sync();
                    drop(sq);
                    self.enter_submit()?;
                    // SAFETY: as above, still under `sq`'s lock.
                    sq = unsafe { self.ring.submission_shared() };
                }
            }
            sq.sync();
        }
        Ok(())
    }

    fn enter_submit(&self) -> io::Result<()> {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
        loop {
            match self.ring.submitter().submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The CQ is overflowing: the harvester will drain it; the
                // SQEs stay queued and go in with its next enter.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    fn submit_poll(&self, fd: RawFd, user_data: u64, mask: u32) -> io::Result<()> {
        let sqe = opcode::PollAdd::new(types::Fd(fd), mask)
            .multi(true)
            .build()
            .user_data(user_data);
        self.submit(&[sqe])
    }

    /// Ends the poll whose `user_data` is given.
    ///
    /// `ASYNC_CANCEL`, not `POLL_REMOVE`: a poll whose wakeup is being
    /// processed right then (a readiness just fired, its task work not yet
    /// run) is owned by that wakeup, and `POLL_REMOVE` then fails with
    /// `EALREADY` and leaves it armed for good, holding the socket open
    /// after its fd is closed. A cancel marks the poll cancelled whoever
    /// owns it; it completes with `ECANCELED` either way.
    fn remove_sqe(user_data: u64) -> io_uring::squeue::Entry {
        opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(REMOVE)
    }

    /// Moves completions into `out`; re-arms polls the kernel ended.
    fn drain(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<usize> {
        let mut rearm = Vec::new();
        let mut woke = false;
        let mut n = 0;
        {
            // SAFETY: only the harvester calls `poll` (the ring's role
            // protocol), so this is the only CompletionQueue handle.
            let cq = unsafe { self.ring.completion_shared() };
            for cqe in cq {
                n += 1;
                let data = cqe.user_data();
                let res = cqe.result();
                let more = cqueue::more(cqe.flags());
                match data {
                    REMOVE => {}
                    WAKE => {
                        woke = true;
                        if !more {
                            rearm.push((self.wake_fd, WAKE, libc::POLLIN as u32));
                        }
                    }
                    _ if res < 0 => {
                        // -ECANCELED after a removal, or an error on a stale
                        // fd: nothing to deliver. A live registration whose
                        // poll failed is reported as in error.
                        if res != -libc::ECANCELED && self.polls.lock().contains_key(&data) {
                            out.push((data, Ready::ERROR));
                        }
                    }
                    _ => {
                        out.push((data, ready_of(res as u32)));
                        if !more {
                            rearm.push((-1, data, 0));
                        }
                    }
                }
            }
        }
        if woke {
            let mut buf = 0u64;
            self.syscalls.fetch_add(1, Ordering::Relaxed);
            crate::syscalls::count(1);
            // SAFETY: reading 8 bytes into a u64 from our eventfd.
            unsafe { libc::read(self.wake_fd, (&mut buf as *mut u64).cast(), 8) };
        }
        for (fd, data, mask) in rearm {
            if data == WAKE {
                self.submit_poll(fd, data, mask)?;
                continue;
            }
            // Look up and submit under the lock: a `deregister` racing with
            // us then either finds the new poll to remove, or has removed
            // the registration before we look and we re-arm nothing (a poll
            // re-armed after its removal would keep the socket open).
            let polls = self.polls.lock();
            if let Some(&(fd, mask)) = polls.get(&data) {
                self.submit_poll(fd, data, mask)?;
            }
        }
        Ok(n)
    }
}

impl UringBackend {
    /// Submits what is queued and sleeps for one completion or `timeout`.
    fn wait(&self, timeout: Option<Duration>, sigmask: Option<&libc::sigset_t>) -> io::Result<()> {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
        if let Some(mask) = sigmask {
            return match self.enter_with_sigmask(timeout, mask) {
                Err(e) if !interrupted(&e) => Err(e),
                _ => Ok(()),
            };
        }
        let ts;
        let mut args = types::SubmitArgs::new();
        if let Some(t) = timeout {
            ts = types::Timespec::new()
                .sec(t.as_secs())
                .nsec(t.subsec_nanos());
            args = args.timespec(&ts);
        }
        match self.ring.submitter().submit_with_args(1, &args) {
            Err(e) if !interrupted(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// `io_uring_enter(GETEVENTS | EXT_ARG)` with a signal mask. The
    /// io-uring crate passes `size_of::<libc::sigset_t>()` (128) as the
    /// mask size, which the kernel refuses with EINVAL: it wants `_NSIG / 8`
    /// (8 bytes). So this one call is made by hand.
    fn enter_with_sigmask(
        &self,
        timeout: Option<Duration>,
        mask: &libc::sigset_t,
    ) -> io::Result<()> {
        /// `struct io_uring_getevents_arg` from `<linux/io_uring.h>`.
        #[repr(C)]
        struct GeteventsArg {
            /// Pointer to the signal mask.
            sigmask: u64,
            /// Size of the kernel's sigset (`_NSIG / 8`).
            sigmask_sz: u32,
            /// Minimum wait, microseconds (unused).
            min_wait_usec: u32,
            /// Pointer to a `__kernel_timespec`, or 0.
            ts: u64,
        }
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let arg = GeteventsArg {
            sigmask: mask as *const libc::sigset_t as u64,
            sigmask_sz: 8,
            min_wait_usec: 0,
            ts: ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64),
        };
        const GETEVENTS: u32 = 1;
        const EXT_ARG: u32 = 1 << 3;
        use std::os::fd::AsRawFd;
        // SAFETY: io_uring_enter on our ring's fd with a valid, live
        // io_uring_getevents_arg (whose mask and timespec outlive the call)
        // and its exact size, as the EXT_ARG ABI requires.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.ring.as_raw_fd(),
                0u32,
                1u32,
                GETEVENTS | EXT_ARG,
                &arg as *const GeteventsArg,
                std::mem::size_of::<GeteventsArg>(),
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Backend for UringBackend {
    fn register(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        let mask = poll_mask(interest);
        self.polls.lock().insert(entry, (fd, mask));
        let sqe = opcode::PollAdd::new(types::Fd(fd), mask)
            .multi(true)
            .build()
            .user_data(entry);
        self.queue_poll(sqe)
    }

    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        let mask = poll_mask(interest);
        self.polls.lock().insert(entry, (fd, mask));
        let add = opcode::PollAdd::new(types::Fd(fd), mask)
            .multi(true)
            .build()
            .user_data(entry);
        self.submit(&[Self::remove_sqe(entry), add])
    }

    fn deregister(&self, _fd: RawFd, entry: u64) -> io::Result<()> {
        // Removal is submitted under the lock `drain` re-arms under, so a
        // re-armed poll is always submitted before this removal.
        let mut polls = self.polls.lock();
        polls.remove(&entry);
        self.submit(&[Self::remove_sqe(entry)])
    }

    fn poll(
        &self,
        out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> io::Result<()> {
        // Whatever the kernel already posted is read without a syscall.
        let drained = self.drain(out)?;
        if drained > 0 || timeout == Some(Duration::ZERO) {
            if self.unsubmitted.swap(false, Ordering::SeqCst) {
                self.enter_submit()?;
            }
            return Ok(());
        }
        self.unsubmitted.store(false, Ordering::SeqCst);
        self.in_wait.store(true, Ordering::SeqCst);
        // Pairs with `queue_poll`: a poll queued before `in_wait` was set is
        // submitted by the enter below; one queued after it wakes us.
        std::sync::atomic::fence(Ordering::SeqCst);
        let result = self.wait(timeout, sigmask);
        self.in_wait.store(false, Ordering::SeqCst);
        result?;
        self.drain(out)?;
        Ok(())
    }

    fn wake(&self) -> io::Result<()> {
        let one = 1u64;
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
        // SAFETY: writing 8 bytes from a u64 to our eventfd.
        let r = unsafe { libc::write(self.wake_fd, (&one as *const u64).cast(), 8) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN: the counter is saturated, a wakeup is pending anyway.
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn syscalls(&self) -> u64 {
        self.syscalls.load(Ordering::Relaxed)
    }
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        // SAFETY: closing our own eventfd; the ring (dropped after) stops
        // polling it.
        unsafe { libc::close(self.wake_fd) };
    }
}
