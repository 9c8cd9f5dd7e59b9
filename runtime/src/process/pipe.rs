//! A child's standard streams as async pipes.
//!
//! A pipe is not a socket: it cannot receive or send through the ring's
//! socket paths, so each end is read and written with `read(2)`/`write(2)`
//! when the ring reports it ready, on either backend.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use kevent_reactor::Interest;

use crate::driver::slab::Direction;
use crate::net::evented::Evented;

/// Switches `fd`'s open file description to (non)blocking mode.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: `fd` is a descriptor borrowed for the call; F_GETFL and
    // F_SETFL only read and set its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One end of a pipe, nonblocking and registered with the ring.
#[derive(Debug)]
struct Pipe {
    /// The registered pipe end.
    io: Evented<File>,
}

impl Pipe {
    #[track_caller]
    fn new(fd: OwnedFd, interest: Interest) -> io::Result<Pipe> {
        set_nonblocking(fd.as_fd(), true)?;
        Ok(Pipe {
            io: Evented::new(File::from(fd), interest)?,
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_transfer(cx, Direction::Read, buf.len(), |mut f| f.read(buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io
            .poll_transfer(cx, Direction::Write, buf.len(), |mut f| f.write(buf))
    }

    /// Leaves the ring and hands back the pipe end in blocking mode.
    fn into_owned_fd(self) -> io::Result<OwnedFd> {
        let fd = OwnedFd::from(self.io.into_inner());
        set_nonblocking(fd.as_fd(), false)?;
        Ok(fd)
    }
}

/// A child's pipe end: the type, its conversions, and `AsyncRead` (`read`)
/// or `AsyncWrite` (`write`).
macro_rules! child_pipe {
    ($name:ident, $std:ty, $dir:ident, $what:literal) => {
        #[doc = concat!("The child's ", $what, " (tokio's `", stringify!($name), "`).")]
        #[derive(Debug)]
        pub struct $name {
            /// The parent's end of the pipe.
            pipe: Pipe,
        }

        impl $name {
            #[doc = concat!("Wraps std's `", stringify!($name), "`, switching it to nonblocking mode.")]
            ///
            /// # Panics
            ///
            /// Outside a kevent runtime.
            #[track_caller]
            pub fn from_std(inner: $std) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(OwnedFd::from(inner), child_pipe!(@interest $dir))?,
                })
            }

            /// Leaves the runtime and returns the pipe end, back in
            /// blocking mode.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.pipe.into_owned_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.io.get_ref().as_raw_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.io.get_ref().as_fd()
            }
        }

        /// Hands the pipe end to another child as its standard stream
        /// (back in blocking mode), as tokio's `TryInto<Stdio>` does.
        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            fn try_from(value: $name) -> io::Result<Stdio> {
                Ok(Stdio::from(value.into_owned_fd()?))
            }
        }

        child_pipe!(@io $dir $name);
    };
    (@interest read) => {
        Interest::READABLE
    };
    (@interest write) => {
        Interest::WRITABLE
    };
    (@io read $name:ident) => {
        impl futures_io::AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }
        }
    };
    (@io write $name:ident) => {
        impl futures_io::AsyncWrite for $name {
            /// Writes to the pipe once it has room. A child that closed its
            /// end (or exited) fails the write with `BrokenPipe` (Rust
            /// programs ignore `SIGPIPE`, so the write returns `EPIPE`
            /// instead of killing us).
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the pipe: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            /// Nothing to do: the pipe closes, and the child sees end of
            /// file, when this is dropped.
            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
    };
}

child_pipe!(
    ChildStdin,
    std::process::ChildStdin,
    write,
    "standard input"
);
child_pipe!(
    ChildStdout,
    std::process::ChildStdout,
    read,
    "standard output"
);
child_pipe!(
    ChildStderr,
    std::process::ChildStderr,
    read,
    "standard error"
);
