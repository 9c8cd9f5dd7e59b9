//! Unix signals as ring events.
//!
//! A process-wide `sigaction` handler counts each signal and writes one byte
//! into the self-pipe of every ring that watches signals (both are
//! async-signal-safe). Each ring registers its pipe's read end with its
//! backend; when the harvester sees it readable it drains the pipe, compares
//! the counters with what it saw last, and marks the matching signal
//! registrations ready with `Ready::SIGNAL` and bit `signo` in the payload.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
// The statics below are std's (see `loom.rs`): built in constants, and
// touched by the signal handler.
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crate::backend::Poller;
use crate::event::{Flags, Interest, Ready};
use crate::loom::Mutex;
use crate::registration::{Key, Kind, Slab};

/// Highest signal number handled (Linux has 64; bit `n` of a u64 payload).
pub(crate) const MAX_SIGNAL: usize = 63;
/// Rings that may watch signals at once in one process.
const MAX_PIPES: usize = 64;

/// Times each signal arrived since the process started.
static COUNTS: [AtomicU64; MAX_SIGNAL + 1] = [const { AtomicU64::new(0) }; MAX_SIGNAL + 1];
/// Write ends of the self-pipes, -1 when unused.
static PIPES: [AtomicI32; MAX_PIPES] = [const { AtomicI32::new(-1) }; MAX_PIPES];
/// Whether our handler is installed for the signal.
static INSTALLED: [AtomicBool; MAX_SIGNAL + 1] = [const { AtomicBool::new(false) }; MAX_SIGNAL + 1];
/// Serialises handler installation.
static INSTALL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

extern "C" fn on_signal(signo: libc::c_int) {
    // Only async-signal-safe operations: atomics and write(2). errno is
    // saved because the interrupted code may be about to read it.
    let saved = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if let Some(count) = COUNTS.get(signo as usize) {
        count.fetch_add(1, Ordering::SeqCst);
    }
    for pipe in &PIPES {
        let fd = pipe.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = signo as u8;
            // SAFETY: writing one byte from a valid stack location to a
            // pipe fd; a full non-blocking pipe just fails with EAGAIN,
            // which is fine because the reader compares counters anyway.
            unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        }
    }
    // SAFETY: restoring errno through the thread's errno location.
    unsafe { *errno_location() = saved };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: __errno_location is always valid for the current thread.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: __error is always valid for the current thread.
    unsafe { libc::__error() }
}

/// Installs the counting handler for `signo` (once per process).
pub(crate) fn install(signo: i32) -> io::Result<()> {
    if signo <= 0 || signo as usize > MAX_SIGNAL || signo == libc::SIGKILL || signo == libc::SIGSTOP
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("kevent: signal {signo} cannot be watched"),
        ));
    }
    let _guard = INSTALL.lock();
    if INSTALLED[signo as usize].load(Ordering::SeqCst) {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction is a valid starting point; we set the
    // handler, an empty mask and SA_RESTART before passing it to sigaction.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signo, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    INSTALLED[signo as usize].store(true, Ordering::SeqCst);
    Ok(())
}

/// One ring's self-pipe.
#[derive(Debug)]
pub(crate) struct SignalPipe {
    /// Read end, registered with the ring's backend.
    pub(crate) read: RawFd,
    /// Write end, also published in `PIPES[slot]`.
    write: RawFd,
    /// Index in `PIPES`.
    slot: usize,
    /// The counters as last seen by this ring.
    seen: Mutex<[u64; MAX_SIGNAL + 1]>,
}

impl SignalPipe {
    pub(crate) fn new() -> io::Result<SignalPipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fcntl on descriptors we just created.
            unsafe {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        let mut seen = [0; MAX_SIGNAL + 1];
        for (s, c) in seen.iter_mut().zip(COUNTS.iter()) {
            *s = c.load(Ordering::SeqCst);
        }
        let slot = PIPES.iter().position(|p| {
            p.compare_exchange(-1, fds[1], Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        let Some(slot) = slot else {
            // SAFETY: closing the descriptors we created and did not publish.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            return Err(io::Error::other("kevent: too many rings watch signals"));
        };
        Ok(SignalPipe {
            read: fds[0],
            write: fds[1],
            slot,
            seen: Mutex::new(seen),
        })
    }

    /// Drains the pipe and returns the set of signals (bit `n` for signal
    /// `n`) that arrived since the last call.
    pub(crate) fn drain(&self) -> u64 {
        let mut buf = [0u8; 128];
        loop {
            // SAFETY: reading into a stack buffer of the given length.
            let n = unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
        let mut seen = self.seen.lock();
        let mut arrived = 0u64;
        for (signo, (s, c)) in seen.iter_mut().zip(COUNTS.iter()).enumerate() {
            let now = c.load(Ordering::SeqCst);
            if now != *s {
                *s = now;
                arrived |= 1 << signo;
            }
        }
        arrived
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        PIPES[self.slot].store(-1, Ordering::SeqCst);
        // SAFETY: the descriptors are ours and no longer published.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// A ring's signal registrations and the self-pipe that tells it of
/// arrivals (the ring's glue for this module).
#[derive(Debug)]
pub(crate) struct Signals {
    /// The self-pipe and its registration, made at the first watch.
    pipe: OnceLock<(SignalPipe, Key)>,
    /// Signal registrations: (signal number, key).
    regs: Mutex<Vec<(i32, Key)>>,
}

impl Signals {
    pub(crate) fn new() -> Signals {
        Signals {
            pipe: OnceLock::new(),
            regs: Mutex::new(Vec::new()),
        }
    }

    /// Installs the handler for `signo` and, the first time, makes the
    /// self-pipe and registers it in `regs` and with `backend`.
    pub(crate) fn watch(&self, signo: i32, regs: &Slab, backend: &dyn Poller) -> io::Result<()> {
        install(signo)?;
        if self.pipe.get().is_some() {
            return Ok(());
        }
        let pipe = SignalPipe::new()?;
        let (key, _) = regs.insert(Kind::Fd, usize::MAX, Flags::NONE, pipe.read)?;
        backend.register(pipe.read, key.entry(), Interest::READABLE)?;
        if self.pipe.set((pipe, key)).is_err() {
            // Lost a race with another thread; ours is dropped and closed.
            regs.remove(key);
        }
        Ok(())
    }

    /// Delivers `signo` to the registration `key` from now on.
    pub(crate) fn add(&self, signo: i32, key: Key) {
        self.regs.lock().push((signo, key));
    }

    /// Stops delivering to the registration `key`.
    pub(crate) fn remove(&self, key: Key) {
        self.regs.lock().retain(|&(_, k)| k != key);
    }

    /// The self-pipe's ring entry, once it exists.
    pub(crate) fn entry(&self) -> Option<u64> {
        self.pipe.get().map(|(_, k)| k.entry())
    }

    /// The self-pipe was readable: drains it and marks the registrations
    /// of the signals that arrived ready, pushing the entries that became
    /// queued.
    pub(crate) fn arrived(&self, regs: &Slab, entries: &mut Vec<u64>) {
        let arrived = self.pipe.get().map_or(0, |(p, _)| p.drain());
        if arrived == 0 {
            return;
        }
        for &(signo, key) in self.regs.lock().iter() {
            let bit = 1u64 << signo;
            if arrived & bit != 0 {
                if let Some(reg) = regs.get(key) {
                    if reg.mark_ready(key, Ready::SIGNAL, bit) {
                        entries.push(key.entry());
                    }
                }
            }
        }
    }
}
