//! Futex waits on several words at once (`futex_waitv(2)`, Linux 5.16),
//! for consumers that sleep on the io_uring completion queue's tail
//! (`backend/uring/cq_tail.rs` says why).

use std::io;
use std::time::Duration;

use crate::loom::FutexWord;

/// `FUTEX2_SIZE_U32 | FUTEX2_PRIVATE`: a 32-bit word of this process.
#[cfg(not(loom))]
const FLAGS: u32 = 0x02 | 128;

/// `struct futex_waitv` of `<linux/futex.h>`.
#[cfg(not(loom))]
#[repr(C)]
struct Waitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// Sleeps until one of `words` is woken or no longer holds its value (at
/// the call, or when a restart after a signal or task work checks again),
/// or `timeout` passes. Returns normally in every one of those cases; an
/// error only if the kernel refused the call (`ENOSYS` before 5.16).
#[cfg(not(loom))]
pub(crate) fn wait(words: &[(&FutexWord, u32)], timeout: Option<Duration>) -> io::Result<()> {
    let waiters: Vec<Waitv> = words
        .iter()
        .map(|(word, val)| Waitv {
            val: u64::from(*val),
            uaddr: word.as_ptr() as u64,
            flags: FLAGS,
            reserved: 0,
        })
        .collect();
    let mut abs = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let deadline = match timeout {
        Some(t) => {
            // SAFETY: clock_gettime writes the timespec it is given.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut abs) };
            let nanos = abs.tv_nsec as u64 + u64::from(t.subsec_nanos());
            abs.tv_sec = abs
                .tv_sec
                .saturating_add(t.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
                .saturating_add((nanos / 1_000_000_000) as libc::time_t);
            abs.tv_nsec = (nanos % 1_000_000_000) as libc::c_long;
            &abs as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: `waiters` lives across the call and names words that stay
    // valid (the caller borrows them); the timeout is null or points to
    // `abs`, also alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0 as libc::c_uint,
            deadline,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR | libc::ETIMEDOUT) => Ok(()),
        _ => Err(e),
    }
}

/// Wakes up to `n` threads waiting on `word`.
#[cfg(not(loom))]
pub(crate) fn wake(word: &FutexWord, n: i32) {
    // SAFETY: FUTEX_WAKE on a word this process owns; it reads nothing
    // else.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

/// Whether this kernel has `futex_waitv`.
#[cfg(not(loom))]
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let word = FutexWord::new(1);
        // A value that does not match: returns at once (EAGAIN) if the
        // call exists.
        wait(&[(&word, 0)], Some(Duration::ZERO)).is_ok()
    })
}

/// The kernel's futex as the loom models see it: one lock orders every
/// wait's check against every wake, as the futex hash bucket's lock does.
#[cfg(loom)]
mod emulated {
    use crate::loom::sync::{Condvar, Mutex};

    loom::lazy_static! {
        pub(super) static ref FUTEX: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }
}

/// As the kernel's: sleeps unless a word differs from its value; a timed
/// wait may return at any time (loom has no clock), as a timeout may.
#[cfg(loom)]
pub(crate) fn wait(words: &[(&FutexWord, u32)], timeout: Option<Duration>) -> io::Result<()> {
    use std::sync::atomic::Ordering;
    let (lock, cv) = &*emulated::FUTEX;
    let guard = lock.lock().unwrap();
    if timeout.is_some() || words.iter().any(|(w, v)| w.load(Ordering::SeqCst) != *v) {
        return Ok(());
    }
    drop(cv.wait(guard).unwrap());
    Ok(())
}

/// As the kernel's (every waiter rechecks its words, so waking all is
/// only slower).
#[cfg(loom)]
pub(crate) fn wake(_word: &FutexWord, _n: i32) {
    let (lock, cv) = &*emulated::FUTEX;
    let _guard = lock.lock().unwrap();
    cv.notify_all();
}

/// The models have the call.
#[cfg(loom)]
pub(crate) fn available() -> bool {
    true
}
