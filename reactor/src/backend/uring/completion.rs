//! Completions: what the kernel posted, told apart by the tag bits of
//! each request's `user_data`, and handed to the receive, the send or the
//! poll it belongs to.

use crate::loom::sync::atomic::Ordering;
use std::io;

use io_uring::cqueue;

use super::UringBackend;
use crate::event::Ready;

/// `user_data` of the wake eventfd's poll.
pub(super) const WAKE: u64 = u64::MAX;

/// `user_data` of cancel requests (their own completions).
pub(super) const REMOVE: u64 = u64::MAX - 1;

/// `user_data` of the poll on the listeners' epoll set (see
/// `backend/listen_set.rs`).
pub(super) const LISTENERS: u64 = u64::MAX - 2;

/// Tag on the `user_data` of a socket's multishot receive (its entry
/// otherwise). An entry's top bit is its slab index's, which never gets
/// near 2^31.
pub(super) const RECV: u64 = 1 << 63;

/// Tag on the `user_data` of a send through the ring (its outbox's
/// address otherwise: a user-space address stays below 2^62).
pub(super) const SEND: u64 = 1 << 62;

/// Both tags: the `user_data` of the poll on a worker's send ring (its
/// index otherwise).
pub(super) const SEND_RING: u64 = RECV | SEND;

/// What a completion belongs to, read from its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completion {
    /// A cancel request's own completion: nothing to do.
    Cancel,
    /// The harvester's wakeup: a `MSG_RING`, or the wake eventfd's poll.
    Wake,
    /// The poll on the listeners' epoll set fired.
    Listeners,
    /// The shared ring's one-shot poll on send ring `index` fired.
    SendRing(u64),
    /// A send of the outbox with this id.
    Send(u64),
    /// A receive for the registration with this entry.
    Recv(u64),
    /// The poll of the registration with this entry.
    Poll(u64),
}

impl Completion {
    /// Tells a completion's request apart by its `user_data` tags.
    pub(super) fn decode(user_data: u64) -> Completion {
        match user_data {
            REMOVE => Completion::Cancel,
            WAKE => Completion::Wake,
            LISTENERS => Completion::Listeners,
            _ if user_data & SEND_RING == SEND_RING => Completion::SendRing(user_data & !SEND_RING),
            _ if user_data & SEND != 0 => Completion::Send(user_data & !SEND),
            _ if user_data & RECV != 0 => Completion::Recv(user_data & !RECV),
            _ => Completion::Poll(user_data),
        }
    }
}

impl UringBackend {
    /// Moves completions into `out`; re-arms polls the kernel ended.
    /// `wait_turn`: wait for a concurrent drain to finish; otherwise leave
    /// the completions to it and return 0.
    pub(super) fn drain(&self, out: &mut Vec<(u64, Ready)>, wait_turn: bool) -> io::Result<usize> {
        let mut rearm = Vec::new();
        let mut again = Vec::new();
        let mut resend = Vec::new();
        let mut writers = crate::WakerList::new();
        let mut fired = Vec::new();
        let mut woke = false;
        let mut listeners = false;
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
                let res = cqe.result();
                let more = cqueue::more(cqe.flags());
                match Completion::decode(cqe.user_data()) {
                    Completion::Cancel => {}
                    Completion::SendRing(index) => fired.push(index),
                    Completion::Send(addr) => {
                        // SAFETY: a `SEND` tag is only put on sends built by
                        // `send_sqe`, and each completion is read once.
                        resend.extend(unsafe { self.sent(addr, res, out, &mut writers) });
                    }
                    Completion::Recv(entry) => {
                        let polls = self.polls.lock();
                        if let Some(ready) =
                            self.received(&polls, entry, res, cqe.flags(), &mut again)
                        {
                            out.push((entry, ready));
                        }
                    }
                    // A MSG_RING from `wake` (nothing to re-arm or read).
                    Completion::Wake if self.waker.is_some() => {}
                    Completion::Wake => {
                        woke = true;
                        if !more {
                            rearm.push((self.wake_fd, WAKE, libc::POLLIN as u32));
                        }
                    }
                    Completion::Listeners => {
                        listeners = true;
                        if !more {
                            rearm.push((self.listeners.fd(), LISTENERS, libc::POLLIN as u32));
                        }
                    }
                    Completion::Poll(entry) if res < 0 => {
                        // -ECANCELED after a removal, or an error on a stale
                        // fd: nothing to deliver. A live registration whose
                        // poll failed is reported as in error.
                        if res != -libc::ECANCELED && self.polls.lock().contains_key(&entry) {
                            out.push((entry, Ready::ERROR));
                        }
                    }
                    Completion::Poll(entry) => {
                        let mut bits = res as u32;
                        if bits & libc::POLLPRI as u32 != 0 && !self.priority_is_real(entry) {
                            bits &= !(libc::POLLPRI as u32);
                        }
                        out.push((entry, Ready::from_poll_bits(bits)));
                        if !more {
                            rearm.push((-1, entry, 0));
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
        writers.wake_all();
        if listeners {
            let calls = self.listeners.harvest(out)?;
            self.syscalls.fetch_add(calls, Ordering::Relaxed);
        }
        if woke {
            let mut buf = 0u64;
            self.count_syscall();
            // SAFETY: reading 8 bytes into a u64 from our eventfd.
            unsafe { libc::read(self.wake_fd, (&mut buf as *mut u64).cast(), 8) };
        }
        let mut rearmed = false;
        for (fd, data, mask) in rearm {
            if data == WAKE || data == LISTENERS {
                let poll = Self::poll_sqe(fd, data, mask);
                self.submit_or_queue(&[poll], !self.leaves_to_home())?;
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
            if self.leaves_to_home() {
                self.unsubmitted.store(true, Ordering::SeqCst);
            } else {
                self.enter_submit()?;
            }
        }
        Ok(n)
    }

    /// Reads what the kernel already posted (no syscall); when there is
    /// nothing but the kernel holds completions back (task work, CQ
    /// overflow), enters once to have them posted and reads again.
    /// `wait_turn` as for `drain`.
    pub(super) fn collect(
        &self,
        out: &mut Vec<(u64, Ready)>,
        wait_turn: bool,
    ) -> io::Result<usize> {
        let drained = self.drain(out, wait_turn)?;
        // With a home consumer, pending task work is its (ours, if any,
        // runs on our next syscall's way out anyway).
        if drained > 0 || self.leaves_to_home() || !self.enter_pending() {
            return Ok(drained);
        }
        self.enter_getevents()?;
        self.drain(out, wait_turn)
    }
}

impl UringBackend {
    /// Whether the registration `entry` really has priority data: a
    /// multishot poll reports the wakeup's mask, and every ordinary byte
    /// on a TCP socket wakes with `EPOLLPRI` in it, so the socket is asked
    /// (`poll(2)`, zero timeout). Only polls that asked for `POLLPRI`
    /// (`Interest::PRIORITY`, see `poll_mask`) see it in a result.
    fn priority_is_real(&self, entry: u64) -> bool {
        // The lock keeps the registration, and so its descriptor, alive.
        let polls = self.polls.lock();
        let Some(w) = polls.get(&entry) else {
            return false;
        };
        let mut pfd = libc::pollfd {
            fd: w.fd,
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd; the descriptor stays open
        // while its registration is in `polls`, which the lock holds.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & libc::POLLPRI != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_kind_decodes_to_what_its_user_data_names() {
        // An ordinary entry (slab index above 32 bits, generation below)
        // and one with the largest slab index the tags leave room for.
        for entry in [5u64 << 32 | 1, ((1u64 << 30) - 1) << 32 | u32::MAX as u64] {
            assert_eq!(Completion::decode(entry), Completion::Poll(entry));
            assert_eq!(Completion::decode(entry | RECV), Completion::Recv(entry));
        }
        assert_eq!(Completion::decode(7 | SEND), Completion::Send(7));
        assert_eq!(Completion::decode(3 | SEND_RING), Completion::SendRing(3));
        assert_eq!(Completion::decode(SEND_RING), Completion::SendRing(0));
    }

    #[test]
    fn the_wakeup_and_cancels_are_not_taken_for_tagged_requests() {
        // Both carry every tag bit; neither is a send ring's poll or a
        // receive.
        assert_eq!(Completion::decode(WAKE), Completion::Wake);
        assert_eq!(Completion::decode(REMOVE), Completion::Cancel);
        assert_eq!(Completion::decode(LISTENERS), Completion::Listeners);
    }
}
