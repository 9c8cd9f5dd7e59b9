//! I/O traits: futures' `AsyncRead`/`AsyncWrite` family, so code written
//! against them runs on kevent's sockets.

pub use futures_io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
pub use futures_util::io::{
    copy, empty, repeat, sink, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt,
    BufReader, BufWriter, Cursor, ReadHalf, WriteHalf,
};
pub use std::io::{Error, ErrorKind, Result};
