//! Receiving through the ring: a stream's multishot receive, armed at its
//! first read, resumed and cancelled as its inbox asks, and each of its
//! completions copied into the inbox (`received`).

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{cqueue, opcode, types};

use super::completion::RECV;
use super::inbox::{Inbox, Recv, PAUSE_AT};
use super::pool::{RecycleOnDrop, BUF_GROUP};
use super::{without_reads, Polled, UringBackend};
use crate::event::Ready;

impl UringBackend {
    pub(super) fn recv_sqe(fd: RawFd, entry: u64) -> io_uring::squeue::Entry {
        opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP)
            .build()
            .user_data(entry | RECV)
    }

    /// A receive completion for `entry`: its bytes go to the inbox, its
    /// buffer back to the pool. Returns the readiness to deliver, if any,
    /// and queues a re-arm or a pausing cancel in `again`.
    pub(super) fn received(
        &self,
        polls: &HashMap<u64, Polled>,
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

    /// Makes the stream socket `fd`, registered as `entry`, receive through
    /// the ring into the returned inbox (the stream checked that the pool
    /// exists). The calling thread, if it consumes from the ring, becomes
    /// the receive's owner: the kernel runs its completion work there.
    pub(super) fn arm_recv(&self, fd: RawFd, entry: u64) -> io::Result<Arc<Inbox>> {
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

    /// Receives again for `entry` (its inbox drained below the mark, or
    /// its receive moves to this thread).
    pub(super) fn resume_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        let polls = self.polls.lock();
        if let Some(w) = polls.get(&entry) {
            let sqe = Self::recv_sqe(w.fd, entry);
            self.post(&[sqe], here)?;
        }
        Ok(())
    }

    /// Cancels `entry`'s receive; its last completion wakes the reader,
    /// who re-arms it from its own thread (see `Inbox::take`).
    pub(super) fn cancel_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        // Under the lock `deregister` cancels under, like every receive
        // submission, so this cancel never outlives the registration.
        let polls = self.polls.lock();
        if polls.contains_key(&entry) {
            self.post(&[Self::cancel_all_sqe(entry | RECV)], here)?;
        }
        Ok(())
    }
}
