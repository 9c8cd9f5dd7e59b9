//! Socket calls neither mio nor std offer on stable: `SO_LINGER`, int
//! options, and the socket/bind/connect/listen steps of `TcpSocket`.
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
    set(socket, libc::SOL_SOCKET, libc::SO_LINGER, &value)
}

/// Reads `SO_LINGER` (see [`set_linger`]).
pub(crate) fn linger(socket: &impl AsFd) -> io::Result<Option<Duration>> {
    let value: libc::linger = get(socket, libc::SOL_SOCKET, libc::SO_LINGER)?;
    Ok((value.l_onoff != 0).then(|| Duration::from_secs(value.l_linger.max(0) as u64)))
}

/// Sets an `int`-valued socket option.
pub(crate) fn set_int(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set(socket, level, name, &value)
}

/// Reads an `int`-valued socket option.
pub(crate) fn int(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    get(socket, level, name)
}

/// setsockopt(2) with a plain C value (`c_int`, `linger`).
fn set<T: Copy>(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and the length passed is its size; the
    // fd is borrowed, so it stays open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// getsockopt(2) of a plain C value (`c_int`, `linger`: all-zero bytes are
/// a valid one).
fn get<T: Copy>(socket: &impl AsFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    // SAFETY: the callers' `T`s are plain C structs or integers, for which
    // all-zero bytes are a valid value.
    let mut value: T = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; `len` holds `value`'s size,
    // so the kernel writes within it; the fd is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Longest interface name `SO_BINDTODEVICE` takes (`IFNAMSIZ` less its
/// NUL).
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_DEVICE: usize = libc::IFNAMSIZ - 1;

/// Binds `socket` to the network interface `name` (`SO_BINDTODEVICE`):
/// it then sends and receives only through that interface. `None` (or an
/// empty name) removes the binding. Binding needs `CAP_NET_RAW` unless the
/// socket is unbound and the name is empty.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn bind_device(socket: &impl AsFd, name: Option<&[u8]>) -> io::Result<()> {
    let name = name.unwrap_or(&[]);
    // The kernel would cut a longer name short, and could bind to another
    // interface whose name is the cut one.
    if name.len() > MAX_DEVICE || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an interface name has at most 15 bytes and no NUL byte",
        ));
    }
    // SAFETY: `name` is a live slice and the length passed is its length
    // (0 unbinds, and the pointer is then not read); the fd is borrowed
    // for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The interface `socket` is bound to (`SO_BINDTODEVICE`), `None` if none.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn device(socket: &impl AsFd) -> io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; libc::IFNAMSIZ];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` are live locals and `len` holds `buf`'s
    // size, so the kernel writes within it; the fd is borrowed.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel writes the name with its NUL.
    let name = &buf[..(len as usize).min(buf.len())];
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    Ok((!name.is_empty()).then(|| name.to_vec()))
}

/// A new nonblocking, close-on-exec socket.
pub(crate) fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;

    // SAFETY: socket(2) with valid flags; the result is checked.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// `addr` as the C library's socket address, with its length.
fn raw_addr(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid `sockaddr_storage` (plain integers).
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_storage` is large and aligned enough for
            // any socket address, `sockaddr_in` included.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: as above, for `sockaddr_in6`.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// `call` (bind(2) or connect(2)) on `socket` with `addr`.
fn with_addr(
    socket: &impl AsFd,
    addr: &std::net::SocketAddr,
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> io::Result<()> {
    let (storage, len) = raw_addr(addr);
    // SAFETY: `storage` holds a valid socket address of `len` bytes, which
    // is all `call` reads; the fd is borrowed for the call.
    let rc = unsafe {
        call(
            socket.as_fd().as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// bind(2).
pub(crate) fn bind(socket: &impl AsFd, addr: &std::net::SocketAddr) -> io::Result<()> {
    with_addr(socket, addr, libc::bind)
}

/// connect(2) on a nonblocking socket: `Ok` once started (`EINPROGRESS`)
/// or done.
pub(crate) fn start_connect(socket: &impl AsFd, addr: &std::net::SocketAddr) -> io::Result<()> {
    match with_addr(socket, addr, libc::connect) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        r => r,
    }
}

/// listen(2) with `backlog` (clamped to what the C call takes).
pub(crate) fn listen(socket: &impl AsFd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(libc::c_int::MAX as u32) as libc::c_int;
    // SAFETY: listen(2) on a borrowed fd.
    if unsafe { libc::listen(socket.as_fd().as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The peer's credentials on a connected Unix socket (`SO_PEERCRED`):
/// process id, user id, group id, as they were when it connected.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_cred(socket: &impl AsFd) -> io::Result<(libc::pid_t, libc::uid_t, libc::gid_t)> {
    let cred: libc::ucred = get(socket, libc::SOL_SOCKET, libc::SO_PEERCRED)?;
    Ok((cred.pid, cred.uid, cred.gid))
}

/// `path` as a Unix socket address, with its length; a path starting with
/// a NUL byte names the abstract namespace (Linux).
fn raw_unix_addr(path: &std::path::Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: all-zero is a valid `sockaddr_un` (integers and a byte array).
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    let abstract_name = bytes.first() == Some(&0);
    // A filesystem path needs room for its terminating NUL.
    if bytes.is_empty() || bytes.len() + usize::from(!abstract_name) > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Unix socket path must be non-empty and shorter than 108 bytes",
        ));
    }
    if !abstract_name && bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a Unix socket path must not contain NUL bytes",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let base = mem::size_of::<libc::sa_family_t>();
    let len = base + bytes.len() + usize::from(!abstract_name);
    Ok((addr, len as libc::socklen_t))
}

/// `call` (bind(2) or connect(2)) on `socket` with the Unix address `path`.
fn with_unix_addr(
    socket: &impl AsFd,
    path: &std::path::Path,
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> io::Result<()> {
    let (addr, len) = raw_unix_addr(path)?;
    // SAFETY: `addr` holds a valid Unix socket address of `len` bytes,
    // which is all `call` reads; the fd is borrowed for the call.
    let rc = unsafe {
        call(
            socket.as_fd().as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// bind(2) to a Unix socket path.
pub(crate) fn bind_unix(socket: &impl AsFd, path: &std::path::Path) -> io::Result<()> {
    with_unix_addr(socket, path, libc::bind)
}

/// connect(2) of a nonblocking Unix socket to `path`: `Ok` once started
/// (`EINPROGRESS`) or done; a full backlog fails with `WouldBlock`.
pub(crate) fn start_connect_unix(socket: &impl AsFd, path: &std::path::Path) -> io::Result<()> {
    match with_unix_addr(socket, path, libc::connect) {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        r => r,
    }
}
