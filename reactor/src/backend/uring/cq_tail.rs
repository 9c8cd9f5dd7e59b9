//! Consumers sleep on the completion queue's tail.
//!
//! The kernel posts a request's completion from task work that runs on the
//! thread that submitted the request. A consumer parked on a condition
//! variable is woken for that work, runs it and goes back to sleep inside
//! the kernel (the futex wait restarts), while the completion it posted
//! wakes whoever sleeps in `io_uring_enter`: two wakeups for one event, the
//! first of them for nothing. Measured at a light HTTP load with two
//! workers, most parked sleeps ended that way.
//!
//! So, where the kernel has `futex_waitv`, no consumer sleeps in
//! `io_uring_enter` or on a condition variable: each waits on two futex
//! words at once, the tail of the shared ring's completion queue (the value
//! it had when the queue was seen empty) and a word of its own that a
//! waker bumps. A restarted wait checks the tail again, so a consumer woken
//! for its own task work comes back to user space when that work posted a
//! completion, reads it and runs what it announced. A completion posted on
//! another thread's behalf wakes nobody else: the kernel moves the tail but
//! wakes no futex waiter for that, and the thread that posted it reads it
//! itself (it is awake). Every completion on the shared ring is posted from
//! its submitter's task work or inline in its submitter's enter; the one
//! exception, a `MSG_RING` wakeup, is not used in this mode.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::IoUring;

/// `IORING_OFF_CQ_RING`: where the completion ring is mapped from.
const OFF_CQ_RING: libc::off_t = 0x8000000;
/// Byte offsets of `cq_off.head` and `cq_off.tail` in `struct
/// io_uring_params` (the kernel's ABI: seven words, three reserved, then
/// the 40-byte submission offsets).
const PARAMS_CQ_HEAD: usize = 80;
const PARAMS_CQ_TAIL: usize = 84;

/// A read-only view of the completion ring's head and tail.
#[derive(Debug)]
pub(crate) struct CqTail {
    map: *mut libc::c_void,
    len: usize,
    head: *const AtomicU32,
    tail: *const AtomicU32,
}

// SAFETY: the view is plain shared memory, read through atomics only.
unsafe impl Send for CqTail {}
// SAFETY: as above.
unsafe impl Sync for CqTail {}

impl CqTail {
    /// Maps `ring`'s completion head and tail; `None` where that is not
    /// possible (or `futex_waitv` is missing), and consumers then sleep
    /// as before.
    pub(crate) fn new(ring: &IoUring) -> Option<CqTail> {
        if cfg!(loom) || !crate::futex::available() {
            return None;
        }
        let params = ring.params();
        // SAFETY: `Parameters` is `repr(transparent)` over the kernel's
        // `io_uring_params` (120 bytes); reading words inside it is
        // reading that struct.
        let word = |at: usize| unsafe {
            (params as *const io_uring::Parameters)
                .cast::<u8>()
                .add(at)
                .cast::<u32>()
                .read_unaligned()
        };
        if word(0) != params.sq_entries() || word(4) != params.cq_entries() {
            return None;
        }
        let (head_off, tail_off) = (word(PARAMS_CQ_HEAD) as usize, word(PARAMS_CQ_TAIL) as usize);
        let len = head_off.max(tail_off) + 4;
        use std::os::fd::AsRawFd;
        // SAFETY: a new read-only shared mapping of the ring's completion
        // area, which the kernel offers at this offset; unmapped on drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring.as_raw_fd(),
                OFF_CQ_RING,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: both offsets lie inside the `len` bytes just mapped, and
        // the kernel keeps each word 4-byte aligned.
        let (head, tail) = unsafe {
            (
                map.cast::<u8>().add(head_off).cast::<AtomicU32>(),
                map.cast::<u8>().add(tail_off).cast::<AtomicU32>(),
            )
        };
        Some(CqTail {
            map,
            len,
            head,
            tail,
        })
    }

    /// The tail word, to wait on.
    pub(crate) fn word(&self) -> &crate::loom::FutexWord {
        // SAFETY: mapped for as long as `self` lives; the models never
        // map a ring (`new` fails under them), so the word is std's atomic.
        unsafe { &*self.tail.cast::<crate::loom::FutexWord>() }
    }

    /// The tail, if every completion posted up to it has been read (the
    /// queue is empty): a consumer may sleep on that value. `None`: read
    /// the queue first.
    pub(crate) fn quiet(&self) -> Option<u32> {
        // SAFETY: mapped for as long as `self` lives.
        let (head, tail) = unsafe { (&*self.head, &*self.tail) };
        let t = tail.load(Ordering::Acquire);
        (head.load(Ordering::Acquire) == t).then_some(t)
    }
}

impl Drop for CqTail {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

/// Sleeps on `cq`'s tail `seen` and on `word` holding `val`, for up to
/// `timeout`.
pub(crate) fn sleep(
    cq: &CqTail,
    seen: u32,
    word: &crate::loom::FutexWord,
    val: u32,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    crate::futex::wait(&[(cq.word(), seen), (word, val)], timeout)
}
