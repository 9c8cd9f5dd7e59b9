//! The loom shim: concurrent code in this crate takes its atomics, cells
//! and threads from here, so the same code runs under loom's model checker
//! with `--cfg loom`.
#![allow(unused_imports)]

#[cfg(loom)]
pub(crate) use loom::{cell, hint, sync, thread};
#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::*;
}
#[cfg(not(loom))]
pub(crate) use std::{hint, thread};
#[cfg(not(loom))]
pub(crate) mod cell {
    /// std stand-in for loom's UnsafeCell with its closure API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            Self(std::cell::UnsafeCell::new(v))
        }
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
