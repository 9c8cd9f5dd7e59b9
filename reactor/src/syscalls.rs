//! Per-thread syscall counts, so a runtime can report the syscalls each
//! worker made (waits, wakes and submissions here; its own reads and writes
//! through [`count`]).

use std::cell::Cell;

thread_local! {
    /// Syscalls this thread made through the ring and its users.
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Records `n` syscalls made by the calling thread.
pub fn count(n: u64) {
    COUNT.with(|c| c.set(c.get() + n));
}

/// Syscalls the calling thread recorded so far.
pub fn this_thread() -> u64 {
    COUNT.with(Cell::get)
}
