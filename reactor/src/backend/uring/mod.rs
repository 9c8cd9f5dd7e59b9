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
//! Stream sockets may also receive through the ring (see `inbox.rs`):
//! a multishot receive per socket fills buffers from a pool shared with the
//! kernel (a provided-buffer ring); the harvester copies each completion
//! into the socket's inbox and hands the buffer back at once. Such a socket
//! keeps a poll for writability only.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring};

mod inbox;
mod outbox;
mod stream;

pub(crate) use self::stream::Stream;
pub use outbox::OUTBOX_LIMIT;

use self::inbox::{Inbox, Recv, PAUSE_AT};
use self::outbox::{Next, Outbox};
use super::send_ring::SendRing;
use super::Backend;
use crate::event::{Interest, Ready};
use crate::stream::StreamIo;

/// `user_data` of the wake eventfd's poll.
const WAKE: u64 = u64::MAX;
/// `user_data` of cancel requests (their own completions).
const REMOVE: u64 = u64::MAX - 1;
/// Completion ring size (the submission ring is half).
const ENTRIES: u32 = 1024;
/// Tag on the `user_data` of a socket's multishot receive (its entry
/// otherwise). An entry's top bit is its slab index's, which never gets
/// near 2^31.
const RECV: u64 = 1 << 63;
/// Tag on the `user_data` of a send through the ring (its outbox's id
/// otherwise; ids stay far below 2^62).
const SEND: u64 = 1 << 62;
/// Both tags: the `user_data` of the poll on a worker's send ring (its
/// index otherwise).
const SEND_RING: u64 = RECV | SEND;

/// Backend ids, so a thread's send ring is never taken for another's.
static NEXT_BACKEND: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The calling worker's send ring: its backend's id and the ring
    /// (dangling if it could not be made: then it sends on the shared
    /// ring).
    static OWN_SEND_RING: std::cell::RefCell<Option<(u64, Weak<SendRing>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The provided-buffer group receives take their buffers from.
const BUF_GROUP: u16 = 0;
/// Buffers in the pool (a power of two).
const BUFS: u16 = 512;
/// Bytes per buffer.
const BUF_SIZE: usize = 4096;

/// The provided-buffer ring: `BUFS` buffers of `BUF_SIZE` bytes the kernel
/// takes from when a receive completes, given back by the harvester.
struct BufPool {
    /// The ring of buffer descriptors, page aligned, shared with the kernel.
    ring: std::ptr::NonNull<types::BufRingEntry>,
    /// The buffers.
    mem: Box<[u8]>,
    /// Our tail (the kernel's copy is published by `publish`); touched by
    /// the harvester only.
    tail: AtomicU16,
}

// SAFETY: the descriptor ring is written only by the harvester (one thread
// at a time, by the ring's role protocol) and read by the kernel; `mem` is
// written by the kernel and read by the harvester after the completion that
// names it.
unsafe impl Send for BufPool {}
// SAFETY: as for Send.
unsafe impl Sync for BufPool {}

impl BufPool {
    fn ring_layout() -> std::alloc::Layout {
        let size = BUFS as usize * std::mem::size_of::<types::BufRingEntry>();
        std::alloc::Layout::from_size_align(size, 4096).expect("a valid layout")
    }

    /// Allocates the pool and registers it with `ring`.
    fn new(ring: &IoUring) -> io::Result<BufPool> {
        let layout = Self::ring_layout();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        let ring_ptr = std::ptr::NonNull::new(ptr)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let pool = BufPool {
            ring: ring_ptr,
            mem: vec![0u8; BUFS as usize * BUF_SIZE].into_boxed_slice(),
            tail: AtomicU16::new(0),
        };
        for bid in 0..BUFS {
            pool.recycle(bid);
        }
        pool.publish();
        // SAFETY: the descriptor ring is `BUFS` entries, page aligned, and
        // lives until the pool drops, which unregisters it first.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, BUFS, BUF_GROUP, 0)?;
        }
        Ok(pool)
    }

    /// Puts buffer `bid` back in the ring (visible to the kernel after
    /// `publish`).
    fn recycle(&self, bid: u16) {
        let tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: the index is masked into the ring's `BUFS` entries; only
        // the harvester writes descriptors, and the kernel reads only those
        // below the published tail, which this one is not yet.
        let entry = unsafe { &mut *self.ring.as_ptr().add((tail & (BUFS - 1)) as usize) };
        let start = bid as usize * BUF_SIZE;
        entry.set_addr(self.mem[start..].as_ptr() as u64);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail.store(tail.wrapping_add(1), Ordering::Relaxed);
    }

    /// Makes recycled buffers visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays the first descriptor's reserved
        // half-word, as the kernel's `io_uring_buf_ring` lays it out; it is
        // aligned for an atomic u16 and the kernel reads it with acquire.
        let tail = unsafe { &*types::BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail.load(Ordering::Relaxed), Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`.
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.mem[start..start + len.min(BUF_SIZE)]
    }
}

/// Recycles a completion's buffer when dropped.
struct RecycleOnDrop<'a>(&'a BufPool, Option<u16>);

impl Drop for RecycleOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(bid) = self.1 {
            self.0.recycle(bid);
        }
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel no longer
        // uses it (unregistered, or the ring is gone).
        unsafe { std::alloc::dealloc(self.ring.as_ptr().cast(), Self::ring_layout()) };
    }
}

/// What the backend watches for one registration.
#[derive(Debug)]
struct Watch {
    fd: RawFd,
    /// The poll's mask (writability only once receiving through the ring).
    mask: u32,
    /// The inbox of a socket receiving through the ring.
    inbox: Option<Arc<Inbox>>,
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

/// io_uring behind the [`Backend`] trait.
pub(crate) struct UringBackend {
    /// The ring. Shared: the SQ is guarded by `sq`, the CQ is read only by
    /// the single harvester. Declared first so it closes before `pool`'s
    /// memory goes.
    ring: IoUring,
    /// Where `wake` submits its MSG_RING (COOP_TASKRUN mode); `None`: wake
    /// through the eventfd.
    waker: Option<parking_lot::Mutex<IoUring>>,
    /// Buffers for receives through the ring; `None` where the kernel
    /// lacks what that needs (then every socket uses readiness).
    pool: Option<BufPool>,
    /// Serialises pushes to the submission queue.
    sq: parking_lot::Mutex<()>,
    /// Serialises reading the completion queue (and handing buffers back):
    /// the harvester after its sleep, or any consumer draining what is
    /// already there (`drain_now`).
    cq: parking_lot::Mutex<()>,
    /// What each registration watches, to re-arm a multishot request the
    /// kernel ended (it does when its completion cannot be posted).
    polls: parking_lot::Mutex<HashMap<u64, Watch>>,
    /// Each worker's ring for its sends, by index (see `send_ring`).
    /// Declared before `sends`: closed before the memory they send goes.
    send_rings: parking_lot::Mutex<Vec<Arc<SendRing>>>,
    /// Unique among backends (the key of `OWN_SEND_RING`).
    id: u64,
    /// The ring this backend feeds (`kevent::consumes`); 0: none (a probe).
    ring_id: usize,
    /// Outboxes with a send in flight, by outbox id: the kernel reads their
    /// memory until the send completes, and a dropped stream's outbox
    /// lives here until its last byte is sent.
    sends: parking_lot::Mutex<HashMap<u64, Arc<Outbox>>>,
    /// The eventfd `wake` writes (default mode); -1 with MSG_RING.
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

/// The poll mask of a socket receiving through the ring: its reads come as
/// receive completions, so the poll watches writability (and errors).
fn without_reads(mask: u32) -> u32 {
    mask & !((libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) as u32)
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
        let backend = UringBackend {
            ring,
            waker: waker.map(parking_lot::Mutex::new),
            pool,
            sq: parking_lot::Mutex::new(()),
            cq: parking_lot::Mutex::new(()),
            polls: parking_lot::Mutex::new(HashMap::new()),
            send_rings: parking_lot::Mutex::new(Vec::new()),
            id: NEXT_BACKEND.fetch_add(1, Ordering::Relaxed),
            ring_id,
            sends: parking_lot::Mutex::new(HashMap::new()),
            wake_fd,
            in_wait: std::sync::atomic::AtomicBool::new(false),
            unsubmitted: std::sync::atomic::AtomicBool::new(false),
            syscalls: AtomicU64::new(0),
        };
        if backend.waker.is_none() {
            backend.submit_poll(wake_fd, WAKE, libc::POLLIN as u32)?;
        }
        Ok(backend)
    }

    /// Submits SQEs from this thread if it consumes from the ring (`here`),
    /// or queues them for a consumer to submit (see `queue`).
    fn send(&self, entries: &[io_uring::squeue::Entry], here: bool) -> io::Result<()> {
        self.push(entries)?;
        self.submit_pushed(here)
    }

    /// Submits what was pushed from this thread if it consumes from the
    /// ring (`here`); else leaves it for a consumer, as `queue` does.
    fn submit_pushed(&self, here: bool) -> io::Result<()> {
        if here {
            return self.enter_submit();
        }
        self.unsubmitted.store(true, Ordering::SeqCst);
        if self.in_wait.load(Ordering::SeqCst) {
            self.wake()?;
        }
        Ok(())
    }

    /// Queues SQEs: from a consumer thread (`here`) for its own next enter
    /// (it enters between tasks or to sleep anyway, so a burst of accepts
    /// or first reads costs no syscall each, and the requests are usually
    /// its own); from another thread as `queue` does.
    fn post(&self, entries: &[io_uring::squeue::Entry], here: bool) -> io::Result<()> {
        if here {
            self.push(entries)?;
            self.unsubmitted.store(true, Ordering::SeqCst);
            Ok(())
        } else {
            self.queue(entries)
        }
    }

    /// Pushes SQEs and submits them from this thread.
    fn submit(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        self.push(entries)?;
        self.enter_submit()
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

    /// The kernel holds completions that only an `io_uring_enter` posts:
    /// some wait for task work (`IORING_SQ_TASKRUN`, COOP_TASKRUN mode), or
    /// the CQ overflowed and the kernel keeps the rest aside
    /// (`IORING_SQ_CQ_OVERFLOW`) until an enter flushes them.
    fn enter_pending(&self) -> bool {
        let _guard = self.sq.lock();
        // SAFETY: `sq` serialises every access to the submission queue.
        let sq = unsafe { self.ring.submission_shared() };
        (self.waker.is_some() && sq.taskrun()) || sq.cq_overflow()
    }

    /// Submits what is queued and runs pending task work, without waiting.
    fn enter_getevents(&self) -> io::Result<()> {
        self.count_syscall();
        self.unsubmitted.store(false, Ordering::SeqCst);
        match self
            .ring
            .submitter()
            .submit_with_args(0, &types::SubmitArgs::new())
        {
            Err(e) if !interrupted(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Submits what is queued. On EBUSY (the CQ overflows) the SQEs stay
    /// queued: `poll` and `drain_now` make the next enter, after a drain.
    fn enter_submit(&self) -> io::Result<()> {
        self.count_syscall();
        super::send_ring::enter(&self.ring, false, &self.unsubmitted)
    }

    fn submit_poll(&self, fd: RawFd, user_data: u64, mask: u32) -> io::Result<()> {
        self.submit(&[Self::poll_sqe(fd, user_data, mask)])
    }

    /// A multishot poll of `fd` for `mask`, reported as `user_data`.
    fn poll_sqe(fd: RawFd, user_data: u64, mask: u32) -> io_uring::squeue::Entry {
        opcode::PollAdd::new(types::Fd(fd), mask)
            .multi(true)
            .build()
            .user_data(user_data)
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

    /// Cancels every request with this `user_data` (a stray duplicate
    /// included). Needs 5.19, which a pool implies.
    fn cancel_all_sqe(user_data: u64) -> io_uring::squeue::Entry {
        opcode::AsyncCancel2::new(types::CancelBuilder::user_data(user_data).all())
            .build()
            .user_data(REMOVE)
    }

    /// A send of `len` bytes at `ptr`, inside `outbox`'s batch in flight
    /// (which stays put until the send's completion).
    fn send_sqe(outbox: &Outbox, ptr: *const u8, len: usize) -> io_uring::squeue::Entry {
        opcode::Send::new(
            types::Fd(outbox.fd()),
            ptr,
            len.min(u32::MAX as usize) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(outbox.id() | SEND)
    }

    fn recv_sqe(fd: RawFd, entry: u64) -> io_uring::squeue::Entry {
        opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP)
            .build()
            .user_data(entry | RECV)
    }

    /// Queues SQEs for a consumer's next enter, waking the harvester if it
    /// sleeps in the kernel.
    ///
    /// The kernel posts a request's completions from task work run by the
    /// thread that submitted it. Submitted from a thread that is not a ring
    /// consumer (say `main`, running an accept loop in `block_on`), every
    /// completion would wait for that thread (or interrupt it). So requests
    /// from such threads are submitted by a consumer: the harvester's next
    /// `io_uring_enter`, or a busy consumer's `drain_now`.
    fn queue(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        self.push(entries)?;
        self.submit_pushed(false)
    }

    /// A receive completion for `entry`: its bytes go to the inbox, its
    /// buffer back to the pool. Returns the readiness to deliver, if any,
    /// and queues a re-arm or a pausing cancel in `again`.
    fn received(
        &self,
        polls: &HashMap<u64, Watch>,
        entry: u64,
        res: i32,
        flags: u32,
        again: &mut Vec<(u64, io_uring::squeue::Entry)>,
    ) -> Option<Ready> {
        let pool = self.pool.as_ref()?;
        let bid = cqueue::buffer_select(flags);
        // Every buffer a completion names goes back to the pool, after its
        // bytes are copied out below (the pool's memory outlives this call).
        let _recycle = RecycleOnDrop(pool, bid);
        let watch = polls.get(&entry);
        // Deregistered meanwhile: the bytes go nowhere.
        let (watch, inbox) = watch.and_then(|w| Some((w, w.inbox.as_ref()?)))?;
        let mut s = inbox.lock();
        let mut ready = None;
        if res > 0 {
            if let Some(bid) = bid {
                s.push(pool.bytes(bid, res as usize));
            }
            ready = Some(Ready::READABLE);
        } else if res == 0 {
            s.eof = true;
            ready = Some(Ready::READABLE | Ready::READ_CLOSED);
        } else if res != -libc::ENOBUFS && res != -libc::ECANCELED {
            s.error = Some(-res);
            ready = Some(Ready::READABLE);
        }
        if cqueue::more(flags) {
            if s.recv == Recv::Armed && s.unread() >= PAUSE_AT {
                // Full: stop receiving; the reader resumes it.
                s.recv = Recv::Cancelling { resume: false };
                again.push((entry, Self::cancel_all_sqe(entry | RECV)));
            }
            return ready;
        }
        // The request ended. Receive again unless it ended for good or the
        // inbox is full (the reader resumes it then).
        let live = s.live();
        let rearm = match s.recv {
            Recv::Armed => live && res != -libc::ECANCELED && s.unread() < PAUSE_AT,
            Recv::Cancelling { resume } => live && resume,
            Recv::Idle => false,
            // Cancelled to move to its reader's thread: wake the reader,
            // whose next read re-arms it there.
            Recv::Moving => {
                if live {
                    ready = Some(ready.unwrap_or(Ready::EMPTY) | Ready::READABLE);
                }
                false
            }
        };
        if rearm {
            s.recv = Recv::Armed;
            // Submitted by whichever consumer enters next.
            s.owner = 0;
            again.push((entry, Self::recv_sqe(watch.fd, entry)));
        } else {
            s.recv = Recv::Idle;
        }
        ready
    }

    /// Moves completions into `out`; re-arms polls the kernel ended.
    /// `wait_turn`: wait for a concurrent drain to finish; otherwise leave
    /// the completions to it and return 0.
    fn drain(&self, out: &mut Vec<(u64, Ready)>, wait_turn: bool) -> io::Result<usize> {
        let mut rearm = Vec::new();
        let mut again = Vec::new();
        let mut resend = Vec::new();
        let mut writers = Vec::new();
        let mut fired = Vec::new();
        let mut woke = false;
        let mut n = 0;
        {
            let _turn = if wait_turn {
                self.cq.lock()
            } else {
                match self.cq.try_lock() {
                    Some(turn) => turn,
                    None => return Ok(0),
                }
            };
            // SAFETY: `cq` is held: this is the only CompletionQueue
            // handle, and the only thread handing buffers back.
            let cq = unsafe { self.ring.completion_shared() };
            for cqe in cq {
                n += 1;
                let data = cqe.user_data();
                let res = cqe.result();
                let more = cqueue::more(cqe.flags());
                match data {
                    REMOVE => {}
                    _ if data != WAKE && data & SEND_RING == SEND_RING => {
                        fired.push(data & !SEND_RING);
                    }
                    _ if data != WAKE && data & RECV == 0 && data & SEND != 0 => {
                        resend.extend(self.sent(data, res, out, &mut writers));
                    }
                    _ if data != WAKE && data & RECV != 0 => {
                        let entry = data & !RECV;
                        let polls = self.polls.lock();
                        if let Some(ready) =
                            self.received(&polls, entry, res, cqe.flags(), &mut again)
                        {
                            out.push((entry, ready));
                        }
                    }
                    // A MSG_RING from `wake` (nothing to re-arm or read).
                    WAKE if self.waker.is_some() => {}
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
            if let Some(pool) = &self.pool {
                pool.publish();
            }
        }
        if !again.is_empty() {
            // Pushed under the lock `deregister` cancels under, and only
            // for live registrations, so no receive outlives its cancel.
            // Submitted by this harvester's next enter (`poll` makes it).
            let polls = self.polls.lock();
            let live: Vec<_> = again
                .into_iter()
                .filter(|(entry, _)| polls.contains_key(entry))
                .map(|(_, sqe)| sqe)
                .collect();
            self.push(&live)?;
            self.unsubmitted.store(true, Ordering::SeqCst);
        }
        for index in fired {
            // A worker's send ring has completions (sends that did not run
            // inline): read them here, its owner may be asleep in this wait.
            let ring = self.send_rings.lock()[index as usize].clone();
            ring.watch_fired();
            self.read_send_ring(&ring, out, &mut writers, &mut resend)?;
            self.watch_send_ring(&ring)?;
        }
        if !resend.is_empty() {
            // The rest of a batch, or the next one: with this consumer's
            // next enter, like any request it queues.
            self.push(&resend)?;
            self.unsubmitted.store(true, Ordering::SeqCst);
        }
        // Writers waiting for room or for their flush, woken with no lock
        // of ours held.
        for w in writers {
            w.wake();
        }
        if woke {
            let mut buf = 0u64;
            self.count_syscall();
            // SAFETY: reading 8 bytes into a u64 from our eventfd.
            unsafe { libc::read(self.wake_fd, (&mut buf as *mut u64).cast(), 8) };
        }
        let mut rearmed = false;
        for (fd, data, mask) in rearm {
            if data == WAKE {
                self.submit_poll(fd, data, mask)?;
                continue;
            }
            // Look up and push under the lock: a `deregister` racing with
            // us then either pushes its removal after the new poll, or has
            // removed the registration before we look and we re-arm nothing
            // (a poll re-armed after its removal would keep the socket
            // open). Submitted below, with the lock released.
            let polls = self.polls.lock();
            if let Some(w) = polls.get(&data) {
                self.push(&[Self::poll_sqe(w.fd, data, w.mask)])?;
                rearmed = true;
            }
        }
        if rearmed {
            self.enter_submit()?;
        }
        Ok(n)
    }
}

impl UringBackend {
    /// A send's completion (`data`: its `user_data`): the outbox moves on
    /// and its waiting writers go to `writers`. Returns the next send to
    /// submit, if any.
    fn sent(
        &self,
        data: u64,
        res: i32,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut Vec<std::task::Waker>,
    ) -> Option<io_uring::squeue::Entry> {
        let id = data & !SEND;
        let mut sends = self.sends.lock();
        let outbox = sends.get(&id)?;
        let (next, waiting) = outbox.completed(res);
        if !waiting.is_empty() {
            // A waiter may run on a consumer asleep in the shared ring's
            // wait: the event brings it back.
            writers.extend(waiting);
            out.push((outbox.entry(), Ready::WRITABLE));
        }
        match next {
            Next::Send(p, len) => Some(Self::send_sqe(outbox, p, len)),
            Next::Drained | Next::Failed => {
                sends.remove(&id);
                None
            }
        }
    }

    /// Counts one syscall made for the ring.
    fn count_syscall(&self) {
        self.syscalls.fetch_add(1, Ordering::Relaxed);
        crate::syscalls::count(1);
    }

    /// The calling worker's send ring, made on first use (`create`).
    /// `None`: the thread has none, or it could not be made (then its
    /// sends go through the shared ring).
    fn own_send_ring(&self, create: bool) -> Option<Arc<SendRing>> {
        OWN_SEND_RING.with(|own| {
            let mut own = own.borrow_mut();
            if let Some((id, ring)) = own.as_ref() {
                if *id == self.id {
                    return ring.upgrade();
                }
            }
            if !create {
                return None;
            }
            let mut rings = self.send_rings.lock();
            let made = SendRing::new(rings.len() as u64, self.waker.is_some()).map(Arc::new);
            let weak = match made {
                Ok(ring) => {
                    let weak = Arc::downgrade(&ring);
                    rings.push(ring);
                    weak
                }
                // EMFILE, or out of locked memory: the shared ring sends.
                Err(_) => Weak::new(),
            };
            *own = Some((self.id, weak.clone()));
            weak.upgrade()
        })
    }

    /// Submits the calling worker's sends and reads their completions,
    /// again while completions start further sends inline; then, with
    /// sends still in flight, has the shared ring watch for them.
    fn flush_own_sends(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<()> {
        let Some(ring) = self.own_send_ring(false) else {
            return Ok(());
        };
        let mut writers = Vec::new();
        let mut resend = Vec::new();
        let mut result = Ok(());
        loop {
            if let Err(e) = ring.submit(&|| self.count_syscall()) {
                result = Err(e);
                break;
            }
            if let Err(e) = self.read_send_ring(&ring, out, &mut writers, &mut resend) {
                result = Err(e);
                break;
            }
            if resend.is_empty() {
                break;
            }
            // SAFETY: a send names its outbox's batch in flight, which stays
            // put until its completion (the outbox is held in `sends`).
            if let Err(e) = unsafe { ring.push(&resend, &|| self.count_syscall()) } {
                result = Err(e);
                break;
            }
            resend.clear();
        }
        for w in writers {
            w.wake();
        }
        result?;
        self.watch_send_ring(&ring)
    }

    /// Reads every completion of a send ring, those the kernel kept aside
    /// when its completion queue overflowed included: their outboxes move
    /// on, waiting writers go to `writers`, next sends to `resend`.
    fn read_send_ring(
        &self,
        ring: &SendRing,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut Vec<std::task::Waker>,
        resend: &mut Vec<io_uring::squeue::Entry>,
    ) -> io::Result<()> {
        loop {
            ring.drain(true, |data, res| {
                resend.extend(self.sent(data, res, out, writers));
            });
            if !ring.flush_overflow(&|| self.count_syscall())? {
                return Ok(());
            }
        }
    }

    /// Submits the sends other workers pushed and left unsubmitted, from
    /// an idle consumer (`poll` is only called on the way to sleep). A
    /// worker submits its own at its next harvest, but one stuck in a task
    /// that blocks its thread would hold them back until the task returns;
    /// the runtime's stall check wakes idle workers meanwhile, which send
    /// them from here.
    fn submit_stranded_sends(&self) -> io::Result<()> {
        let stranded: Vec<_> = self
            .send_rings
            .lock()
            .iter()
            .filter(|r| r.has_unsubmitted())
            .cloned()
            .collect();
        for ring in stranded {
            ring.submit(&|| self.count_syscall())?;
            self.watch_send_ring(&ring)?;
        }
        Ok(())
    }

    /// Arms the shared ring's one-shot poll on `ring` if sends are in
    /// flight there and none is armed: their completions then reach
    /// whoever harvests. Submitted with this consumer's next enter.
    fn watch_send_ring(&self, ring: &SendRing) -> io::Result<()> {
        if ring.needs_watch() {
            let sqe = opcode::PollAdd::new(types::Fd(ring.fd()), libc::POLLIN as u32)
                .build()
                .user_data(SEND_RING | ring.index());
            self.push(&[sqe])?;
            self.unsubmitted.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads what the kernel already posted (no syscall); when there is
    /// nothing but the kernel holds completions back (task work, CQ
    /// overflow), enters once to have them posted and reads again.
    /// `wait_turn` as for `drain`.
    fn collect(&self, out: &mut Vec<(u64, Ready)>, wait_turn: bool) -> io::Result<usize> {
        let drained = self.drain(out, wait_turn)?;
        if drained > 0 || !self.enter_pending() {
            return Ok(drained);
        }
        self.enter_getevents()?;
        self.drain(out, wait_turn)
    }

    /// Submits requests queued for a consumer's enter, if any.
    fn submit_queued(&self) -> io::Result<()> {
        if self.unsubmitted.swap(false, Ordering::SeqCst) {
            self.enter_submit()?;
        }
        Ok(())
    }

    /// Submits what is queued and sleeps for one completion or `timeout`.
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

impl UringBackend {
    /// The calling thread consumes from this backend's ring.
    fn consumes_here(&self) -> bool {
        self.ring_id != 0 && crate::kevent::consumes(self.ring_id)
    }

    /// Makes the stream socket `fd`, registered as `entry`, receive through
    /// the ring into the returned inbox (the stream checked that the pool
    /// exists). The calling thread, if it consumes from the ring, becomes
    /// the receive's owner: the kernel runs its completion work there.
    fn arm_recv(&self, fd: RawFd, entry: u64) -> io::Result<Arc<Inbox>> {
        let here = self.consumes_here();
        let mut polls = self.polls.lock();
        let Some(w) = polls.get_mut(&entry) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "receive through the ring on a registration that is gone",
            ));
        };
        if let Some(inbox) = &w.inbox {
            return Ok(inbox.clone());
        }
        // A consumer's next enter submits it, as a rule before another
        // consumer's does.
        let inbox = Arc::new(Inbox::new(if here {
            crate::kevent::thread_tag()
        } else {
            0
        }));
        w.inbox = Some(inbox.clone());
        w.mask = without_reads(w.mask);
        let poll = Self::poll_sqe(fd, entry, w.mask);
        // In order: the old poll goes, the new one and the receive come.
        let sqes = [Self::cancel_all_sqe(entry), poll, Self::recv_sqe(fd, entry)];
        self.post(&sqes, here)?;
        Ok(inbox)
    }

    /// Starts sending what `outbox` holds, unless a send is in flight: on
    /// the calling worker's own send ring, or the shared ring.
    fn start_send(&self, outbox: &Arc<Outbox>) -> io::Result<()> {
        let here = self.consumes_here();
        let mut sends = self.sends.lock();
        if let Some((ptr, len)) = outbox.start() {
            // Held here until the batch is sent: the kernel reads it.
            sends.insert(outbox.id(), outbox.clone());
            drop(sends);
            let sqe = Self::send_sqe(outbox, ptr, len);
            match self.own_send_ring(here).filter(|_| here) {
                // SAFETY: the batch stays put until the send's completion
                // (the outbox is held in `sends` until then).
                Some(ring) => unsafe { ring.push(&[sqe], &|| self.count_syscall())? },
                None => self.post(&[sqe], here)?,
            }
        }
        Ok(())
    }

    /// Receives again for `entry` (its inbox drained below the mark, or
    /// its receive moves to this thread).
    fn resume_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        let polls = self.polls.lock();
        if let Some(w) = polls.get(&entry) {
            let sqe = Self::recv_sqe(w.fd, entry);
            self.post(&[sqe], here)?;
        }
        Ok(())
    }

    /// Cancels `entry`'s receive; its last completion wakes the reader,
    /// who re-arms it from its own thread (see `Inbox::take`).
    fn cancel_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        // Under the lock `deregister` cancels under, like every receive
        // submission, so this cancel never outlives the registration.
        let polls = self.polls.lock();
        if polls.contains_key(&entry) {
            self.post(&[Self::cancel_all_sqe(entry | RECV)], here)?;
        }
        Ok(())
    }
}

impl Backend for UringBackend {
    fn register(&self, fd: RawFd, entry: u64, interest: Interest, here: bool) -> io::Result<()> {
        debug_assert_eq!(entry & RECV, 0, "entry index beyond 2^31");
        let mask = poll_mask(interest);
        let watch = Watch {
            fd,
            mask,
            inbox: None,
        };
        self.polls.lock().insert(entry, watch);
        self.post(&[Self::poll_sqe(fd, entry, mask)], here)
    }

    fn reregister(&self, fd: RawFd, entry: u64, interest: Interest, here: bool) -> io::Result<()> {
        let mut mask = poll_mask(interest);
        {
            let mut polls = self.polls.lock();
            let w = polls.entry(entry).or_insert(Watch {
                fd,
                mask,
                inbox: None,
            });
            if w.inbox.is_some() {
                mask = without_reads(mask);
            }
            w.mask = mask;
        }
        let add = Self::poll_sqe(fd, entry, mask);
        self.send(&[Self::remove_sqe(entry), add], here)
    }

    fn deregister(&self, _fd: RawFd, entry: u64, here: bool) -> io::Result<()> {
        // The removal is pushed under the lock `drain` re-arms under, so it
        // follows any re-armed poll in the submission queue, which the
        // kernel reads in order. It is submitted once the lock is released:
        // registrations and receives on other workers need that lock, and
        // must not wait for our syscall.
        {
            let mut polls = self.polls.lock();
            let watch = polls.remove(&entry);
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
        self.submit_pushed(here)
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
        self.flush_own_sends(out)?;
        self.submit_stranded_sends()?;
        if self.collect(out, true)? > 0 || out.len() > before || timeout == Some(Duration::ZERO) {
            return self.submit_queued();
        }
        self.unsubmitted.store(false, Ordering::SeqCst);
        self.in_wait.store(true, Ordering::SeqCst);
        // Pairs with `queue`: a request queued before `in_wait` was set is
        // submitted by the enter below; one queued after it wakes us.
        std::sync::atomic::fence(Ordering::SeqCst);
        let result = self.wait(timeout, sigmask);
        self.in_wait.store(false, Ordering::SeqCst);
        result?;
        self.drain(out, true)?;
        Ok(())
    }

    fn drain_now(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<Option<usize>> {
        self.flush_own_sends(out)?;
        let drained = self.collect(out, false)?;
        self.submit_queued()?;
        Ok(Some(drained))
    }

    fn wake(&self) -> io::Result<()> {
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

impl UringBackend {
    /// Sends what outboxes still hold, for at most `limit`: bytes a program
    /// wrote must not vanish because its runtime went away first (a kernel
    /// socket buffer would still send them).
    fn finish_sends(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut out = Vec::new();
        while !self.sends.lock().is_empty() {
            // The workers are gone: what their rings hold is sent from here.
            let rings = self.send_rings.lock().clone();
            let mut resend = Vec::new();
            let mut writers = Vec::new();
            for ring in rings {
                if ring.submit(&|| self.count_syscall()).is_err() {
                    continue;
                }
                if self
                    .read_send_ring(&ring, &mut out, &mut writers, &mut resend)
                    .is_err()
                {
                    continue;
                }
            }
            for w in writers {
                w.wake();
            }
            if self.push(&resend).is_err() {
                break;
            }
            self.unsubmitted.store(true, Ordering::SeqCst);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero()
                || self.submit_queued().is_err()
                || self.wait(Some(left.min(LINGER_STEP)), None).is_err()
            {
                break;
            }
            out.clear();
            if self.drain(&mut out, true).is_err() {
                break;
            }
        }
    }
}

/// How long a dropped ring keeps sending what outboxes hold, at most.
const LINGER: Duration = Duration::from_secs(2);
/// One wait of that.
const LINGER_STEP: Duration = Duration::from_millis(10);

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
