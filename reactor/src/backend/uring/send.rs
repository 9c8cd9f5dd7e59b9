//! Sending through the ring: a stream's outbox (write-behind) and the
//! sends that drain it, one concept.
//!
//! With the io_uring backend a stream may send through the ring: a write
//! appends to the socket's outbox and returns; one `SEND` per socket is in
//! flight at a time, submitted with the consumer's next `io_uring_enter`
//! (which, as a rule, also harvests), so a worker that answers many
//! connections in one turn sends all the answers with one syscall. The
//! send's completion starts the next batch and wakes the writer waiting on
//! the outbox (for room, or for its flush to finish).
//!
//! Nothing written is lost: a stream dropped with bytes still queued hands
//! its descriptor to the outbox ([`Outbox::adopt`]), which closes it after
//! the last byte is sent; a shutdown of the write side asked for meanwhile
//! happens after the last byte. A send that fails (reset, broken pipe)
//! fails every later write and flush.
//!
//! Bounded: past [`OUTBOX_LIMIT`] queued bytes a write waits for the send
//! in flight, as a writer waits for a full socket buffer.
//!
//! The sends: an outbox's send starts on the calling worker's own send
//! ring (`send_ring.rs`) or on the shared ring (`start_send`); its
//! completion moves the outbox on (`sent`); the shared ring watches each
//! send ring so that whoever harvests reads late completions; an idle
//! consumer submits sends a blocked worker left; and a backend going away
//! sends what is left (`finish_sends`).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use io_uring::{opcode, types};

use super::completion::{SEND, SEND_RING};
use super::send_ring::SendRing;
use super::UringBackend;
use crate::event::Ready;
use crate::loom::sync::atomic::{AtomicI32, Ordering};
use crate::loom::Mutex;

/// Queued bytes past which a write waits for the send in flight.
pub const OUTBOX_LIMIT: usize = 256 * 1024;

/// A stream socket's unsent bytes.
#[derive(Debug)]
pub struct Outbox {
    /// The stream's registration entry: a completion that wakes a writer
    /// is also delivered there as WRITABLE, so that a consumer asleep in
    /// the ring returns to run the woken task.
    entry: u64,
    /// The socket's descriptor: the stream's while it lives, then ours.
    fd: RawFd,
    /// The descriptor once the stream handed it over (dropped with bytes
    /// still queued); closed with the outbox.
    adopted: Mutex<Option<OwnedFd>>,
    /// `State::error`, readable without the lock (0: none): what hyper's
    /// flush asks once per response ([`Outbox::failed`]).
    failed: AtomicI32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Appended, not yet given to the kernel.
    pending: Vec<u8>,
    /// The bytes of the send in flight: the kernel reads them, so they are
    /// not touched (not even moved: a `Vec`'s heap buffer stays put) until
    /// its completion.
    inflight: Vec<u8>,
    /// Bytes of `inflight` already sent.
    off: usize,
    /// A send is in flight (or queued for submission).
    busy: bool,
    /// A send failed with this errno: every later write and flush reports it.
    error: Option<i32>,
    /// The write side is shut (or will be, once drained): writes fail.
    shut: bool,
    /// Shut the write side once drained.
    shut_after: bool,
    /// A write found no room since the last completion (what
    /// `poll_writable` reports, as socket readiness is cleared by
    /// `EAGAIN`).
    blocked: bool,
    /// The outbox drained while a flush waited for it, and no flush has
    /// returned since: the writer has not seen its bytes sent yet (see
    /// [`Outbox::poll_peer_eof`]).
    drain_unseen: bool,
    /// [`Outbox::poll_peer_eof`] held the peer's end of stream back once
    /// for `drain_unseen`; the next call lets it through.
    eof_deferred: bool,
    /// Tasks waiting for room, for writability or for the outbox to drain
    /// (a writer and a flusher, or `writable()` on a shared stream, may
    /// wait at once: each is woken).
    wakers: crate::WakerList,
}

/// A batch in flight: its bytes, which stay put until its send completes.
pub(crate) type Batch = (*const u8, usize);

/// What a send's completion leads to.
pub(crate) enum Next {
    /// Submit a send of these bytes (the rest of the batch, or the next).
    Send(*const u8, usize),
    /// Nothing left: the outbox is drained.
    Drained,
    /// The send failed; the outbox holds the error.
    Failed,
}

impl Outbox {
    /// An outbox for the stream socket `fd`, registered as `entry`. The
    /// stream keeps owning `fd` (see [`adopt`](Outbox::adopt)).
    pub(crate) fn new(fd: RawFd, entry: u64) -> Outbox {
        Outbox {
            entry,
            fd,
            adopted: Mutex::new(None),
            failed: AtomicI32::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// Takes over the stream's descriptor (the stream is dropped while
    /// bytes are still queued): it stays open until the outbox is done and
    /// dropped, so the bytes go out before the close.
    pub fn adopt(&self, fd: OwnedFd) {
        debug_assert_eq!(std::os::fd::AsRawFd::as_raw_fd(&fd), self.fd);
        *self.adopted.lock() = Some(fd);
    }

    pub(crate) fn entry(&self) -> u64 {
        self.entry
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd
    }

    /// Appends as much of `bufs`, in order, as fits. `Ok(None)`: full,
    /// wait for the send in flight ([`poll_room`](Outbox::poll_room)).
    /// `Ok(Some((n, batch)))`: `n` bytes taken; with a `batch`, no send was
    /// in flight, so these bytes now are one (`busy`, under the same lock):
    /// the caller must submit its send (`UringBackend::start_send`). One
    /// lock: all the slices join the same pending batch, so a response
    /// handed over as headers and body leaves in one send (one segment
    /// where the peer's window allows), as one `writev(2)` would.
    pub(crate) fn write_vectored(
        &self,
        bufs: &[io::IoSlice<'_>],
    ) -> io::Result<Option<(usize, Option<Batch>)>> {
        let mut s = self.state.lock();
        if let Some(e) = s.error {
            return Err(io::Error::from_raw_os_error(e));
        }
        if s.shut {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after the stream's write side was shut down",
            ));
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Ok(Some((0, None)));
        }
        let mut room = OUTBOX_LIMIT.saturating_sub(s.queued());
        if room == 0 {
            s.blocked = true;
            return Ok(None);
        }
        let mut n = 0;
        for buf in bufs {
            let take = room.min(buf.len());
            s.pending.extend_from_slice(&buf[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Ok(Some((n, Self::start_locked(&mut s))))
    }

    /// Ready when a write would take at least one byte (or a send
    /// failed); else the task is woken by the next completion.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        if let Some(e) = s.error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if s.queued() < OUTBOX_LIMIT {
            return Poll::Ready(Ok(()));
        }
        s.set_waker(cx.waker());
        Poll::Pending
    }

    /// Readiness to write, as a socket's: ready unless a write found the
    /// outbox full since the last completion (then woken by the next).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if s.error.is_some() || !s.blocked {
            return Poll::Ready(());
        }
        s.set_waker(cx.waker());
        Poll::Pending
    }

    /// Ready when everything written has been sent (or a send failed);
    /// else the task is woken by the next completion.
    pub fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.state.lock();
        if let Some(e) = s.error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(e)));
        }
        if s.idle() {
            s.drain_unseen = false;
            return Poll::Ready(Ok(()));
        }
        s.set_waker(cx.waker());
        Poll::Pending
    }

    /// Whether the stream's reader may report the peer's end of stream
    /// now. A peer usually closes *because* it received what we sent, so
    /// its FIN can be harvested before our send's completion, or in the
    /// same turn just after it, before the writer has seen its flush
    /// finish. A reader that saw the close first would take a clean close
    /// for one in the middle of a response (hyper with `half_close(false)`
    /// polls its read before its flush, and fails the connection with
    /// "connection closed before message completed"). On `send(2)` the
    /// write is done before the reader looks again; this restores that
    /// order: the end of stream waits until the queued bytes are sent,
    /// and, if a flush was waiting for them, for one more poll of the task
    /// (it wakes itself), so that the flush sees them sent first. A failed
    /// send ends the wait.
    pub fn poll_peer_eof(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state.lock();
        if s.error.is_some() {
            return Poll::Ready(());
        }
        if !s.idle() {
            s.set_waker(cx.waker());
            return Poll::Pending;
        }
        if s.drain_unseen && !s.eof_deferred {
            s.eof_deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        s.eof_deferred = false;
        Poll::Ready(())
    }

    /// Whether everything written has been sent; the send error if one
    /// failed (nothing is queued then either).
    pub fn drained(&self) -> io::Result<bool> {
        let s = self.state.lock();
        if let Some(e) = s.error {
            return Err(io::Error::from_raw_os_error(e));
        }
        Ok(s.idle())
    }

    /// The error of a send that failed, if one did; takes no lock.
    pub fn failed(&self) -> io::Result<()> {
        match self.failed.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Shuts the write side down now if drained (true), or once it is:
    /// later writes fail either way.
    pub fn shutdown_write(&self) -> io::Result<bool> {
        let mut s = self.state.lock();
        s.shut = true;
        if !s.idle() {
            s.shut_after = true;
        }
        Ok(!s.shut_after)
    }

    /// Starts a batch if none is in flight: the bytes to send.
    fn start_locked(s: &mut State) -> Option<Batch> {
        if s.busy || s.pending.is_empty() || s.error.is_some() {
            return None;
        }
        std::mem::swap(&mut s.pending, &mut s.inflight);
        s.pending.clear();
        s.off = 0;
        s.busy = true;
        Some((s.inflight.as_ptr(), s.inflight.len()))
    }

    /// A send completed with `res` (bytes sent, or `-errno`): what to do
    /// next, and the tasks to wake (once no lock is held).
    pub(crate) fn completed(&self, res: i32) -> (Next, crate::WakerList) {
        let mut s = self.state.lock();
        let waker = s.wakers.take();
        s.blocked = false;
        // `ECANCELED` is never ours (no cancel names a send): the kernel
        // cancels a send waiting for room once the thread that submitted
        // it has exited (a worker, as its runtime shuts down), with no
        // byte sent. Like `EAGAIN`, the rest is sent again, submitted by
        // whoever read this (in `finish_sends`, the thread dropping the
        // backend, which lives on).
        let retry = [-libc::EAGAIN, -libc::EINTR, -libc::ECANCELED];
        if res < 0 && !retry.contains(&res) {
            s.error = Some(-res);
            self.failed.store(-res, Ordering::Release);
            s.busy = false;
            s.pending = Vec::new();
            s.inflight = Vec::new();
            s.off = 0;
            return (Next::Failed, waker);
        }
        s.off += res.max(0) as usize;
        if s.off < s.inflight.len() {
            let off = s.off;
            // SAFETY: `off` is within `inflight`, which stays put while busy.
            let ptr = unsafe { s.inflight.as_ptr().add(off) };
            return (Next::Send(ptr, s.inflight.len() - off), waker);
        }
        s.busy = false;
        s.inflight.clear();
        s.off = 0;
        if let Some((p, n)) = Self::start_locked(&mut s) {
            return (Next::Send(p, n), waker);
        }
        // Whoever waited (a flush, as a rule) learns of it at its next poll.
        s.drain_unseen = !waker.is_empty();
        if s.shut_after {
            s.shut_after = false;
            drop(s);
            crate::syscalls::count(1);
            // SAFETY: shutdown(2) on our own descriptor.
            unsafe { libc::shutdown(self.fd(), libc::SHUT_WR) };
        }
        (Next::Drained, waker)
    }
}

impl State {
    /// No send in flight and nothing pending.
    fn idle(&self) -> bool {
        !self.busy && self.pending.is_empty()
    }

    /// Bytes written and not yet sent.
    fn queued(&self) -> usize {
        self.pending.len() + (self.inflight.len() - self.off)
    }

    fn set_waker(&mut self, waker: &Waker) {
        self.wakers.register(waker);
    }
}

thread_local! {
    /// The calling worker's send ring: its backend's id and the ring
    /// (dangling if it could not be made: then it sends on the shared
    /// ring).
    static OWN_SEND_RING: std::cell::RefCell<Option<(u64, Weak<SendRing>)>> =
        const { std::cell::RefCell::new(None) };
}

/// How long a dropped ring keeps sending what outboxes hold, at most.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// One wait of that.
const LINGER_STEP: Duration = Duration::from_millis(10);

impl UringBackend {
    /// A send of `len` bytes at `ptr`, inside `outbox`'s batch in flight
    /// (which stays put until the send's completion). Its `user_data` is
    /// the outbox's address: the completion finds the outbox without a
    /// lookup, through the reference the batch in flight holds (see
    /// [`start_send`](Self::start_send)).
    pub(super) fn send_sqe(outbox: &Outbox, ptr: *const u8, len: usize) -> io_uring::squeue::Entry {
        let addr = outbox as *const Outbox as u64;
        // A user-space address leaves the two tag bits clear (x86-64 and
        // AArch64 use at most 57 bits); checked, as the completion's
        // decoding relies on it.
        assert_eq!(addr & SEND_RING, 0, "an outbox above 2^62");
        opcode::Send::new(
            types::Fd(outbox.fd()),
            ptr,
            len.min(u32::MAX as usize) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(addr | SEND)
    }

    /// Sends `outbox`'s batch that [`Outbox::write_vectored`] started
    /// (`len` bytes at `ptr`, its bytes in flight): on the calling worker's
    /// own send ring, or the shared ring.
    ///
    /// The batch in flight holds a reference to the outbox (leaked here,
    /// taken back in [`sent`](Self::sent) when the outbox has nothing more
    /// to send): the kernel reads its memory until the last send's
    /// completion, and a dropped stream's outbox lives until its last byte
    /// is sent. One reference per outbox, however many sends it chains:
    /// an outbox has one send in flight at a time.
    pub(super) fn start_send(&self, outbox: &Arc<Outbox>, (ptr, len): Batch) -> io::Result<()> {
        let here = self.consumes_here();
        // The batch in flight holds the outbox from here. A push that fails
        // keeps it, as a send that never completes would.
        let _ = Arc::into_raw(outbox.clone());
        self.sends_in_flight.fetch_add(1, Ordering::SeqCst);
        let sqe = Self::send_sqe(outbox, ptr, len);
        match self.own_send_ring(here).filter(|_| here) {
            // SAFETY: the batch stays put until the send's completion (the
            // batch in flight holds the outbox).
            Some(ring) => unsafe { ring.push(&[sqe], &|| self.count_syscall())? },
            None => self.post(&[sqe], here)?,
        }
        Ok(())
    }

    /// A completion of the send whose `user_data` (tag cleared) is `addr`:
    /// the outbox moves on and its waiting writers go to `writers`.
    /// Returns the next send to submit, if any.
    ///
    /// # Safety
    ///
    /// `addr` is the `user_data` of a send built by
    /// [`send_sqe`](Self::send_sqe) and submitted after
    /// [`start_send`](Self::start_send) (or returned by this function),
    /// and each send's completion is handed here once.
    pub(super) unsafe fn sent(
        &self,
        addr: u64,
        res: i32,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut crate::WakerList,
    ) -> Option<io_uring::squeue::Entry> {
        let held = addr as *const Outbox;
        // SAFETY: the batch in flight holds a reference to the outbox
        // (`start_send`'s `Arc::into_raw`), released below at the earliest.
        let outbox = unsafe { &*held };
        let (next, waiting) = outbox.completed(res);
        if !waiting.is_empty() {
            // A waiter may run on a consumer asleep in the shared ring's
            // wait: the event brings it back.
            writers.append(waiting);
            out.push((outbox.entry(), Ready::WRITABLE));
        }
        match next {
            // The reference passes to the next send.
            Next::Send(p, len) => Some(Self::send_sqe(outbox, p, len)),
            Next::Drained | Next::Failed => {
                self.sends_in_flight.fetch_sub(1, Ordering::SeqCst);
                // SAFETY: the reference `start_send` leaked for this batch
                // chain, taken back once: nothing of it is in flight now.
                drop(unsafe { Arc::from_raw(held) });
                None
            }
        }
    }

    /// The calling worker's send ring, made on first use (`create`).
    /// `None`: the thread has none, or it could not be made (then its
    /// sends go through the shared ring).
    pub(super) fn own_send_ring(&self, create: bool) -> Option<Arc<SendRing>> {
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
    pub(super) fn flush_own_sends(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<()> {
        let Some(ring) = self.own_send_ring(false) else {
            return Ok(());
        };
        let mut writers = crate::WakerList::new();
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
            // put until its completion (the batch holds the outbox).
            if let Err(e) = unsafe { ring.push(&resend, &|| self.count_syscall()) } {
                result = Err(e);
                break;
            }
            resend.clear();
        }
        writers.wake_all();
        result?;
        self.watch_send_ring(&ring)
    }

    /// Reads every completion of a send ring, those the kernel kept aside
    /// when its completion queue overflowed included: their outboxes move
    /// on, waiting writers go to `writers`, next sends to `resend`.
    pub(super) fn read_send_ring(
        &self,
        ring: &SendRing,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut crate::WakerList,
        resend: &mut Vec<io_uring::squeue::Entry>,
    ) -> io::Result<()> {
        loop {
            ring.drain(true, |data, res| {
                // SAFETY: a send ring carries only sends built by
                // `send_sqe`, each completion read once.
                resend.extend(unsafe { self.sent(data & !SEND, res, out, writers) });
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
    /// them from here. Only sends stranded that long (`SendRing::stranded`:
    /// across two looks), not those of a worker that is running.
    pub(super) fn submit_stranded_sends(&self) -> io::Result<()> {
        let waiting: Vec<_> = self
            .send_rings
            .lock()
            .iter()
            .filter(|r| r.has_unsubmitted())
            .cloned()
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let now = std::time::Instant::now();
        for ring in waiting.into_iter().filter(|r| r.stranded(now)) {
            ring.submit(&|| self.count_syscall())?;
            self.watch_send_ring(&ring)?;
        }
        Ok(())
    }

    /// Arms the shared ring's one-shot poll on `ring` if sends are in
    /// flight there and none is armed: their completions then reach
    /// whoever harvests. Submitted with this consumer's next enter.
    pub(super) fn watch_send_ring(&self, ring: &SendRing) -> io::Result<()> {
        if ring.needs_watch() {
            let sqe = opcode::PollAdd::new(types::Fd(ring.fd()), libc::POLLIN as u32)
                .build()
                .user_data(SEND_RING | ring.index());
            self.push(&[sqe])?;
            self.unsubmitted.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Sends what outboxes still hold, for at most `limit`: bytes a program
    /// wrote must not vanish because its runtime went away first (a kernel
    /// socket buffer would still send them).
    pub(super) fn finish_sends(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut out = Vec::new();
        while self.sends_in_flight.load(Ordering::SeqCst) > 0 {
            // The workers are gone: what their rings hold is sent from here.
            let rings = self.send_rings.lock().clone();
            let mut resend = Vec::new();
            let mut writers = crate::WakerList::new();
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
            writers.wake_all();
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
