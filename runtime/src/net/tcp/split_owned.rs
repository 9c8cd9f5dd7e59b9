//! Owned halves of a `TcpStream`: a reader and a writer in different
//! tasks, sharing the stream through an `Arc`.

use std::io;
use std::task::{Context, Poll};

use super::TcpStream;
use crate::net::byte_stream::owned_halves;

owned_halves!(TcpStream, addr: std::net::SocketAddr);

impl OwnedReadHalf {
    /// See [`TcpStream::peek`].
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await
    }

    /// See [`TcpStream::poll_peek`].
    pub fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.inner.poll_peek(cx, buf)
    }
}
