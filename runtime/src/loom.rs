//! The loom shim: concurrent code in this crate takes its atomics, locks,
//! cells and threads from here, so the same code runs under loom's model
//! checker with `--cfg loom`. It is the reactor's shim (`kevent_reactor::loom`),
//! so both crates model-check against one set of primitives.
#![allow(unused_imports)]

pub(crate) use kevent_reactor::loom::*;
