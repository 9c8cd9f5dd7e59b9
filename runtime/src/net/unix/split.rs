//! Borrowed halves of a `UnixStream`: read and write concurrently in one
//! task.

use super::UnixStream;
use crate::net::byte_stream::borrowed_halves;

borrowed_halves!(UnixStream, addr: std::os::unix::net::SocketAddr);
