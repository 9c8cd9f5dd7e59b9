//! Socket options neither mio nor std offer on stable: `SO_LINGER`.
//!
//! This is the only module of `net` that calls the C library directly.

use std::io;
use std::mem;
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Sets `SO_LINGER`: `None` turns it off (close returns at once and the
/// kernel flushes in the background); `Some(d)` makes close wait up to `d`
/// for unsent data, and `Some(0)` makes close reset the connection.
pub(crate) fn set_linger(socket: &impl AsFd, dur: Option<Duration>) -> io::Result<()> {
    let value = libc::linger {
        l_onoff: dur.is_some() as libc::c_int,
        l_linger: dur.map_or(0, |d| {
            d.as_secs().min(libc::c_int::MAX as u64) as libc::c_int
        }),
    };
    // SAFETY: `value` is a live `linger`, and the length passed is its size;
    // the fd is borrowed, so it stays open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&value as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `SO_LINGER` (see [`set_linger`]).
pub(crate) fn linger(socket: &impl AsFd) -> io::Result<Option<Duration>> {
    let mut value = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    let mut len = mem::size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; `len` holds `value`'s size,
    // so the kernel writes within it; the fd is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&mut value as *mut libc::linger).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
}
