//! Listening sockets on io_uring, watched through an epoll set.
//!
//! A multishot poll in the ring holds a reference to the file it polls, and
//! the ring lets go of its requests only when its teardown runs in the
//! kernel — after the process has exited, or after the runtime dropped
//! its ring, some milliseconds later. A listening socket held that way
//! keeps its port bound past its `close` and past its process: a server
//! restarted at once on the same port fails with `EADDRINUSE`.
//!
//! An epoll set holds no reference to the files it watches (closing the
//! last descriptor of a file takes it out of every set). So listeners go
//! into one epoll set, and the ring polls the set's descriptor instead of
//! each listener: a readiness of any listener makes the set readable, the
//! harvester reads the set with `epoll_wait(0)` and publishes each
//! listener's readiness under its own entry. A listener's port is then
//! free the moment its descriptor closes, whatever the ring still holds.
//!
//! The set is edge-triggered, as mio's is: a readiness is reported once
//! per change, and the reader retries until `WouldBlock`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::event::{Interest, Ready};

/// Listening sockets' registrations, watched through one epoll set.
#[derive(Debug)]
pub(crate) struct ListenSet {
    /// The epoll set.
    epoll: OwnedFd,
    /// Each member's entry and descriptor.
    members: crate::loom::Mutex<HashMap<u64, RawFd>>,
}

/// Events read per `epoll_wait`.
const BATCH: usize = 64;

impl ListenSet {
    pub(crate) fn new() -> io::Result<ListenSet> {
        // SAFETY: epoll_create1 with a valid flag; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ListenSet {
            // SAFETY: `fd` was just created and is owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            members: crate::loom::Mutex::new(HashMap::new()),
        })
    }

    /// The set's descriptor, for the ring to poll.
    pub(crate) fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Watches `fd` for `interest`, reported as `entry`.
    pub(crate) fn add(&self, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        let mut members = self.members.lock();
        self.ctl(libc::EPOLL_CTL_ADD, fd, entry, interest)?;
        members.insert(entry, fd);
        Ok(())
    }

    /// Changes what `entry` (a member) watches; `false` if it is no member.
    pub(crate) fn modify(&self, entry: u64, interest: Interest) -> io::Result<bool> {
        let members = self.members.lock();
        match members.get(&entry) {
            Some(&fd) => self
                .ctl(libc::EPOLL_CTL_MOD, fd, entry, interest)
                .map(|()| true),
            None => Ok(false),
        }
    }

    /// Stops watching `entry`; `false` if it is no member. A descriptor
    /// already closed has left the set by itself.
    pub(crate) fn remove(&self, entry: u64) -> bool {
        let Some(fd) = self.members.lock().remove(&entry) else {
            return false;
        };
        // SAFETY: epoll_ctl on our set; a null event is allowed for DEL.
        // An error (EBADF, ENOENT: closed already) leaves nothing to undo.
        unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        true
    }

    /// Reads what the set has (without sleeping) into `out`. Returns the
    /// number of `epoll_wait` calls made.
    pub(crate) fn harvest(&self, out: &mut Vec<(u64, Ready)>) -> io::Result<u64> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut calls = 0;
        loop {
            calls += 1;
            // SAFETY: epoll_wait on our set into a buffer of BATCH events.
            let n = unsafe { libc::epoll_wait(self.fd(), events.as_mut_ptr(), BATCH as i32, 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                out.push((ev.u64, Ready::from_poll_bits(ev.events)));
            }
            if (n as usize) < BATCH {
                return Ok(calls);
            }
        }
    }

    fn ctl(&self, op: i32, fd: RawFd, entry: u64, interest: Interest) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: mask(interest),
            u64: entry,
        };
        // SAFETY: epoll_ctl on our set with a valid event.
        if unsafe { libc::epoll_ctl(self.fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn mask(interest: Interest) -> u32 {
    let mut mask = libc::EPOLLET as u32;
    if interest.is_readable() {
        mask |= (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
    }
    if interest.is_writable() {
        mask |= libc::EPOLLOUT as u32;
    }
    if interest.is_priority() {
        mask |= libc::EPOLLPRI as u32;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_members_readiness_is_reported_once_under_its_entry() {
        let set = ListenSet::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        set.add(listener.as_raw_fd(), 7, Interest::READABLE)
            .unwrap();
        let mut out = Vec::new();
        set.harvest(&mut out).unwrap();
        assert!(out.is_empty(), "nothing to accept yet: {out:?}");
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        set.harvest(&mut out).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, 7);
        assert!(out[0].1.is_readable());
        // Edge-triggered: the same pending connection is not reported again.
        out.clear();
        set.harvest(&mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_closed_member_frees_its_port_at_once() {
        let set = ListenSet::new().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        set.add(listener.as_raw_fd(), 1, Interest::READABLE)
            .unwrap();
        drop(listener);
        TcpListener::bind(addr).expect("the set holds no reference to the socket");
        assert!(set.remove(1));
        assert!(!set.remove(1), "removed once");
    }
}
