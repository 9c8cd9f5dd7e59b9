//! I/O traits: futures' `AsyncRead`/`AsyncWrite` family, so code written
//! against them runs on kevent's sockets; the process's standard streams,
//! in-memory pipes, [`split`], [`copy_bidirectional`], and
//! [`unix::AsyncFd`] for the readiness of any file descriptor.

mod async_fd;
mod copy_bidirectional;
mod duplex;
mod stdio;

pub use futures_io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
pub use futures_util::io::{
    copy, empty, repeat, sink, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt,
    BufReader, BufWriter, Cursor, ReadHalf, WriteHalf,
};
pub use std::io::{Error, ErrorKind, Result};

pub use copy_bidirectional::{copy_bidirectional, copy_bidirectional_with_sizes};
pub use duplex::{duplex, simplex, DuplexStream, SimplexStream};
pub use kevent_reactor::{Interest, Ready};
pub use stdio::{stderr, stdin, stdout, Stderr, Stdin, Stdout};

/// Splits one reader-writer into a read half and a write half usable from
/// different tasks (tokio's `io::split`); [`ReadHalf::reunite`] puts them
/// back together. Each half locks the stream for the duration of one poll.
pub fn split<T: AsyncRead + AsyncWrite>(stream: T) -> (ReadHalf<T>, WriteHalf<T>) {
    AsyncReadExt::split(stream)
}

/// Unix-specific I/O: the readiness of any file descriptor.
pub mod unix {
    pub use super::async_fd::{
        AsyncFd, AsyncFdReadyGuard, AsyncFdReadyMutGuard, AsyncFdTryNewError, TryIoError,
    };
}
