//! Borrowed halves of a `TcpStream`: read and write concurrently in one
//! task.

use std::io;
use std::task::{Context, Poll};

use super::TcpStream;
use crate::net::byte_stream::borrowed_halves;

borrowed_halves!(TcpStream, addr: std::net::SocketAddr);

impl ReadHalf<'_> {
    /// See [`TcpStream::peek`].
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }

    /// See [`TcpStream::poll_peek`].
    pub fn poll_peek(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }
}
