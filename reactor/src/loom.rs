//! The loom shim: the same code runs on std and, under `--cfg loom`, on loom's
//! model-checked primitives. Everything concurrent in this crate imports its
//! atomics, locks and threads from here and nowhere else, with two kinds of
//! exception, each marked where it is: `static`s (loom's atomics cannot be
//! built in a constant: id counters, and the signal handler's state, which
//! must be plain atomics anyway) and memory shared with the kernel (the
//! buffer ring's tail). The runtime crate uses this shim too (it re-exports
//! it as `kevent_reactor::loom`, hidden from the docs).

#![allow(unused_imports)]

#[cfg(loom)]
pub use loom::{cell, hint, sync, thread};

#[cfg(not(loom))]
pub mod sync {
    pub use std::sync::*;
}
#[cfg(not(loom))]
pub use std::{hint, thread};
#[cfg(not(loom))]
pub mod cell {
    /// std stand-in for loom's `UnsafeCell` with its closure API.
    #[derive(Debug, Default)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        /// Wraps `v`.
        pub const fn new(v: T) -> Self {
            Self(std::cell::UnsafeCell::new(v))
        }
        /// Runs `f` with a shared pointer to the value.
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        /// Runs `f` with a mutable pointer to the value.
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// A mutex with parking_lot's infallible `lock`, backed by loom's mutex when
/// model checking so loom sees every acquisition.
/// A 32-bit word a futex waits on (`crate::futex`): std's atomic, which
/// the kernel reads, or loom's under the models, where `futex` emulates
/// the kernel with a lock and a condition variable.
pub type FutexWord = sync::atomic::AtomicU32;

#[derive(Debug, Default)]
pub struct Mutex<T> {
    /// The wrapped lock.
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    /// The wrapped lock.
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(loom))]
pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A lock around `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks it (never poisoned).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().unwrap();
    }

    /// The lock if it is free now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        return self.inner.try_lock();
        #[cfg(loom)]
        return self.inner.try_lock().ok();
    }
}

/// Pads and aligns a value to a cache line pair so that indices written by
/// different cores do not share a line (crossbeam's `CachePadded`, sized for
/// x86_64's adjacent-line prefetcher).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> CachePadded<T> {
    /// Pads `value`.
    pub const fn new(value: T) -> Self {
        CachePadded(value)
    }
}

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A condition variable paired with [`Mutex`]: parking_lot's normally,
/// loom's under model checking (where timed waits are plain waits).
#[derive(Debug, Default)]
pub struct Condvar {
    /// The wrapped condition variable.
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
    /// The wrapped condition variable.
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for a notification or until `deadline`; true when the deadline passed.
    #[cfg(not(loom))]
    pub fn wait_until<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<std::time::Instant>,
    ) -> bool {
        match deadline {
            Some(d) => self.inner.wait_until(guard, d).timed_out(),
            None => {
                self.inner.wait(guard);
                false
            }
        }
    }

    /// Waits for a notification; loom has no clock, so deadlines are ignored.
    #[cfg(loom)]
    pub fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        _deadline: Option<std::time::Instant>,
    ) -> (MutexGuard<'a, T>, bool) {
        (self.inner.wait(guard).unwrap(), false)
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.inner.notify_one();
    }
}
