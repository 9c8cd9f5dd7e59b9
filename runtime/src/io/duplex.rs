//! In-memory byte pipes: [`duplex`] (two connected ends, like a socket
//! pair) and [`simplex`] (one direction), with a bounded buffer each way.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::io::{ReadHalf, WriteHalf};
use parking_lot::Mutex;

/// One direction: a bounded byte queue and the tasks waiting on it.
#[derive(Debug)]
struct Pipe {
    /// Bytes written and not yet read.
    buf: VecDeque<u8>,
    /// Most bytes `buf` holds; a writer waits for room beyond it.
    max: usize,
    /// The writer is gone or shut down: readers see end of file once
    /// `buf` is empty.
    write_closed: bool,
    /// The reader is gone: writes fail with `BrokenPipe`.
    read_closed: bool,
    /// The reader waiting for bytes.
    read_waker: Option<Waker>,
    /// The writer waiting for room.
    write_waker: Option<Waker>,
}

impl Pipe {
    fn new(max: usize) -> Pipe {
        assert!(max > 0, "a pipe's buffer must hold at least one byte");
        Pipe {
            buf: VecDeque::new(),
            max,
            write_closed: false,
            read_closed: false,
            read_waker: None,
            write_waker: None,
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.buf.is_empty() {
            if self.write_closed {
                return Poll::Ready(Ok(0));
            }
            self.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = dst.len().min(self.buf.len());
        for (d, s) in dst.iter_mut().zip(self.buf.drain(..n)) {
            *d = s;
        }
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        if self.read_closed || self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if src.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = self.max - self.buf.len();
        if room == 0 {
            self.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(src.len());
        self.buf.extend(&src[..n]);
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    /// The writer is done: wake the reader to see end of file.
    fn close_write(&mut self) {
        self.write_closed = true;
        if let Some(w) = self.read_waker.take() {
            w.wake();
        }
    }

    /// The reader is gone: wake the writer to see `BrokenPipe`.
    fn close_read(&mut self) {
        self.read_closed = true;
        self.buf.clear();
        if let Some(w) = self.write_waker.take() {
            w.wake();
        }
    }
}

/// One end of an in-memory bidirectional pipe made by [`duplex`]: what one
/// end writes, the other reads. Dropping (or closing) an end gives the
/// other end's reads end of file and its writes `BrokenPipe`.
#[derive(Debug)]
pub struct DuplexStream {
    /// The direction this end reads.
    read: Arc<Mutex<Pipe>>,
    /// The direction this end writes.
    write: Arc<Mutex<Pipe>>,
}

/// Two connected in-memory streams, each direction buffering at most
/// `max_buf_size` bytes (a writer waits for room beyond that).
///
/// ```
/// use kevent_runtime::io::{duplex, AsyncReadExt, AsyncWriteExt};
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let (mut client, mut server) = duplex(64);
/// client.write_all(b"ping").await?;
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// With `max_buf_size == 0`.
pub fn duplex(max_buf_size: usize) -> (DuplexStream, DuplexStream) {
    let one = Arc::new(Mutex::new(Pipe::new(max_buf_size)));
    let two = Arc::new(Mutex::new(Pipe::new(max_buf_size)));
    (
        DuplexStream {
            read: one.clone(),
            write: two.clone(),
        },
        DuplexStream {
            read: two,
            write: one,
        },
    )
}

impl futures_io::AsyncRead for DuplexStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.read.lock().poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for DuplexStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write.lock().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down this end's writing: the other end reads end of file
    /// after the bytes already written.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.lock().close_write();
        Poll::Ready(Ok(()))
    }
}

impl Drop for DuplexStream {
    fn drop(&mut self) {
        self.write.lock().close_write();
        self.read.lock().close_read();
    }
}

/// A one-way in-memory pipe buffering at most a given number of bytes:
/// what is written to it is read from it. [`simplex`] splits one into a
/// read half and a write half.
#[derive(Debug)]
pub struct SimplexStream {
    /// The bytes in flight.
    pipe: Pipe,
}

impl SimplexStream {
    /// A pipe buffering at most `max_buf_size` bytes, not split.
    ///
    /// # Panics
    ///
    /// With `max_buf_size == 0`.
    pub fn new_unsplit(max_buf_size: usize) -> SimplexStream {
        SimplexStream {
            pipe: Pipe::new(max_buf_size),
        }
    }
}

/// A one-way in-memory pipe as its read half and its write half.
/// Closing the write half gives the reader end of file.
///
/// # Panics
///
/// With `max_buf_size == 0`.
pub fn simplex(max_buf_size: usize) -> (ReadHalf<SimplexStream>, WriteHalf<SimplexStream>) {
    super::split(SimplexStream::new_unsplit(max_buf_size))
}

impl futures_io::AsyncRead for SimplexStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for SimplexStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Ends the stream: the reader sees end of file after the bytes in it.
    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pipe.close_write();
        Poll::Ready(Ok(()))
    }
}
