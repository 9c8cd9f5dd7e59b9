//! [`UCred`]: who is on the other end of a Unix socket.

/// The credentials of a Unix socket's peer (tokio's `UCred`), as they were
/// when it connected (or when the pair was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UCred {
    /// The peer's process id (`None` where the system does not say).
    pid: Option<libc::pid_t>,
    /// The peer's effective user id.
    uid: libc::uid_t,
    /// The peer's effective group id.
    gid: libc::gid_t,
}

impl UCred {
    pub(crate) fn new(pid: Option<libc::pid_t>, uid: libc::uid_t, gid: libc::gid_t) -> UCred {
        UCred { pid, uid, gid }
    }

    /// The peer's user id.
    pub fn uid(&self) -> libc::uid_t {
        self.uid
    }

    /// The peer's group id.
    pub fn gid(&self) -> libc::gid_t {
        self.gid
    }

    /// The peer's process id, where the system reports it.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.pid
    }
}
