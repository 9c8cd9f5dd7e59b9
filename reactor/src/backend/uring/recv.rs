//! Receiving through the ring: a stream's multishot receive and the inbox
//! it fills, one concept.
//!
//! With the io_uring backend a stream may receive through the ring: one
//! multishot receive per socket, the kernel filling buffers from a shared
//! pool at the moment data arrives, so the reader makes no `recv(2)` at all.
//! The harvester copies each completion's bytes into the socket's inbox and
//! gives the buffer straight back to the pool (the pool is small and shared;
//! a socket that is not read must not hold it), then posts the socket's
//! entry as readable like any readiness.
//!
//! The inbox is bounded: past [`PAUSE_AT`] bytes the harvester cancels the
//! receive, so an unread socket's data waits in the kernel and TCP flow
//! control slows the peer, as with a reader that does not call `recv`. The
//! reader re-arms it once it has drained the inbox below [`RESUME_BELOW`].
//!
//! The receive is armed at the stream's first read (`arm_recv`), resumed
//! and cancelled as the inbox's reader asks (`resume_recv`, `cancel_recv`,
//! decided by [`Inbox::take`]), and each of its completions is copied into
//! the inbox by whoever drains the completion queue (`received`).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::sync::Arc;

use io_uring::{cqueue, opcode, types};

use super::completion::RECV;
use super::pool::{RecycleOnDrop, BUF_GROUP};
use super::{Polled, UringBackend};
use crate::event::Ready;
use crate::id_hash::IdMap;
use crate::loom::{Mutex, MutexGuard};

/// Bytes held before the receive is paused.
pub(crate) const PAUSE_AT: usize = 256 * 1024;
/// Bytes below which a reader resumes a paused receive.
pub(crate) const RESUME_BELOW: usize = 64 * 1024;
/// Spare capacity above which an empty inbox gives its memory back.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Where a socket's multishot receive stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    /// Submitted (or queued for submission) and receiving.
    Armed,
    /// A cancel is on its way; `resume` says to re-arm once it lands.
    Cancelling { resume: bool },
    /// Not in the kernel: paused because the inbox is full, or ended.
    Idle,
    /// Cancelled so that the reader's thread re-arms it (see
    /// [`Inbox::take`]); the cancel's last completion wakes the reader.
    Moving,
}

/// Consecutive reads that found nothing, made by a consumer thread other
/// than the receive's owner, after which the receive moves to the reader.
const STRAYS_TO_MOVE: u8 = 2;

/// A stream socket's received bytes, filled by the ring's harvester.
pub struct Inbox {
    state: Mutex<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Bytes `buf[head..]` are unread.
    buf: Vec<u8>,
    head: usize,
    /// The peer closed its side: reads past the data return 0.
    pub(crate) eof: bool,
    /// A receive error (errno) to report once the data before it is read.
    pub(crate) error: Option<i32>,
    /// The receive's state.
    pub(crate) recv: Recv,
    /// The registration is gone: never re-arm.
    pub(crate) closed: bool,
    /// The thread that submitted the receive (`backend::thread_tag`); 0:
    /// unknown.
    /// The kernel runs the receive's completion work on that thread.
    pub(crate) owner: usize,
    /// `owner` is a guess: the receive was (re)armed while the ring's home
    /// was closed, when any consumer's enter may have submitted it
    /// (`uring/home.rs`). Once the home is open again, a read moves it
    /// (a `Reader` whose `settled` holds), whoever the guess named.
    pub(crate) unsettled: bool,
    /// Reads in a row that found nothing, by a consumer thread not `owner`.
    strays: u8,
}

/// Who reads an inbox, for `Inbox::take`: the thread a receive the reader
/// re-armed now would belong to (`backend::thread_tag`), and whether that
/// is certain (`UringBackend::receive_home`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reader {
    pub(crate) tag: usize,
    /// False while the ring's home is closed: any consumer's enter may
    /// submit what another thread posted.
    pub(crate) settled: bool,
}

#[cfg(test)]
impl Reader {
    /// A reader whose requests are submitted by thread `tag`, certainly.
    pub(crate) fn settled(tag: usize) -> Reader {
        Reader { tag, settled: true }
    }
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Inbox")
            .field("unread", &(s.buf.len() - s.head))
            .field("eof", &s.eof)
            .field("recv", &s.recv)
            .finish()
    }
}

/// What a read found, and what to do with the receive.
pub(crate) struct Taken {
    pub(crate) result: io::Result<usize>,
    /// Re-arm it (from the reading thread when that is a consumer).
    pub(crate) resume: bool,
    /// Cancel it, so that the reading thread re-arms it (`Recv::Moving`).
    pub(crate) cancel: bool,
    /// The read took the last byte of a stream that goes on: the next
    /// read would block, so the reader may forget the readiness it read on
    /// now and wait for the next (saving a read that finds nothing).
    pub(crate) drained: bool,
}

impl State {
    pub(crate) fn unread(&self) -> usize {
        self.buf.len() - self.head
    }

    /// More bytes may come: no end, no error, still registered.
    pub(crate) fn live(&self) -> bool {
        !self.closed && !self.eof && self.error.is_none()
    }

    /// A reader is about to wait for the next receive (its read found
    /// nothing, or took the last byte). Counts the waits in a row of a
    /// reader whose thread does not own the receive; at
    /// [`STRAYS_TO_MOVE`] the receive moves to it (`Recv::Moving`) and
    /// this returns true: cancel it. See [`Inbox::take`].
    fn reader_waits(&mut self, reader: Option<Reader>) -> bool {
        let Some(me) = reader else {
            return false;
        };
        if self.owner == me.tag && !(self.unsettled && me.settled) {
            self.strays = 0;
        } else if self.recv == Recv::Armed && self.live() {
            self.strays += 1;
            if self.strays >= STRAYS_TO_MOVE {
                self.strays = 0;
                self.recv = Recv::Moving;
                return true;
            }
        }
        false
    }

    /// Appends received bytes (harvester).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        } else if self.head > self.buf.len() / 2 && self.head >= 4096 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
}

impl Inbox {
    /// An inbox for a receive submitted by thread `owner` (0: unknown;
    /// `unsettled`: a guess, see `State::unsettled`).
    pub(crate) fn new(owner: usize, unsettled: bool) -> Inbox {
        Inbox {
            state: Mutex::new(State {
                buf: Vec::new(),
                head: 0,
                eof: false,
                error: None,
                recv: Recv::Armed,
                closed: false,
                owner,
                unsettled,
                strays: 0,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Unread bytes.
    pub fn len(&self) -> usize {
        self.state.lock().unread()
    }

    /// No unread bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves up to `dst.len()` unread bytes into `dst` (or copies them,
    /// with `peek`). `Ok(0)` at end of stream; the receive error, once,
    /// after the data before it; `WouldBlock` when nothing has arrived.
    ///
    /// `reader`: for a thread that consumes from the ring, the thread a
    /// receive it re-armed now would belong to (`backend::thread_tag`): its
    /// own, or the home's where it leaves its requests to an open home
    /// (`UringBackend::receive_home`). The kernel posts a receive's
    /// completions from work run on the thread that submitted it, so a
    /// receive whose socket is now read on another worker would need that
    /// thread woken for every message. After [`STRAYS_TO_MOVE`] reads in a
    /// row that leave a reader whose receive belongs elsewhere waiting (they
    /// found nothing, or took the last byte), the receive is cancelled and
    /// the reader re-arms it.
    pub(crate) fn take(
        &self,
        dst: &mut [MaybeUninit<u8>],
        peek: bool,
        reader: Option<Reader>,
    ) -> Taken {
        let mut s = self.state.lock();
        let unread = s.unread();
        let mut cancel = false;
        let result = if unread == 0 {
            if dst.is_empty() || s.eof {
                Ok(0)
            } else if let Some(errno) = s.error.take() {
                // Reported once; the stream then reads as ended.
                s.eof = true;
                Err(io::Error::from_raw_os_error(errno))
            } else {
                cancel = s.reader_waits(reader);
                Err(io::ErrorKind::WouldBlock.into())
            }
        } else {
            let n = unread.min(dst.len());
            let head = s.head;
            let src = &s.buf[head..head + n];
            // SAFETY: `src` and `dst[..n]` are both `n` bytes long, and
            // distinct (one borrowed from the inbox, one exclusively from
            // the caller).
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), n);
            }
            if !peek {
                s.head += n;
                if s.head == s.buf.len() {
                    s.buf.clear();
                    s.head = 0;
                    if s.buf.capacity() > KEEP_CAPACITY {
                        s.buf = Vec::new();
                    }
                }
            }
            Ok(n)
        };
        // Read to the last byte of a live stream: the reader's next read
        // would block, so it waits for the next receive from here.
        let drained = !peek && matches!(result, Ok(n) if n > 0) && s.unread() == 0 && s.live();
        if drained {
            cancel = s.reader_waits(reader);
        }
        let mut resume = false;
        if s.live() && s.unread() < RESUME_BELOW {
            match s.recv {
                Recv::Idle => {
                    s.recv = Recv::Armed;
                    s.owner = reader.map_or(0, |r| r.tag);
                    s.unsettled = reader.is_some_and(|r| !r.settled);
                    s.strays = 0;
                    resume = true;
                }
                // The pausing cancel has not landed: it re-arms when it does.
                Recv::Cancelling { resume: false } => s.recv = Recv::Cancelling { resume: true },
                _ => {}
            }
        }
        Taken {
            result,
            resume,
            cancel,
            drained,
        }
    }
}

/// The poll mask of a socket receiving through the ring: its reads come as
/// receive completions, so the poll watches writability (and errors).
pub(super) fn without_reads(mask: u32) -> u32 {
    mask & !((libc::POLLIN | libc::POLLPRI | libc::POLLRDHUP) as u32)
}

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
        polls: &IdMap<Polled>,
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
        let inbox = Arc::new(Inbox::new(self.owner_of_posts(), !self.home_settled()));
        w.inbox = Some(inbox.clone());
        w.mask = without_reads(w.mask);
        let poll = Self::poll_sqe(fd, entry, w.mask);
        if std::mem::replace(&mut w.armed, true) {
            // In order: the old poll goes, the new one and the receive come.
            let sqes = [Self::cancel_all_sqe(entry), poll, Self::recv_sqe(fd, entry)];
            self.post(&sqes, here)?;
        } else {
            // Registered lazily and never armed: no old poll to cancel.
            self.post(&[poll, Self::recv_sqe(fd, entry)], here)?;
        }
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
    /// who re-arms it from its own thread (see `Inbox::take`). The
    /// socket's poll (writability and errors) moves with it now: the
    /// kernel runs a poll's completion work on its owner too, and a poll
    /// left with a parked worker wakes it for every send the socket makes.
    pub(super) fn cancel_recv(&self, entry: u64, here: bool) -> io::Result<()> {
        // Under the lock `deregister` cancels under, like every receive
        // submission, so this cancel never outlives the registration.
        let polls = self.polls.lock();
        if let Some(w) = polls.get(&entry) {
            // In order: the old poll goes, the new one comes (as in
            // `arm_recv`), and the receive goes.
            let sqes = [
                Self::cancel_all_sqe(entry),
                Self::poll_sqe(w.fd, entry, w.mask),
                Self::cancel_all_sqe(entry | RECV),
            ];
            self.post(&sqes, here)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(dst: &[MaybeUninit<u8>], n: usize) -> Vec<u8> {
        // SAFETY: `take` initialised the first `n` bytes.
        dst[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect()
    }

    #[test]
    fn reads_in_order_then_would_block_then_eof() {
        let inbox = Inbox::new(0, false);
        let mut dst = [MaybeUninit::uninit(); 4];
        let t = inbox.take(&mut dst, false, None);
        assert_eq!(t.result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        inbox.lock().push(b"hello");
        inbox.lock().push(b" world");
        let n = inbox.take(&mut dst, true, None).result.unwrap();
        assert_eq!(bytes(&dst, n), b"hell", "peek");
        let mut out = Vec::new();
        while let Ok(n) = inbox.take(&mut dst, false, None).result {
            out.extend(bytes(&dst, n));
        }
        assert_eq!(out, b"hello world");
        inbox.lock().eof = true;
        assert_eq!(inbox.take(&mut dst, false, None).result.unwrap(), 0);
    }

    #[test]
    fn an_error_comes_after_the_data_before_it_and_once() {
        let inbox = Inbox::new(0, false);
        inbox.lock().push(b"ab");
        inbox.lock().error = Some(libc::ECONNRESET);
        let mut dst = [MaybeUninit::uninit(); 8];
        assert_eq!(inbox.take(&mut dst, false, None).result.unwrap(), 2);
        let e = inbox.take(&mut dst, false, None).result.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        assert_eq!(inbox.take(&mut dst, false, None).result.unwrap(), 0);
    }

    #[test]
    fn a_paused_receive_resumes_once_drained_below_the_mark() {
        let inbox = Inbox::new(0, false);
        inbox.lock().push(&vec![7u8; PAUSE_AT]);
        inbox.lock().recv = Recv::Idle;
        let mut dst = vec![MaybeUninit::uninit(); PAUSE_AT - RESUME_BELOW];
        let t = inbox.take(&mut dst, false, None);
        assert_eq!(t.result.unwrap(), PAUSE_AT - RESUME_BELOW);
        assert!(!t.resume, "still at the mark");
        let mut one = [MaybeUninit::uninit(); 1];
        let t = inbox.take(&mut one, false, None);
        assert!(t.resume);
        assert_eq!(inbox.lock().recv, Recv::Armed);
        assert!(!inbox.take(&mut one, false, None).resume, "resumed once");
    }

    #[test]
    fn a_receive_moves_to_a_reader_thread_that_keeps_finding_it_empty() {
        let (owner, reader) = (1usize, 2usize);
        let inbox = Inbox::new(owner, false);
        let mut dst = [MaybeUninit::uninit(); 4];
        // The owner's own empty reads never move it.
        for _ in 0..3 {
            let t = inbox.take(&mut dst, false, Some(Reader::settled(owner)));
            assert!(!t.cancel && !t.resume);
        }
        // Another consumer thread: one empty read is tolerated...
        let t = inbox.take(&mut dst, false, Some(Reader::settled(reader)));
        assert!(!t.cancel);
        // ...and a read by the owner in between starts the count again.
        assert!(
            !inbox
                .take(&mut dst, false, Some(Reader::settled(owner)))
                .cancel
        );
        assert!(
            !inbox
                .take(&mut dst, false, Some(Reader::settled(reader)))
                .cancel
        );
        let t = inbox.take(&mut dst, false, Some(Reader::settled(reader)));
        assert!(t.cancel, "second empty read in a row by the same stranger");
        assert_eq!(t.result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(inbox.lock().recv, Recv::Moving);
        // While the cancel is in flight nothing is cancelled or re-armed twice.
        let t = inbox.take(&mut dst, false, Some(Reader::settled(reader)));
        assert!(!t.cancel && !t.resume);
        // Its last completion leaves it idle; the reader's next read re-arms
        // it from the reader's thread.
        inbox.lock().recv = Recv::Idle;
        let t = inbox.take(&mut dst, false, Some(Reader::settled(reader)));
        assert!(t.resume && !t.cancel);
        let s = inbox.lock();
        assert_eq!((s.recv, s.owner), (Recv::Armed, reader));
    }

    #[test]
    fn a_receive_armed_while_the_home_was_closed_moves_once_it_is_open() {
        let home = 1;
        let mut dst = [MaybeUninit::new(0u8); 8];
        // Armed by the home while closed: another consumer's enter may have
        // submitted it. While the home stays closed, its reads keep it.
        let inbox = Inbox::new(home, true);
        let closed = Reader {
            tag: home,
            settled: false,
        };
        for _ in 0..4 {
            assert!(!inbox.take(&mut dst, false, Some(closed)).cancel);
        }
        // Open again: its reads move it, and once re-armed from there it
        // stays.
        let open = Reader::settled(home);
        assert!(!inbox.take(&mut dst, false, Some(open)).cancel);
        assert!(inbox.take(&mut dst, false, Some(open)).cancel);
        inbox.lock().recv = Recv::Idle; // the cancel landed
        let t = inbox.take(&mut dst, false, Some(open));
        assert!(t.resume);
        for _ in 0..4 {
            assert!(!inbox.take(&mut dst, false, Some(open)).cancel);
        }
    }

    #[test]
    fn a_read_that_takes_the_last_byte_of_a_live_stream_says_so() {
        let inbox = Inbox::new(1, false);
        let mut four = [MaybeUninit::uninit(); 4];
        inbox.lock().push(b"abcdef");
        let t = inbox.take(&mut four, true, None);
        assert!(!t.drained, "a peek leaves the bytes");
        let t = inbox.take(&mut four, false, None);
        assert_eq!(t.result.unwrap(), 4);
        assert!(!t.drained, "two bytes left");
        let t = inbox.take(&mut four, false, None);
        assert_eq!(t.result.unwrap(), 2);
        assert!(t.drained);
        let t = inbox.take(&mut four, false, None);
        assert!(!t.drained, "nothing taken");
        // The last bytes before the end: the next read returns 0, at once.
        inbox.lock().push(b"gh");
        inbox.lock().eof = true;
        let t = inbox.take(&mut four, false, None);
        assert_eq!(t.result.unwrap(), 2);
        assert!(!t.drained, "the stream ended: the next read does not wait");
    }

    #[test]
    fn a_receive_moves_to_a_reader_thread_whose_reads_keep_emptying_it() {
        let (owner, reader) = (1usize, 2usize);
        let inbox = Inbox::new(owner, false);
        let mut dst = [MaybeUninit::uninit(); 4];
        // The owner's draining reads never move it.
        for _ in 0..3 {
            inbox.lock().push(b"ab");
            let t = inbox.take(&mut dst, false, Some(Reader::settled(owner)));
            assert!(t.drained && !t.cancel);
        }
        // A stranger's: the first is tolerated, the second in a row moves
        // it, as empty reads do.
        inbox.lock().push(b"ab");
        assert!(
            !inbox
                .take(&mut dst, false, Some(Reader::settled(reader)))
                .cancel
        );
        inbox.lock().push(b"ab");
        let t = inbox.take(&mut dst, false, Some(Reader::settled(reader)));
        assert_eq!(t.result.unwrap(), 2, "the bytes are read all the same");
        assert!(t.cancel && t.drained);
        assert_eq!(inbox.lock().recv, Recv::Moving);
    }

    #[test]
    fn a_reader_outside_the_consumers_never_moves_the_receive() {
        let inbox = Inbox::new(1, false);
        let mut dst = [MaybeUninit::uninit(); 4];
        for _ in 0..5 {
            assert!(!inbox.take(&mut dst, false, None).cancel);
        }
        assert_eq!(inbox.lock().recv, Recv::Armed);
    }

    #[test]
    fn an_ended_stream_is_never_moved_or_resumed() {
        let inbox = Inbox::new(1, false);
        inbox.lock().eof = true;
        inbox.lock().recv = Recv::Idle;
        let mut dst = [MaybeUninit::uninit(); 4];
        for _ in 0..3 {
            let t = inbox.take(&mut dst, false, Some(Reader::settled(2)));
            assert_eq!(t.result.unwrap(), 0);
            assert!(!t.cancel && !t.resume);
        }
    }
}
