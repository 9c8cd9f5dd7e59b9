//! The loom shim: the same code runs on std and, under `--cfg loom`, on loom's
//! model-checked primitives. Everything concurrent in this crate imports its
//! atomics, locks and threads from here and nowhere else.

#[cfg(loom)]
pub(crate) use loom::sync;

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::*;
}

/// A mutex with parking_lot's infallible `lock`, backed by loom's mutex when
/// model checking so loom sees every acquisition.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    /// The wrapped lock.
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    /// The wrapped lock.
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().unwrap();
    }
}

/// Pads and aligns a value to a cache line pair so that indices written by
/// different cores do not share a line (crossbeam's `CachePadded`, sized for
/// x86_64's adjacent-line prefetcher).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A condition variable paired with [`Mutex`]: parking_lot's normally,
/// loom's under model checking (where timed waits are plain waits).
#[derive(Debug, Default)]
pub(crate) struct Condvar {
    /// The wrapped condition variable.
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
    /// The wrapped condition variable.
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

impl Condvar {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Waits for a notification or until `deadline`; true when the deadline passed.
    #[cfg(not(loom))]
    pub(crate) fn wait_until<T>(
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
    pub(crate) fn wait_until<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        _deadline: Option<std::time::Instant>,
    ) -> (MutexGuard<'a, T>, bool) {
        (self.inner.wait(guard).unwrap(), false)
    }

    pub(crate) fn notify_one(&self) {
        self.inner.notify_one();
    }
}
