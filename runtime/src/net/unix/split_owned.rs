//! Owned halves of a `UnixStream`: a reader and a writer in different
//! tasks, sharing the stream through an `Arc`.

use super::UnixStream;
use crate::net::byte_stream::owned_halves;

owned_halves!(UnixStream, addr: std::os::unix::net::SocketAddr);
