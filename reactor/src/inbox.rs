//! Bytes a stream socket received through the ring, waiting for its reader.
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

use std::io;
use std::mem::MaybeUninit;

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
}

/// A stream socket's received bytes, filled by the ring's harvester.
pub struct Inbox {
    state: parking_lot::Mutex<State>,
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

/// What a read found, and whether the receive should be re-armed.
pub(crate) struct Taken {
    pub(crate) result: io::Result<usize>,
    pub(crate) resume: bool,
}

impl State {
    pub(crate) fn unread(&self) -> usize {
        self.buf.len() - self.head
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
    pub(crate) fn new() -> Inbox {
        Inbox {
            state: parking_lot::Mutex::new(State {
                buf: Vec::new(),
                head: 0,
                eof: false,
                error: None,
                recv: Recv::Armed,
                closed: false,
            }),
        }
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
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
    pub(crate) fn take(&self, dst: &mut [MaybeUninit<u8>], peek: bool) -> Taken {
        let mut s = self.state.lock();
        let unread = s.unread();
        if unread == 0 {
            let result = if dst.is_empty() || s.eof {
                Ok(0)
            } else if let Some(errno) = s.error.take() {
                // Reported once; the stream then reads as ended.
                s.eof = true;
                Err(io::Error::from_raw_os_error(errno))
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
            return Taken {
                result,
                resume: false,
            };
        }
        let n = unread.min(dst.len());
        let head = s.head;
        let src = &s.buf[head..head + n];
        // SAFETY: `src` and `dst[..n]` are both `n` bytes long, and distinct
        // (one borrowed from the inbox, one exclusively from the caller).
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
        let mut resume = false;
        if !s.closed && !s.eof && s.error.is_none() && s.unread() < RESUME_BELOW {
            match s.recv {
                Recv::Idle => {
                    s.recv = Recv::Armed;
                    resume = true;
                }
                // The pausing cancel has not landed: it re-arms when it does.
                Recv::Cancelling { resume: false } => s.recv = Recv::Cancelling { resume: true },
                _ => {}
            }
        }
        Taken {
            result: Ok(n),
            resume,
        }
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
        let inbox = Inbox::new();
        let mut dst = [MaybeUninit::uninit(); 4];
        let t = inbox.take(&mut dst, false);
        assert_eq!(t.result.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        inbox.lock().push(b"hello");
        inbox.lock().push(b" world");
        let n = inbox.take(&mut dst, true).result.unwrap();
        assert_eq!(bytes(&dst, n), b"hell", "peek");
        let mut out = Vec::new();
        while let Ok(n) = inbox.take(&mut dst, false).result {
            out.extend(bytes(&dst, n));
        }
        assert_eq!(out, b"hello world");
        inbox.lock().eof = true;
        assert_eq!(inbox.take(&mut dst, false).result.unwrap(), 0);
    }

    #[test]
    fn an_error_comes_after_the_data_before_it_and_once() {
        let inbox = Inbox::new();
        inbox.lock().push(b"ab");
        inbox.lock().error = Some(libc::ECONNRESET);
        let mut dst = [MaybeUninit::uninit(); 8];
        assert_eq!(inbox.take(&mut dst, false).result.unwrap(), 2);
        let e = inbox.take(&mut dst, false).result.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        assert_eq!(inbox.take(&mut dst, false).result.unwrap(), 0);
    }

    #[test]
    fn a_paused_receive_resumes_once_drained_below_the_mark() {
        let inbox = Inbox::new();
        inbox.lock().push(&vec![7u8; PAUSE_AT]);
        inbox.lock().recv = Recv::Idle;
        let mut dst = vec![MaybeUninit::uninit(); PAUSE_AT - RESUME_BELOW];
        let t = inbox.take(&mut dst, false);
        assert_eq!(t.result.unwrap(), PAUSE_AT - RESUME_BELOW);
        assert!(!t.resume, "still at the mark");
        let mut one = [MaybeUninit::uninit(); 1];
        let t = inbox.take(&mut one, false);
        assert!(t.resume);
        assert_eq!(inbox.lock().recv, Recv::Armed);
        assert!(!inbox.take(&mut one, false).resume, "resumed once");
    }
}
