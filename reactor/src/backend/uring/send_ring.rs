//! A worker's own io_uring for its sends (see the uring backend).
//!
//! A `SEND` on a loopback or otherwise fast socket runs inline, inside the
//! `io_uring_enter` that submits it, and the kernel holds the ring's
//! submission lock for the whole batch. On the shared ring that lock is the
//! one every other worker's completion work needs (a receive's task work
//! posts its completion under it), so one worker's batch of sends stalls
//! the others: they spin on it. Each worker therefore submits its sends to
//! a small ring of its own. Its completions are read from that ring's
//! queue (no syscall) by the worker after each submission. A send that
//! could not run inline completes later; for those the shared ring watches
//! this ring's descriptor (a one-shot poll), so that whoever harvests the
//! shared ring hears of it, even while the owner sleeps there.
//!
//! Only the owner pushes. The owner submits, and so may an idle consumer
//! (sends an owner left unsubmitted when a task blocked its thread) and,
//! at runtime drop, the dropping thread; submissions go under `sq`. Any
//! consumer may read completions, under `cq`, and whoever reads also
//! fetches completions the kernel kept aside on overflow.

use crate::loom::sync::atomic::{self, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::loom::Mutex;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, squeue, IoUring};

/// Submission queue size.
const ENTRIES: u32 = 128;
/// Completion queue size: one slot per send in flight, as a rule. Past it
/// the kernel keeps completions in its overflow list (NODROP) until an
/// enter with GETEVENTS moves them in; every reader of the ring makes that
/// enter when it sees the overflow flag ([`SendRing::flush_overflow`]).
const CQ_ENTRIES: u32 = 1024;

/// The shared ring's watch over a send ring: the sends in flight there,
/// and whether the shared ring holds a one-shot poll on its descriptor (the
/// poll fires once the ring has a completion to read, or at once if it
/// already has one).
///
/// Whoever reads the ring's completions (its owner, or a harvester the poll
/// woke) then arms the poll if sends are still in flight and none is
/// armed; a harvester the poll woke first marks it fired. So while a send
/// is in flight, its completion is either read by someone or announced on
/// the shared ring. The loom model below checks that.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Sends pushed whose completion has not been read.
    in_flight: AtomicUsize,
    /// The shared ring holds a poll on the ring (armed, not yet fired).
    armed: atomic::AtomicBool,
}

impl Watch {
    /// `n` sends were pushed.
    pub(crate) fn pushed(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` completions were read.
    pub(crate) fn read(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// After reading the ring: true if the caller must arm the poll (sends
    /// are still in flight and none is armed); it counts as armed from now.
    pub(crate) fn needs_arming(&self) -> bool {
        // A compare-exchange, not a swap: the same here, and loom models it
        // faithfully against a concurrent store (tokio-rs/loom#254).
        self.in_flight() > 0
            && self
                .armed
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// The poll fired (it is one-shot): the caller reads the ring next,
    /// then asks [`needs_arming`](Self::needs_arming).
    pub(crate) fn fired(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

/// A worker's ring for its sends.
pub(crate) struct SendRing {
    ring: IoUring,
    /// Its place in the backend's list (the `user_data` of the shared
    /// ring's poll on it).
    index: u64,
    /// Serialises pushes and submissions.
    sq: Mutex<()>,
    /// Serialises reading completions.
    cq: Mutex<()>,
    /// Sends pushed and not yet submitted.
    unsubmitted: AtomicBool,
    /// Submissions of pushed sends so far, by `submit` or by a `push` that
    /// found the queue full (under `sq`).
    submits: AtomicU64,
    /// An idle consumer's last look at this ring while it held unsubmitted
    /// sends: `submits` then, and when (see [`stranded`](Self::stranded)).
    looked: Mutex<Option<(u64, Instant)>>,
    /// Sends in flight, and the shared ring's poll on this ring.
    watch: Watch,
}

/// How long sends must wait unsubmitted, their owner submitting nothing
/// meanwhile, before an idle consumer submits them in its place.
pub(crate) const STRANDED_AFTER: Duration = Duration::from_millis(1);

impl std::fmt::Debug for SendRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendRing")
            .field("index", &self.index)
            .field("in_flight", &self.watch.in_flight())
            .finish_non_exhaustive()
    }
}

impl SendRing {
    /// A ring in the same mode as the shared one (`coop`: its completion
    /// work waits for the owner's next syscall instead of interrupting it).
    pub(crate) fn new(index: u64, coop: bool) -> io::Result<SendRing> {
        // Tests shrink the completion queue to make it overflow.
        let cq = std::env::var("KEVENT_SEND_RING_CQ")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(CQ_ENTRIES);
        let mut builder = IoUring::builder();
        builder.setup_clamp().setup_cqsize(cq);
        if coop {
            builder.setup_coop_taskrun().setup_taskrun_flag();
        }
        Ok(SendRing {
            ring: builder.build(ENTRIES.min(cq))?,
            index,
            sq: Mutex::new(()),
            cq: Mutex::new(()),
            unsubmitted: AtomicBool::new(false),
            submits: AtomicU64::new(0),
            looked: Mutex::new(None),
            watch: Watch::default(),
        })
    }

    pub(crate) fn index(&self) -> u64 {
        self.index
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Sends pushed whose completion has not been read.
    pub(crate) fn in_flight(&self) -> usize {
        self.watch.in_flight()
    }

    /// Sends were pushed and not submitted yet.
    pub(crate) fn has_unsubmitted(&self) -> bool {
        self.unsubmitted.load(Ordering::SeqCst)
    }

    /// Whether the sends waiting here are stranded: seen unsubmitted by an
    /// earlier look at least [`STRANDED_AFTER`] before `now`, with no
    /// submission by the owner since. An owner that runs submits its sends
    /// at its next harvest; taking its ring's lock from another thread
    /// meanwhile only makes the owner wait for it (its pushes block while
    /// the other thread's enter runs the sends inline). An owner whose
    /// thread a task blocks submits nothing: the second look, after the
    /// runtime's stall check woke an idle worker, finds it so.
    pub(crate) fn stranded(&self, now: Instant) -> bool {
        if !self.has_unsubmitted() {
            return false;
        }
        let submits = self.submits.load(Ordering::SeqCst);
        let mut looked = self.looked.lock();
        match *looked {
            Some((seen, at)) if seen == submits => {
                if now.saturating_duration_since(at) < STRANDED_AFTER {
                    return false;
                }
                *looked = None;
                true
            }
            _ => {
                *looked = Some((submits, now));
                false
            }
        }
    }

    /// See [`Watch::needs_arming`].
    pub(crate) fn needs_watch(&self) -> bool {
        self.watch.needs_arming()
    }

    /// See [`Watch::fired`].
    pub(crate) fn watch_fired(&self) {
        self.watch.fired();
    }

    /// Pushes send SQEs; submitted by [`submit`](Self::submit).
    ///
    /// # Safety
    ///
    /// The memory each SQE names stays valid and unmoved until its
    /// completion has been read.
    pub(crate) unsafe fn push(
        &self,
        entries: &[squeue::Entry],
        syscalls: &dyn Fn(),
    ) -> io::Result<()> {
        let _guard = self.sq.lock();
        self.watch.pushed(entries.len());
        // SAFETY: `sq` serialises every access to this submission queue.
        let mut sq = unsafe { self.ring.submission_shared() };
        for e in entries {
            // SAFETY: the caller keeps what the SQE names valid until its
            // completion.
            while unsafe { sq.push(e) }.is_err() {
                // Full: hand what is queued to the kernel, then retry.
                sq.sync();
                drop(sq);
                syscalls();
                self.enter(false)?;
                self.submits.fetch_add(1, Ordering::SeqCst);
                // SAFETY: as above, still under `sq`'s lock.
                sq = unsafe { self.ring.submission_shared() };
            }
        }
        sq.sync();
        self.unsubmitted.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Submits what was pushed, or, with sends in flight, has the kernel
    /// post what waits for completion work on this thread (an overflowed
    /// completion queue is for [`flush_overflow`](Self::flush_overflow),
    /// after a read). False: nothing to enter for.
    pub(crate) fn submit(&self, syscalls: &dyn Fn()) -> io::Result<bool> {
        let _guard = self.sq.lock();
        if self.unsubmitted.swap(false, Ordering::SeqCst) {
            self.submits.fetch_add(1, Ordering::SeqCst);
            syscalls();
            self.enter(false)?;
            return Ok(true);
        }
        if self.in_flight() == 0 {
            return Ok(false);
        }
        // SAFETY: `sq` serialises every access to this submission queue.
        let sq = unsafe { self.ring.submission_shared() };
        let held = sq.taskrun();
        drop(sq);
        if held && self.ring_is_empty() {
            syscalls();
            self.enter(true)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Has the kernel move the completions it kept aside (the completion
    /// queue overflowed) into the queue, for a reader that emptied it. True
    /// if it entered: read again. Any thread may call it (the enter submits
    /// nothing: it runs under `sq`, and pushes are followed by `submit`).
    pub(crate) fn flush_overflow(&self, syscalls: &dyn Fn()) -> io::Result<bool> {
        let _guard = self.sq.lock();
        // SAFETY: `sq` serialises every access to this submission queue.
        let overflowed = unsafe { self.ring.submission_shared() }.cq_overflow();
        if overflowed {
            syscalls();
            self.enter(true)?;
        }
        Ok(overflowed)
    }

    fn ring_is_empty(&self) -> bool {
        let _turn = self.cq.lock();
        // SAFETY: `cq` is held: the only CompletionQueue handle.
        unsafe { self.ring.completion_shared() }.is_empty()
    }

    fn enter(&self, getevents: bool) -> io::Result<()> {
        enter(&self.ring, getevents, &self.unsubmitted)
    }

    /// Hands each completion's `user_data` and result to `f`; `wait_turn`:
    /// wait for a concurrent reader, else leave them to it. Returns how
    /// many were read.
    pub(crate) fn drain(&self, wait_turn: bool, mut f: impl FnMut(u64, i32)) -> usize {
        let _turn = if wait_turn {
            self.cq.lock()
        } else {
            match self.cq.try_lock() {
                Some(turn) => turn,
                None => return 0,
            }
        };
        let mut n = 0;
        // SAFETY: `cq` is held: this is the only CompletionQueue handle.
        for cqe in unsafe { self.ring.completion_shared() } {
            n += 1;
            f(cqe.user_data(), cqe.result());
            debug_assert!(!cqueue::more(cqe.flags()));
        }
        self.watch.read(n);
        n
    }
}

/// `io_uring_enter` to submit what is queued (`getevents`: and to post
/// completions the kernel holds back), retried on EINTR. On EBUSY (the
/// completion queue overflows) the SQEs stay queued and `unsubmitted` is
/// set: they go in with the next enter, after a reader drained it.
pub(crate) fn enter(ring: &IoUring, getevents: bool, unsubmitted: &AtomicBool) -> io::Result<()> {
    let submitter = ring.submitter();
    loop {
        let r = if getevents {
            submitter.submit_with_args(0, &io_uring::types::SubmitArgs::new())
        } else {
            submitter.submit()
        };
        match r {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                unsubmitted.store(true, Ordering::SeqCst);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! The watch with a simulated kernel: two sends in flight, the kernel
    //! completing them, the owner reading its ring, a harvester reading it
    //! when the poll fired. At the end, a completion nobody read and nobody
    //! announced would be lost: its writer would wait forever.
    use super::Watch;
    use crate::loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use crate::loom::sync::Arc;
    use crate::loom::Mutex;

    struct World {
        watch: Watch,
        /// The send ring's completions not yet read, and whether the shared
        /// ring's poll on it is armed: one lock, as the kernel posts a
        /// completion and checks the ring's pollers in one step, and arming
        /// a poll checks for completions already there.
        cq: Mutex<(usize, bool)>,
        /// The poll fired: its completion waits on the shared ring.
        announced: AtomicBool,
    }

    impl World {
        fn new(in_flight: usize) -> World {
            let w = World {
                watch: Watch::default(),
                cq: Mutex::new((0, false)),
                announced: AtomicBool::new(false),
            };
            w.watch.pushed(in_flight);
            w
        }

        /// The kernel completes a send.
        fn complete_one(&self) {
            let mut cq = self.cq.lock();
            cq.0 += 1;
            if std::mem::take(&mut cq.1) {
                self.announced.store(true, SeqCst);
            }
        }

        /// Reads the ring, then arms the poll as `watch_send_ring` does.
        fn read(&self) {
            let n = std::mem::take(&mut self.cq.lock().0);
            self.watch.read(n);
            if self.watch.needs_arming() {
                let mut cq = self.cq.lock();
                if cq.0 > 0 {
                    self.announced.store(true, SeqCst);
                } else {
                    cq.1 = true;
                }
            }
        }

        /// A harvester that found the poll's completion on the shared ring.
        fn harvest(&self) {
            if self
                .announced
                .compare_exchange(true, false, SeqCst, SeqCst)
                .is_ok()
            {
                self.watch.fired();
                self.read();
            }
        }
    }

    #[test]
    fn every_completion_is_read_or_announced() {
        loom::model(|| {
            let w = Arc::new(World::new(2));
            let kernel = {
                let w = w.clone();
                loom::thread::spawn(move || {
                    w.complete_one();
                    w.complete_one();
                })
            };
            let harvester = {
                let w = w.clone();
                loom::thread::spawn(move || {
                    w.harvest();
                    w.harvest();
                })
            };
            w.read();
            w.read();
            kernel.join().unwrap();
            harvester.join().unwrap();
            assert!(
                w.watch.in_flight() == 0 || w.announced.load(SeqCst),
                "a completion nobody read and nobody will hear of"
            );
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{SendRing, STRANDED_AFTER};
    use std::time::{Duration, Instant};

    fn push_nop(ring: &SendRing) {
        let nop = io_uring::opcode::Nop::new().build();
        // SAFETY: a NOP names no memory.
        unsafe { ring.push(&[nop], &|| ()) }.unwrap();
    }

    #[test]
    fn sends_are_stranded_only_after_two_looks_apart_with_no_submission_between() {
        let Ok(ring) = SendRing::new(0, true) else {
            return; // no io_uring here: the integration tests cover mio.
        };
        let t0 = Instant::now();
        assert!(!ring.stranded(t0), "nothing pushed");
        push_nop(&ring);
        assert!(!ring.stranded(t0), "a first look only notes the time");
        assert!(
            !ring.stranded(t0 + STRANDED_AFTER / 2),
            "a second look too soon"
        );
        assert!(ring.stranded(t0 + STRANDED_AFTER), "a second look later");
        assert!(ring.submit(&|| ()).unwrap());
        assert!(!ring.stranded(t0 + Duration::from_secs(1)), "submitted");
        // A look, then the owner submits and pushes again: a later look
        // finds sends waiting, but not since the first look.
        let t1 = t0 + Duration::from_secs(2);
        push_nop(&ring);
        assert!(!ring.stranded(t1));
        assert!(ring.submit(&|| ()).unwrap());
        push_nop(&ring);
        assert!(
            !ring.stranded(t1 + 2 * STRANDED_AFTER),
            "the owner submitted between the looks"
        );
        assert!(ring.stranded(t1 + 3 * STRANDED_AFTER));
    }
}
