//! Sending through the ring: an outbox's send starts on the calling
//! worker's own send ring (`send_ring.rs`) or on the shared ring; its
//! completion moves the outbox on (`sent`); the shared ring watches each
//! send ring so that whoever harvests reads late completions; an idle
//! consumer submits sends a blocked worker left; and a backend going away
//! sends what is left (`finish_sends`).

use crate::loom::sync::atomic::Ordering;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use io_uring::{opcode, types};

use super::completion::{SEND, SEND_RING};
use super::outbox::{Next, Outbox};
use super::send_ring::SendRing;
use super::UringBackend;
use crate::event::Ready;

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
    /// (which stays put until the send's completion).
    pub(super) fn send_sqe(outbox: &Outbox, ptr: *const u8, len: usize) -> io_uring::squeue::Entry {
        opcode::Send::new(
            types::Fd(outbox.fd()),
            ptr,
            len.min(u32::MAX as usize) as u32,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(outbox.id() | SEND)
    }

    /// Starts sending what `outbox` holds, unless a send is in flight: on
    /// the calling worker's own send ring, or the shared ring.
    pub(super) fn start_send(&self, outbox: &Arc<Outbox>) -> io::Result<()> {
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

    /// A completion of outbox `id`'s send: the outbox moves on
    /// and its waiting writers go to `writers`. Returns the next send to
    /// submit, if any.
    pub(super) fn sent(
        &self,
        id: u64,
        res: i32,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut Vec<std::task::Waker>,
    ) -> Option<io_uring::squeue::Entry> {
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
    pub(super) fn read_send_ring(
        &self,
        ring: &SendRing,
        out: &mut Vec<(u64, Ready)>,
        writers: &mut Vec<std::task::Waker>,
        resend: &mut Vec<io_uring::squeue::Entry>,
    ) -> io::Result<()> {
        loop {
            ring.drain(true, |data, res| {
                resend.extend(self.sent(data & !SEND, res, out, writers));
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
    pub(super) fn submit_stranded_sends(&self) -> io::Result<()> {
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
