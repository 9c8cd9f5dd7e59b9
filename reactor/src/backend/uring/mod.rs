//! The Linux backend: io_uring. The kernel posts readiness into the
//! completion ring itself (multishot `POLL_ADD`), so harvesting what is
//! already there costs no syscall; a consumer only enters the kernel to
//! submit registrations or to sleep.
//!
//! One ring serves every consumer. Submissions go through a lock. A consumer
//! thread submits its own requests at once (one `io_uring_enter`, as
//! `epoll_ctl` would cost), which makes it their owner: the kernel runs
//! their completion work on it, typically on the way out of its next
//! syscall. Requests from other threads are queued for a consumer to
//! submit. The completion queue is read under a lock: by the harvester
//! after its sleep, or by any consumer without sleeping (`drain_now`), so
//! a busy worker picks up what its own syscalls just completed. A sleeping
//! harvester is woken by a `MSG_RING` (or, on older kernels, an eventfd the
//! ring polls).
//!
//! Stream sockets may also receive through the ring (see `recv.rs`):
//! a multishot receive per socket fills buffers from a pool shared with the
//! kernel (a provided-buffer ring); the harvester copies each completion
//! into the socket's inbox and hands the buffer back at once. Such a socket
//! keeps a poll for writability only. They may send through the ring too,
//! from an outbox (write-behind).
//!
//! One concept per file: `submit.rs` (how requests reach the kernel, and
//! from which thread), `completion.rs` (telling completions apart and
//! draining them), `pool.rs` (the provided buffers), `recv.rs`
//! (receiving into a stream's inbox), `send.rs` (sending from a stream's
//! outbox) and `send_ring.rs` (each worker's own ring for sends),
//! `stream.rs` (one stream's byte path, as
//! [`StreamIo`](crate::StreamIo) hands it out). This file holds the
//! backend itself: setup, polls, the harvester's wait and wakeup.

use crate::loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::loom::Mutex;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

mod completion;
mod cq_tail;
mod file;
mod home;
mod pool;
mod recv;
mod send;
mod send_ring;
mod stream;
mod submit;

pub(crate) use self::stream::Stream;
pub use file::{FileRing, FileRingHost};
pub use send::OUTBOX_LIMIT;

use self::completion::{LISTENERS, RECV, WAKE};
use self::pool::{BufPool, BUF_GROUP};
use self::recv::{without_reads, Inbox};
use self::send::LINGER;
use self::send_ring::SendRing;
use super::listen_set::ListenSet;
use super::Poller;
use crate::event::{Interest, Ready};
use crate::id_hash::IdMap;
use crate::stream::StreamIo;

/// Completion ring size (the submission ring is half).
const ENTRIES: u32 = 1024;

/// Backend ids (a `static`, so std's atomic: see `loom.rs`), so a thread's send ring is never taken for another's.
static NEXT_BACKEND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What the backend watches for one registration.
#[derive(Debug)]
struct Polled {
    /// The watched descriptor.
    fd: RawFd,
    /// The poll's mask (writability only once receiving through the ring).
    mask: u32,
    /// The inbox of a socket receiving through the ring.
    inbox: Option<Arc<Inbox>>,
    /// The poll was submitted (false: a stream registered lazily, see
    /// `register_stream`, that nobody has waited on or read yet).
    armed: bool,
}

/// Whether an io_uring with what this backend needs can be set up here;
/// the error says why not (old kernel, seccomp, `io_uring_disabled`).
pub(crate) fn probe() -> io::Result<()> {
    if std::env::var_os("KEVENT_TEST_URING_UNAVAILABLE").is_some() {
        // Lets tests force the fallback path, as a kernel without io_uring would.
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    UringBackend::new(0).map(drop)
}

/// A wait that ended without completions: timeout, signal, or a CQ
/// overflow the harvester is about to drain.
fn interrupted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY)
    )
}

/// io_uring behind the [`Poller`] trait.
pub(crate) struct UringBackend {
    /// The ring. Shared: the SQ is guarded by `sq`, the CQ is read only by
    /// the single harvester. Declared first so it closes before `pool`'s
    /// memory goes.
    ring: IoUring,
    /// Where `wake` submits its MSG_RING (COOP_TASKRUN mode); `None`: wake
    /// through the eventfd.
    waker: Option<Mutex<IoUring>>,
    /// Buffers for receives through the ring; `None` where the kernel
    /// lacks what that needs (then every socket uses readiness).
    pool: Option<BufPool>,
    /// Serialises pushes to the submission queue.
    sq: Mutex<()>,
    /// Serialises reading the completion queue (and handing buffers back):
    /// the harvester after its sleep, or any consumer draining what is
    /// already there (`drain_now`).
    cq: Mutex<()>,
    /// What each registration watches, to re-arm a multishot request the
    /// kernel ended (it does when its completion cannot be posted).
    polls: Mutex<IdMap<Polled>>,
    /// Listening sockets, watched through an epoll set the ring polls, so
    /// that no request of the ring holds one open (see `listen_set`).
    listeners: ListenSet,
    /// Each worker's ring for its sends, by index (see `send_ring`). A
    /// send still in flight when `finish_sends` gives up keeps its outbox
    /// for good: the memory the kernel may still read is leaked, never
    /// freed under it.
    send_rings: Mutex<Vec<Arc<SendRing>>>,
    /// Unique among backends (the key of `OWN_SEND_RING`).
    id: u64,
    /// The ring this backend feeds (`backend::consumes`); 0: none (a probe).
    ring_id: usize,
    /// Outboxes with a send in flight. Each holds itself alive through its
    /// send's `user_data` (see `send.rs`): the kernel reads its memory until
    /// the send completes, and a dropped stream's outbox lives until its
    /// last byte is sent. Counted so that a backend going away knows when
    /// all are sent.
    sends_in_flight: AtomicUsize,
    /// The eventfd `wake` writes (default mode); -1 with MSG_RING.
    wake_fd: RawFd,
    /// A harvester sleeps in `io_uring_enter` now.
    in_wait: AtomicBool,
    /// Where consumers sleep on the completion queue's tail (see
    /// `cq_tail.rs`); `None`: in `io_uring_enter` and on condition
    /// variables.
    cq_tail: Option<cq_tail::CqTail>,
    /// Bumped by `wake` for a harvester sleeping on the tail (a futex
    /// word, so std's atomic).
    wake_word: crate::loom::FutexWord,
    /// `wake_word` as the last harvester's sleep consumed it: a wakeup
    /// that came before the next sleep began keeps it from sleeping, as a
    /// posted completion does in `io_uring_enter`.
    wakes_seen: std::sync::atomic::AtomicU32,
    /// A harvester sleeps in `io_uring_enter` even though `cq_tail` is
    /// set (with a signal mask, or as the only consumer): `wake` must post
    /// to the ring too.
    enter_wait: AtomicBool,
    /// The consumer polling is the ring's only one (`set_sole_consumer`).
    sole: AtomicBool,
    /// A home consumer is attached: only its thread submits and sleeps
    /// here (`Consumer::set_home`).
    home: AtomicBool,
    /// The home thread's `backend::thread_tag` (0: it has not claimed yet).
    home_thread: AtomicUsize,
    /// Bumped by the home thread each time it reads the completion queue.
    home_beat: AtomicU64,
    /// `home_beat` as another consumer last saw it, and when (nanoseconds
    /// since `born`): see `home_stuck`.
    beat_seen: AtomicU64,
    beat_seen_at: AtomicU64,
    /// Whether the home has time for others' requests (`home.rs`).
    home_load: home::HomeLoad,
    /// When this backend was made (the clock of `beat_seen_at` and
    /// `home_load`).
    born: std::time::Instant,
    /// Poll requests queued in the SQ but not yet submitted.
    unsubmitted: AtomicBool,
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

/// The poll mask for `interest`.
///
/// `POLLPRI` is asked for only with [`Interest::PRIORITY`], and then with
/// `POLLIN`: io_uring leaves `EPOLLPRI` out when it matches a wakeup to a
/// poll (Linux 6.18 `io_poll_wake`), so a poll for `POLLPRI` alone is never
/// woken, while the wakeup that urgent data sends (`sock_def_readable`)
/// carries `EPOLLIN` too. That same wakeup is sent for every ordinary
/// byte, and a multishot poll's result is the wakeup's mask, not the
/// socket's state: a `POLLPRI` in a result is checked with `poll(2)`
/// before it counts (`UringBackend::priority_is_real`).
fn poll_mask(interest: Interest) -> u32 {
    let mut mask = (libc::POLLERR | libc::POLLHUP) as u32;
    if interest.is_readable() {
        mask |= (libc::POLLIN | libc::POLLRDHUP) as u32;
    }
    if interest.is_writable() {
        mask |= libc::POLLOUT as u32;
    }
    if interest.is_priority() {
        mask |= (libc::POLLIN | libc::POLLPRI) as u32;
    }
    // `Interest::ERROR` needs nothing more: POLLERR is always in the mask.
    mask
}

impl UringBackend {
    /// A backend for the ring `ring_id` (0: a probe, never used).
    pub(crate) fn new(ring_id: usize) -> io::Result<UringBackend> {
        // On kernels with everything below (6.10+; bundles are a feature bit
        // that implies it): COOP_TASKRUN, so a readiness does not interrupt
        // the thread that submitted its poll while it runs in user space (an
        // interrupt per readiness cost twice the CPU per request); that work
        // runs at the thread's next syscall, or when a harvest sees
        // TASKRUN_FLAG and enters. Wakeups then cannot go through a poll of
        // an eventfd (its completion would wait for its submitter's next
        // syscall): `wake` posts a completion straight into the ring with
        // MSG_RING from a second, tiny ring. Older kernels: the default mode
        // and an eventfd.
        let coop = IoUring::builder()
            .setup_clamp()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(ENTRIES)
            .ok()
            .filter(|r| r.params().is_feature_recvsend_bundle());
        let waker = match coop {
            Some(_) => IoUring::builder().build(2).ok(),
            None => None,
        };
        let (ring, waker) = match (coop, waker) {
            (Some(ring), Some(waker)) => (ring, Some(waker)),
            _ => (IoUring::builder().setup_clamp().build(ENTRIES)?, None),
        };
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks EXT_ARG or NODROP (kernel older than 5.11)",
            ));
        }
        // The eventfd wakes the harvester where MSG_RING does not.
        let wake_fd = if waker.is_some() {
            -1
        } else {
            // SAFETY: eventfd(2) with valid flags; the result is checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            fd
        };
        // Receiving through the ring needs multishot receive (6.0) and
        // cancel-all (5.19); bundles (6.10) are a feature bit that implies
        // both.
        let pool = if ring.params().is_feature_recvsend_bundle() {
            BufPool::new(&ring).ok()
        } else {
            None
        };
        // Sleeping on the tail needs every completion to come from task
        // work that interrupts a sleep: COOP_TASKRUN mode, where wakeups
        // need no poll of an eventfd. Opt-in (`KEVENT_CQ_SLEEP=1`) until a
        // benchmark shows its small CPU gain beyond this machine's noise;
        // it also skews completion work towards the busy worker, whose
        // stalls its connections then share (ARCHITECTURE.md, "A stalled
        // thread"; BENCHMARKS.md, stop 20).
        let cq_tail =
            if waker.is_some() && std::env::var_os("KEVENT_CQ_SLEEP").is_some_and(|v| v == "1") {
                cq_tail::CqTail::new(&ring)
            } else {
                None
            };
        let backend = UringBackend {
            ring,
            waker: waker.map(Mutex::new),
            pool,
            sq: Mutex::new(()),
            cq: Mutex::new(()),
            polls: Mutex::new(IdMap::default()),
            listeners: ListenSet::new()?,
            send_rings: Mutex::new(Vec::new()),
            id: NEXT_BACKEND.fetch_add(1, Ordering::Relaxed),
            ring_id,
            sends_in_flight: AtomicUsize::new(0),
            wake_fd,
            in_wait: AtomicBool::new(false),
            cq_tail,
            wake_word: crate::loom::FutexWord::new(0),
            wakes_seen: std::sync::atomic::AtomicU32::new(0),
            enter_wait: AtomicBool::new(false),
            sole: AtomicBool::new(false),
            home: AtomicBool::new(false),
            home_thread: AtomicUsize::new(0),
            home_beat: AtomicU64::new(0),
            beat_seen: AtomicU64::new(0),
            beat_seen_at: AtomicU64::new(0),
            home_load: home::HomeLoad::new(),
            born: std::time::Instant::now(),
            unsubmitted: AtomicBool::new(false),
            syscalls: AtomicU64::new(0),
        };
        // The polls on the listeners' set (and on the wake eventfd, where
        // there is no MSG_RING): a consumer's first enter submits them, so
        // that their task work runs on a thread that reads the ring, not on
        // the one making the runtime. Submitted from `main`, which then
        // runs an accept loop in `block_on`, every new connection's poll
        // completion interrupted its futex sleep with task work, one more
        // wake-up and context switch of `main` per connection.
        let mut polls = vec![Self::poll_sqe(
            backend.listeners.fd(),
            LISTENERS,
            libc::POLLIN as u32,
        )];
        if backend.waker.is_none() {
            polls.push(Self::poll_sqe(wake_fd, WAKE, libc::POLLIN as u32));
        }
        backend.push(&polls)?;
        backend.unsubmitted.store(true, Ordering::SeqCst);
        Ok(backend)
    }
}

impl UringBackend {
    /// Records `fd` as registration `entry`, its poll not yet submitted
    /// (`Poller::arm` submits it).
    fn watch_later(&self, fd: RawFd, entry: u64, interest: Interest) {
        debug_assert_eq!(entry & RECV, 0, "entry index beyond 2^31");
        let watch = Polled {
            fd,
            mask: poll_mask(interest),
            inbox: None,
            armed: false,
        };
        self.polls.lock().insert(entry, watch);
    }

    /// Counts one syscall made for the ring.
    fn count_syscall(&self) {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
    }

    /// Submits what is queued and sleeps for one completion or `timeout`.
    /// The harvester's sleep on the completion queue's tail (see
    /// `cq_tail.rs`): until a completion is posted from this thread's own
    /// task work, `wake`, or `timeout`; then reads the queue.
    fn sleep_on_tail(
        &self,
        cq: &cq_tail::CqTail,
        out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        // A request queued before `in_wait` was set is submitted here; one
        // queued after it wakes us (`submit::wait_on_tail`).
        let queued = submit::wait_on_tail(&self.unsubmitted, &self.in_wait);
        let woken = self.wake_word.load(Ordering::SeqCst);
        let unseen = self.wakes_seen.swap(woken, Ordering::SeqCst) != woken;
        if queued || self.enter_pending() {
            // What others queued, and task work the kernel holds for us,
            // go in first (an enter that does not wait).
            self.enter_getevents()?;
        }
        if let Some(seen) = cq.quiet().filter(|_| !unseen) {
            self.count_syscall();
            let slept = cq_tail::sleep(cq, seen, &self.wake_word, woken, timeout);
            self.in_wait.store(false, Ordering::SeqCst);
            slept?;
        } else {
            self.in_wait.store(false, Ordering::SeqCst);
        }
        self.drain(out, true).map(drop)
    }

    fn wait(&self, timeout: Option<Duration>, sigmask: Option<&libc::sigset_t>) -> io::Result<()> {
        self.count_syscall();
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

impl Poller for UringBackend {
    fn register(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        self.watch_later(fd, entry, interest);
        self.arm(entry)
    }

    /// A stream that may receive through the ring is watched from its
    /// first use: its first read arms the poll (writability and errors)
    /// with the receive, its first wait for readiness the whole poll
    /// (`arm`). An accepted connection then costs no poll, no cancel of it
    /// at the first read, and no wake-up of a consumer to submit it from
    /// the accepting thread.
    fn register_stream(
        &self,
        fd: RawFd,
        entry: u64,
        interest: Interest,
        ring_recv: bool,
    ) -> io::Result<()> {
        if !ring_recv || self.pool.is_none() {
            return self.register(fd, entry, interest);
        }
        self.watch_later(fd, entry, interest);
        Ok(())
    }

    /// Submits the registration's poll unless one was already submitted:
    /// `register` calls it at once, a lazy stream's first wait later
    /// (`arm_recv` submits a lazy stream's poll with its receive instead).
    fn arm(&self, entry: u64) -> io::Result<()> {
        // Under the lock `deregister` cancels under: the poll is pushed
        // before any removal of it.
        let mut polls = self.polls.lock();
        match polls.get_mut(&entry) {
            Some(w) if !w.armed => {
                w.armed = true;
                let poll = Self::poll_sqe(w.fd, entry, w.mask);
                self.post(&[poll], self.consumes_here())
            }
            _ => Ok(()),
        }
    }

    fn register_listener(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        self.listeners.add(fd, entry, interest)
    }

    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        if self.listeners.modify(entry, interest)? {
            return Ok(());
        }
        let mut mask = poll_mask(interest);
        {
            let mut polls = self.polls.lock();
            let w = polls.entry(entry).or_insert(Polled {
                fd,
                mask,
                inbox: None,
                armed: true,
            });
            if w.inbox.is_some() {
                mask = without_reads(mask);
            }
            w.mask = mask;
            if !w.armed {
                // Armed with the new mask when first used.
                return Ok(());
            }
        }
        let add = Self::poll_sqe(fd, entry, mask);
        self.submit_or_queue(&[Self::remove_sqe(entry), add], self.consumes_here())
    }

    fn deregister(&self, _fd: RawFd, entry: u64) -> io::Result<()> {
        if self.listeners.remove(entry) {
            return Ok(());
        }
        // The removal is pushed under the lock `drain` re-arms under, so it
        // follows any re-armed poll in the submission queue, which the
        // kernel reads in order. It is submitted once the lock is released:
        // registrations and receives on other workers need that lock, and
        // must not wait for our syscall.
        {
            let mut polls = self.polls.lock();
            let watch = polls.remove(&entry);
            if matches!(&watch, Some(w) if !w.armed) {
                // Never armed: nothing in flight to cancel.
                return Ok(());
            }
            if self.pool.is_none() {
                self.push(&[Self::remove_sqe(entry)])?;
            } else {
                let cancel = Self::cancel_all_sqe(entry);
                match watch.and_then(|w| w.inbox) {
                    Some(inbox) => {
                        inbox.lock().closed = true;
                        self.push(&[cancel, Self::cancel_all_sqe(entry | RECV)])?;
                    }
                    None => self.push(&[cancel])?,
                }
            }
        }
        self.submit_pushed(self.consumes_here())
    }

    fn stream(
        self: Arc<Self>,
        fd: RawFd,
        entry: u64,
        ring_recv: bool,
        ring_send: bool,
    ) -> StreamIo {
        StreamIo::uring(Stream::new(self, fd, entry, ring_recv, ring_send))
    }

    fn poll(
        &self,
        out: &mut Vec<(u64, Ready)>,
        timeout: Option<Duration>,
        sigmask: Option<&libc::sigset_t>,
    ) -> io::Result<()> {
        let before = out.len();
        self.home_beat();
        self.flush_own_sends(out)?;
        self.submit_stranded_sends()?;
        if self.collect(out, true)? > 0 || out.len() > before || timeout == Some(Duration::ZERO) {
            return self.submit_queued();
        }
        // The only consumer sleeps in the enter: nobody else could be
        // woken by its completions, and the kernel runs its task work
        // inside that wait (measured: ~6% less CPU per request at one
        // worker than returning through the futex wait's restart).
        if let (Some(cq), None, false) = (&self.cq_tail, sigmask, self.sole.load(Ordering::Relaxed))
        {
            let home = self.home_sleeps();
            let result = self.sleep_on_tail(cq, out, timeout);
            self.home_woke(home);
            return result;
        }
        self.enter_wait.store(true, Ordering::SeqCst);
        // A request queued before `in_wait` was set is submitted by the
        // enter below; one queued after it wakes us (`submit::enter_wait`).
        // Its fence also pairs with `wake`: a wakeup that saw `enter_wait`
        // unset bumped `wake_word` first, which we see here.
        submit::enter_wait(&self.unsubmitted, &self.in_wait);
        let mut timeout = timeout;
        if self.cq_tail.is_some() {
            let woken = self.wake_word.load(Ordering::SeqCst);
            if self.wakes_seen.swap(woken, Ordering::SeqCst) != woken {
                timeout = Some(Duration::ZERO);
            }
        }
        let home = self.home_sleeps();
        let result = self.wait(timeout, sigmask);
        self.home_woke(home);
        self.enter_wait.store(false, Ordering::SeqCst);
        self.in_wait.store(false, Ordering::SeqCst);
        result?;
        self.drain(out, true)?;
        Ok(())
    }

    fn drain_now(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<()> {
        self.home_beat();
        self.flush_own_sends(out)?;
        self.collect(out, false)?;
        self.submit_queued()
    }

    fn drains_concurrently(&self) -> bool {
        true
    }

    fn set_home(&self, on: bool) {
        self.home.store(on, Ordering::SeqCst);
        if !on {
            self.home_thread.store(0, Ordering::Relaxed);
        }
    }

    fn home_claims(&self) {
        let tag = crate::backend::thread_tag();
        if self.home_thread.load(Ordering::Relaxed) != tag {
            self.home_thread.store(tag, Ordering::Relaxed);
            self.home_load.reset(self.clock());
        }
    }

    fn home_sample(&self, others_busy: bool) {
        if self.home.load(Ordering::Relaxed) && self.is_home() && self.home_load.sample(others_busy)
        {
            self.home_load.look(self.clock());
        }
    }

    fn home_closings(&self) -> u64 {
        self.home_load.closings()
    }

    fn has_home(&self) -> bool {
        self.home.load(Ordering::Relaxed)
    }

    fn set_sole_consumer(&self, sole: bool) {
        self.sole.store(sole, Ordering::Relaxed);
    }

    fn sleep_word(&self) -> Option<(&crate::loom::FutexWord, Option<u32>)> {
        self.cq_tail.as_ref().map(|cq| (cq.word(), cq.quiet()))
    }

    fn wake(&self) -> io::Result<()> {
        if self.cq_tail.is_some() {
            self.wake_word.fetch_add(1, Ordering::SeqCst);
            // Pairs with the fence in `poll`: either the harvester going
            // into `io_uring_enter` sees the bump, or we see it going there
            // and post to the ring.
            fence(Ordering::SeqCst);
            if !self.enter_wait.load(Ordering::SeqCst) {
                self.count_syscall();
                crate::futex::wake(&self.wake_word, 1);
                return Ok(());
            }
        }
        if let Some(waker) = &self.waker {
            use std::os::fd::AsRawFd;
            let msg = opcode::MsgRingData::new(types::Fd(self.ring.as_raw_fd()), 0, WAKE, None)
                .build()
                .flags(io_uring::squeue::Flags::SKIP_SUCCESS)
                .user_data(WAKE);
            let mut waker = waker.lock();
            // SAFETY: MSG_RING references no user memory.
            if unsafe { waker.submission().push(&msg) }.is_err() {
                // Full: a wakeup is already on its way.
                return Ok(());
            }
            self.count_syscall();
            waker.submit()?;
            // A failed message leaves a CQE here; drop it (the next wake
            // retries). Successes post none (SKIP_SUCCESS).
            waker.completion().for_each(drop);
            return Ok(());
        }
        let one = 1u64;
        self.count_syscall();
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
        self.finish_sends(LINGER);
        if self.pool.is_some() {
            // No receive takes a buffer after this returns; the pool's
            // memory is freed after the ring (field order) is closed.
            let _ = self.ring.submitter().unregister_buf_ring(BUF_GROUP);
        }
        if self.wake_fd >= 0 {
            // SAFETY: closing our own eventfd; the ring (dropped after)
            // stops polling it.
            unsafe { libc::close(self.wake_fd) };
        }
    }
}
