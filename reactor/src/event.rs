//! The words of the ring's interface: tokens, interests, readiness and the
//! events consumers receive.

use std::fmt;

/// The caller's name for a registration, handed back in every [`Event`].
///
/// Like mio's `Token`, the ring never interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// What a file-descriptor registration wants to hear about. Errors and
/// hang-ups are always reported, whatever the interest; [`Interest::ERROR`]
/// is for a registration that waits for nothing else.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// The source has bytes to read (or a connection to accept).
    pub const READABLE: Interest = Interest(1);
    /// The source can take bytes.
    pub const WRITABLE: Interest = Interest(2);
    /// Both directions.
    pub const BOTH: Interest = Interest(3);
    /// Priority data is ready (`POLLPRI`): a TCP socket's out-of-band
    /// byte, an exceptional condition on some device files.
    pub const PRIORITY: Interest = Interest(4);
    /// An error condition is pending (`POLLERR`): a socket error, or an
    /// entry on a socket's error queue (`IP_RECVERR`, `SO_TIMESTAMPING`).
    pub const ERROR: Interest = Interest(8);

    /// Whether reading is of interest.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writing is of interest.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// Whether priority data is of interest.
    pub fn is_priority(self) -> bool {
        self.0 & 4 != 0
    }

    /// Whether error conditions are of interest.
    pub fn is_error(self) -> bool {
        self.0 & 8 != 0
    }

    /// Both interests combined.
    pub fn with(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }

    /// Both interests combined (tokio's name for [`Interest::with`]).
    pub const fn add(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        self.add(rhs)
    }
}

impl std::ops::BitOrAssign for Interest {
    fn bitor_assign(&mut self, rhs: Interest) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 4] = ["READABLE", "WRITABLE", "PRIORITY", "ERROR"];
        names(f, self.0 as u16, &NAMES, "(none)")
    }
}

/// Writes the names of the bits set in `bits`, joined by ` | `, or
/// `none` if no bit is set.
fn names(f: &mut fmt::Formatter<'_>, bits: u16, names: &[&str], none: &str) -> fmt::Result {
    let mut first = true;
    for (i, name) in names.iter().enumerate() {
        if bits & (1 << i) != 0 {
            if !first {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    if first {
        f.write_str(none)?;
    }
    Ok(())
}

/// Readiness carried by an event: a small bit set. Readiness that arrives
/// while a registration waits in the ring or is dispatched is OR-ed into it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ready(u16);

impl Ready {
    /// No readiness.
    pub const EMPTY: Ready = Ready(0);
    /// The fd is readable.
    pub const READABLE: Ready = Ready(1);
    /// The fd is writable.
    pub const WRITABLE: Ready = Ready(1 << 1);
    /// The fd reported an error condition.
    pub const ERROR: Ready = Ready(1 << 2);
    /// The peer closed its write side (reads will see end of file).
    pub const READ_CLOSED: Ready = Ready(1 << 3);
    /// The fd can no longer be written (reset or shut down).
    pub const WRITE_CLOSED: Ready = Ready(1 << 4);
    /// A user event was posted.
    pub const USER: Ready = Ready(1 << 5);
    /// A timer expired.
    pub const TIMER: Ready = Ready(1 << 6);
    /// A watched signal arrived.
    pub const SIGNAL: Ready = Ready(1 << 7);
    /// Priority data is ready (`POLLPRI`, see [`Interest::PRIORITY`]).
    pub const PRIORITY: Ready = Ready(1 << 8);

    pub(crate) const MASK: u16 = 0x1ff;

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Readable, or closed for reading, or in error: a read will not block.
    pub fn is_readable(self) -> bool {
        self.intersects(Ready(
            Self::READABLE.0 | Self::READ_CLOSED.0 | Self::ERROR.0,
        ))
    }

    /// Writable, or closed for writing, or in error: a write will not block.
    pub fn is_writable(self) -> bool {
        self.intersects(Ready(
            Self::WRITABLE.0 | Self::WRITE_CLOSED.0 | Self::ERROR.0,
        ))
    }

    /// Closed for reading: the peer will send nothing more (reads see end
    /// of file once the buffered bytes are read).
    pub fn is_read_closed(self) -> bool {
        self.contains(Self::READ_CLOSED)
    }

    /// Closed for writing: writes will fail (reset, shut down, or no
    /// reader left on a pipe).
    pub fn is_write_closed(self) -> bool {
        self.contains(Self::WRITE_CLOSED)
    }

    /// An error condition is pending (for a socket, in `SO_ERROR` or on
    /// its error queue).
    pub fn is_error(self) -> bool {
        self.contains(Self::ERROR)
    }

    /// Priority data is ready (a TCP socket's out-of-band byte).
    pub fn is_priority(self) -> bool {
        self.contains(Self::PRIORITY)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Rebuilds a readiness from [`Ready::bits`].
    pub const fn from_bits(bits: u16) -> Ready {
        Ready(bits & Self::MASK)
    }

    /// The readiness that `poll(2)` revents or epoll events report: the
    /// two share their bit values on Linux, so an io_uring poll's result,
    /// an `epoll_wait` of the listener set and mio's `epoll_pwait` all
    /// read through this. A hang-up closes both directions; `RDHUP` only
    /// the reading one; urgent data is priority readiness and counts as
    /// readable too (as mio and `select(2)` count it).
    #[cfg(target_os = "linux")]
    pub(crate) fn from_poll_bits(bits: u32) -> Ready {
        const _: () = assert!(
            libc::POLLIN as i32 == libc::EPOLLIN
                && libc::POLLPRI as i32 == libc::EPOLLPRI
                && libc::POLLOUT as i32 == libc::EPOLLOUT
                && libc::POLLERR as i32 == libc::EPOLLERR
                && libc::POLLHUP as i32 == libc::EPOLLHUP
                && libc::POLLRDHUP as i32 == libc::EPOLLRDHUP
        );
        let bits = bits as i32;
        let mut ready = Ready::EMPTY;
        if bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0 {
            ready |= Ready::READABLE;
        }
        if bits & libc::EPOLLPRI != 0 {
            ready |= Ready::PRIORITY;
        }
        if bits & libc::EPOLLOUT != 0 {
            ready |= Ready::WRITABLE;
        }
        if bits & libc::EPOLLERR != 0 {
            ready |= Ready::ERROR;
        }
        if bits & libc::EPOLLHUP != 0 {
            ready |= Ready::READ_CLOSED | Ready::WRITE_CLOSED;
        }
        if bits & libc::EPOLLRDHUP != 0 {
            ready |= Ready::READ_CLOSED;
        }
        ready
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = [
            "READABLE",
            "WRITABLE",
            "ERROR",
            "READ_CLOSED",
            "WRITE_CLOSED",
            "USER",
            "TIMER",
            "SIGNAL",
            "PRIORITY",
        ];
        names(f, self.0, &NAMES, "(empty)")
    }
}

/// Per-registration delivery flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// Default: publishing this registration's entry wakes at most one
    /// sleeping consumer (`KEVENT_REQ_WAKEUP_ONE` of the 2006 interface, made
    /// the default).
    pub const NONE: Flags = Flags(0);
    /// Publishing this registration's entry wakes every sleeping consumer
    /// (shutdown, configuration changes).
    pub const WAKEUP_ALL: Flags = Flags(1);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    pub(crate) fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }
}

/// One delivered event: what a consumer gets for each ring entry it claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The registration's token.
    pub token: Token,
    /// Everything that became ready since the registration was last delivered.
    pub ready: Ready,
    /// For user events, the OR of the payloads posted since the last delivery;
    /// for signals, a bit set of signal numbers (bit `n` for signal `n`); else 0.
    pub payload: u64,
}

/// A consumer's identity for affinity: the CPU (or worker) index whose
/// consumer should preferably handle an entry. Only ever a hint.
pub type Hint = usize;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{Interest, Ready};

    #[test]
    fn interests_and_readiness_print_and_combine() {
        let i = Interest::READABLE | Interest::PRIORITY | Interest::ERROR;
        assert!(i.is_readable() && i.is_priority() && i.is_error() && !i.is_writable());
        assert_eq!(format!("{i:?}"), "READABLE | PRIORITY | ERROR");
        let r = Ready::PRIORITY | Ready::ERROR;
        assert!(r.is_priority() && r.is_error());
        assert!(!Ready::READABLE.is_priority());
        assert_eq!(format!("{r:?}"), "ERROR | PRIORITY");
        assert_eq!(Ready::from_bits(r.bits()), r);
        assert_eq!(format!("{:?}", Ready::EMPTY), "(empty)");
    }

    #[test]
    fn poll_bits_map_to_readiness() {
        let of = |bits: i32| Ready::from_poll_bits(bits as u32);
        assert_eq!(of(0), Ready::EMPTY);
        assert_eq!(of(libc::EPOLLIN), Ready::READABLE);
        assert_eq!(of(libc::EPOLLPRI), Ready::READABLE | Ready::PRIORITY);
        assert_eq!(of(libc::EPOLLOUT), Ready::WRITABLE);
        assert_eq!(of(libc::EPOLLERR), Ready::ERROR);
        assert_eq!(of(libc::EPOLLHUP), Ready::READ_CLOSED | Ready::WRITE_CLOSED);
        assert_eq!(of(libc::EPOLLRDHUP), Ready::READ_CLOSED);
        assert_eq!(
            of(libc::POLLIN as i32 | libc::POLLRDHUP as i32),
            Ready::READABLE | Ready::READ_CLOSED
        );
        assert_eq!(
            of(libc::POLLOUT as i32 | libc::POLLERR as i32),
            Ready::WRITABLE | Ready::ERROR
        );
    }
}
