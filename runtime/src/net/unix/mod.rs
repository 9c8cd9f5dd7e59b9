//! Unix-domain sockets: [`UnixListener`], [`UnixStream`] and the halves it
//! splits into, [`UnixDatagram`].

mod datagram;
mod listener;
mod socket;
mod split;
mod split_owned;
mod stream;
mod ucred;

pub use datagram::UnixDatagram;
pub use listener::UnixListener;
pub use socket::UnixSocket;
pub use split::{ReadHalf, WriteHalf};
pub use split_owned::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use std::os::unix::net::SocketAddr;
pub use stream::UnixStream;
pub use ucred::UCred;

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The address `path` names, when std's path-based calls cannot take it:
/// on Linux and Android a path whose first byte is NUL names a socket in
/// the abstract namespace (`"\0name"`, as with std's `SocketAddrExt`).
/// `None` for an ordinary filesystem path.
pub(crate) fn abstract_addr(path: &Path) -> io::Result<Option<SocketAddr>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;

        if let Some(name) = path.as_os_str().as_bytes().strip_prefix(b"\0") {
            return SocketAddr::from_abstract_name(name).map(Some);
        }
    }
    let _ = path;
    Ok(None)
}

/// Runs `f` on `socket`'s descriptor seen as a std datagram socket, for
/// the calls mio has no address-taking form of.
pub(crate) fn with_std_datagram<R>(
    socket: &mio::net::UnixDatagram,
    f: impl FnOnce(&std::os::unix::net::UnixDatagram) -> io::Result<R>,
) -> io::Result<R> {
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor is open and stays open for this call (it is
    // borrowed from `socket`), and `ManuallyDrop` keeps the std socket from
    // closing it: ownership never moves.
    let std = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixDatagram::from_raw_fd(socket.as_raw_fd())
    });
    f(&std)
}
