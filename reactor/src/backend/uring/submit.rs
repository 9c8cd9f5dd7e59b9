//! Submission: how requests reach the kernel, and from which thread.
//!
//! The kernel runs a request's completion work on the thread that
//! submitted it. A thread that consumes from the ring (`here`) may submit
//! requests itself and own them; any other thread only pushes them for a
//! consumer's next `io_uring_enter`, waking the harvester if it sleeps in
//! the kernel. The operations, from the lowest:
//!
//! - `push`: into the submission queue (under `sq`), entering only when the
//!   queue is full;
//! - `enter_submit`, `enter_getevents`, `submit_queued`: the enters (the
//!   last only if something was left for a consumer);
//! - `submit`: push and enter now, whoever calls;
//! - `queue`: push for a consumer to submit (`submit_pushed(false)`);
//! - `submit_or_queue`: push, then enter now on a consumer, else queue;
//! - `post`: push; a consumer leaves it for its own next enter (it enters
//!   between tasks or to sleep anyway, so a burst of accepts or first reads
//!   costs no syscall each), any other thread queues.
//!
//! And the requests every path shares: a multishot poll and its removal.

use crate::loom::sync::atomic::{fence, AtomicBool, Ordering};
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::completion::REMOVE;
use super::recv::Reader;
use super::{interrupted, UringBackend};
use crate::backend::Poller;

/// How long the home thread may go without reading the completion queue,
/// outside its sleep in the ring, before others submit what was queued for
/// it (`UringBackend::home_stuck`).
const HOME_STUCK: std::time::Duration = std::time::Duration::from_millis(2);

/// The handshake between a thread that leaves requests for a consumer to
/// submit (a thread outside the runtime, or any worker beside the home)
/// and the consumer going to sleep in the ring, whose `io_uring_enter`
/// submits every request pushed before it. Both sides store, fence
/// (`SeqCst`), then load: either the sleeper's enter submits the request,
/// or the queuer sees it in its wait and wakes it. Modelled below
/// (`a_request_queued_as_the_harvester_sleeps_is_submitted_or_wakes_it`;
/// without the queuer's fence loom finds the request left unseen, as it
/// treats a `SeqCst` store and load as release and acquire).
///
/// The queuing side, after pushing: marks the requests queued; true if a
/// consumer sleeps in the ring (or is about to enter it) and must be woken.
pub(super) fn mark_queued(unsubmitted: &AtomicBool, in_wait: &AtomicBool) -> bool {
    unsubmitted.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    in_wait.load(Ordering::SeqCst)
}

/// The sleeping side, before its enter (which submits whatever was pushed):
/// what was queued so far goes in with it, and later requests wake it.
pub(super) fn enter_wait(unsubmitted: &AtomicBool, in_wait: &AtomicBool) {
    unsubmitted.store(false, Ordering::SeqCst);
    in_wait.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// The sleeping side on the completion tail, which does not enter: true if
/// requests were queued and must be submitted before it sleeps; later ones
/// wake it.
pub(super) fn wait_on_tail(unsubmitted: &AtomicBool, in_wait: &AtomicBool) -> bool {
    in_wait.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    unsubmitted.swap(false, Ordering::SeqCst)
}

impl UringBackend {
    /// The calling thread consumes from this backend's ring. A thread that
    /// does not must never enter the kernel for the ring: its enter would
    /// submit whatever other threads queued and make it their owner, and
    /// the kernel then runs their completion work on it (interrupting its
    /// own blocking calls: a `read` with a timeout returns `EINTR`).
    pub(super) fn consumes_here(&self) -> bool {
        self.ring_id != 0 && crate::backend::consumes(self.ring_id) && !self.leaves_to_home()
    }

    /// A home consumer is attached and the calling thread is not its:
    /// requests go to the home thread to submit (`queue`), so that the
    /// kernel's completion work for them wakes only the thread that sleeps
    /// in the ring, never a worker parked elsewhere (`Consumer::set_home`).
    pub(super) fn leaves_to_home(&self) -> bool {
        self.home.load(Ordering::Relaxed) && self.home_load.is_open() && !self.is_home()
    }

    /// The thread that owns a request the calling thread posts now (its
    /// `backend::thread_tag`), as far as it can tell: itself if it consumes
    /// here, the home's if it leaves requests to an open home, else 0
    /// (unknown: whichever consumer enters next).
    pub(super) fn owner_of_posts(&self) -> usize {
        if self.consumes_here() {
            crate::backend::thread_tag()
        } else if self.home.load(Ordering::Relaxed) && self.home_load.is_open() {
            self.home_thread.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Where the receive of a socket the calling thread reads belongs, for
    /// `Inbox::take`: with the owner of its posts, if it is a consumer of
    /// the ring; `None` for any other thread, whose reads never move a
    /// receive.
    pub(super) fn receive_home(&self) -> Option<Reader> {
        (self.ring_id != 0 && crate::backend::consumes(self.ring_id))
            .then(|| self.owner_of_posts())
            .filter(|&tag| tag != 0)
            .map(|tag| Reader {
                tag,
                settled: self.home_settled(),
            })
    }

    /// Whether a request's owner is the thread that posted it (or the home
    /// it leaves it to): false while the home is closed, when whichever
    /// consumer enters next submits everything pushed so far.
    pub(super) fn home_settled(&self) -> bool {
        !self.home.load(Ordering::Relaxed) || self.home_load.is_open()
    }

    /// The calling thread is the home consumer's (`Consumer::set_home`).
    pub(super) fn is_home(&self) -> bool {
        self.home_thread.load(Ordering::Relaxed) == crate::backend::thread_tag()
    }

    /// The home thread reads the completion queue (it is not stuck).
    pub(super) fn home_beat(&self) {
        if self.home.load(Ordering::Relaxed) && self.is_home() {
            // One writer (the home thread): a plain increment, no locked
            // read-modify-write on every harvest.
            let beat = self.home_beat.load(Ordering::Relaxed);
            self.home_beat
                .store(beat.wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Nanoseconds since this backend was made.
    pub(super) fn clock(&self) -> u64 {
        self.born.elapsed().as_nanos() as u64
    }

    /// The calling thread is about to sleep in the ring: if it is the
    /// home's, when (for `home_woke`).
    pub(super) fn home_sleeps(&self) -> Option<u64> {
        (self.home.load(Ordering::Relaxed) && self.is_home()).then(|| self.clock())
    }

    /// The home's sleep that began at `from` (`home_sleeps`) is over.
    pub(super) fn home_woke(&self, from: Option<u64>) {
        if let Some(from) = from {
            self.home_load.slept(from, self.clock());
        }
    }

    /// The home thread has not read the completion queue for `HOME_STUCK`
    /// as far as the consumers that looked can tell, and does not sleep in
    /// the ring (where `queue` wakes it): it is stuck in a long task, and
    /// requests queued for it are better submitted by whoever looks (who
    /// then owns them). A heuristic: a false answer either way only moves
    /// which thread owns a request.
    fn home_stuck(&self) -> bool {
        if self.in_wait.load(Ordering::SeqCst) {
            return false;
        }
        let now = self.clock();
        let beat = self.home_beat.load(Ordering::Relaxed);
        if self.beat_seen.swap(beat, Ordering::Relaxed) != beat {
            self.beat_seen_at.store(now, Ordering::Relaxed);
            return false;
        }
        now.saturating_sub(self.beat_seen_at.load(Ordering::Relaxed))
            >= HOME_STUCK.as_nanos() as u64
    }

    /// Submits SQEs from this thread if it consumes from the ring (`here`),
    /// or queues them for a consumer to submit (see `queue`).
    pub(super) fn submit_or_queue(
        &self,
        entries: &[io_uring::squeue::Entry],
        here: bool,
    ) -> io::Result<()> {
        self.push(entries)?;
        self.submit_pushed(here)
    }

    /// Submits what was pushed from this thread if it consumes from the
    /// ring (`here`); else leaves it for a consumer, as `queue` does.
    pub(super) fn submit_pushed(&self, here: bool) -> io::Result<()> {
        if here {
            return self.enter_submit();
        }
        if mark_queued(&self.unsubmitted, &self.in_wait) {
            self.wake()?;
        }
        Ok(())
    }

    /// Queues SQEs: from a consumer thread (`here`) for its own next enter
    /// (it enters between tasks or to sleep anyway, so a burst of accepts
    /// or first reads costs no syscall each, and the requests are usually
    /// its own); from another thread as `queue` does.
    pub(super) fn post(&self, entries: &[io_uring::squeue::Entry], here: bool) -> io::Result<()> {
        if here {
            self.push(entries)?;
            self.unsubmitted.store(true, Ordering::SeqCst);
            Ok(())
        } else {
            self.queue(entries)
        }
    }

    /// Pushes SQEs without submitting them.
    pub(super) fn push(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
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

    /// Queues SQEs for a consumer's next enter, waking the harvester if it
    /// sleeps in the kernel.
    ///
    /// The kernel posts a request's completions from task work run by the
    /// thread that submitted it. Submitted from a thread that is not a ring
    /// consumer (say `main`, running an accept loop in `block_on`), every
    /// completion would wait for that thread (or interrupt it). So requests
    /// from such threads are submitted by a consumer: the harvester's next
    /// `io_uring_enter`, or a busy consumer's `drain_now`.
    pub(super) fn queue(&self, entries: &[io_uring::squeue::Entry]) -> io::Result<()> {
        self.push(entries)?;
        self.submit_pushed(false)
    }

    /// Submits requests queued for a consumer's enter, if any.
    pub(super) fn submit_queued(&self) -> io::Result<()> {
        if self.leaves_to_home() && !(self.unsubmitted.load(Ordering::SeqCst) && self.home_stuck())
        {
            return Ok(());
        }
        if self.unsubmitted.swap(false, Ordering::SeqCst) {
            self.enter_submit()?;
        }
        Ok(())
    }

    /// The kernel holds completions that only an `io_uring_enter` posts:
    /// some wait for task work (`IORING_SQ_TASKRUN`, COOP_TASKRUN mode), or
    /// the CQ overflowed and the kernel keeps the rest aside
    /// (`IORING_SQ_CQ_OVERFLOW`) until an enter flushes them.
    pub(super) fn enter_pending(&self) -> bool {
        let _guard = self.sq.lock();
        // SAFETY: `sq` serialises every access to the submission queue.
        let sq = unsafe { self.ring.submission_shared() };
        (self.waker.is_some() && sq.taskrun()) || sq.cq_overflow()
    }

    /// Submits what is queued and runs pending task work, without waiting.
    pub(super) fn enter_getevents(&self) -> io::Result<()> {
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
    pub(super) fn enter_submit(&self) -> io::Result<()> {
        self.count_syscall();
        super::send_ring::enter(&self.ring, false, &self.unsubmitted)
    }

    /// A multishot poll of `fd` for `mask`, reported as `user_data`.
    pub(super) fn poll_sqe(fd: RawFd, user_data: u64, mask: u32) -> io_uring::squeue::Entry {
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
    pub(super) fn remove_sqe(user_data: u64) -> io_uring::squeue::Entry {
        opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(REMOVE)
    }

    /// Cancels every request with this `user_data` (a stray duplicate
    /// included). Needs 5.19, which a pool implies.
    pub(super) fn cancel_all_sqe(user_data: u64) -> io_uring::squeue::Entry {
        opcode::AsyncCancel2::new(types::CancelBuilder::user_data(user_data).all())
            .build()
            .user_data(REMOVE)
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::{enter_wait, mark_queued, wait_on_tail};
    use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use crate::loom::sync::Arc;

    /// The ring's state in the models: requests pushed to the submission
    /// queue, and the handshake's two flags.
    #[derive(Default)]
    struct World {
        pushed: AtomicUsize,
        unsubmitted: AtomicBool,
        in_wait: AtomicBool,
    }

    /// A thread that pushes one request and marks it queued
    /// (`submit_pushed(false)`); it returns whether it wakes the sleeper.
    fn queue_one(w: &Arc<World>) -> loom::thread::JoinHandle<bool> {
        let w = w.clone();
        loom::thread::spawn(move || {
            w.pushed.fetch_add(1, SeqCst);
            mark_queued(&w.unsubmitted, &w.in_wait)
        })
    }

    /// A thread queues a request (`submit_pushed(false)`) while the
    /// harvester goes to sleep in `io_uring_enter` (`poll`): the enter
    /// submits it (it reads the queue after `enter_wait`), or the queuer
    /// wakes the harvester. Never neither: the request would wait for the
    /// harvester's next timeout.
    #[test]
    fn a_request_queued_as_the_harvester_sleeps_is_submitted_or_wakes_it() {
        loom::model(|| {
            let w = Arc::new(World::default());
            let queuer = queue_one(&w);
            enter_wait(&w.unsubmitted, &w.in_wait);
            let submitted = w.pushed.load(SeqCst);
            let woken = queuer.join().unwrap();
            assert!(submitted == 1 || woken, "a queued request waits unseen");
        });
    }

    /// The same for a harvester sleeping on the completion tail, which
    /// submits only what it finds marked.
    #[test]
    fn a_request_queued_as_the_harvester_sleeps_on_the_tail_is_submitted_or_wakes_it() {
        loom::model(|| {
            let w = Arc::new(World::default());
            let queuer = queue_one(&w);
            let submits = wait_on_tail(&w.unsubmitted, &w.in_wait);
            let woken = queuer.join().unwrap();
            assert!(submits || woken, "a queued request waits unseen");
        });
    }
}
