//! [`copy_bidirectional`]: a proxy's inner loop, both directions at once.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// Default buffer per direction.
const DEFAULT_BUF: usize = 8 * 1024;

/// One direction's progress.
#[derive(Debug)]
struct Transfer {
    /// Bytes read and not yet written are `buf[pos..end]`.
    buf: Box<[u8]>,
    /// Start of the bytes not yet written.
    pos: usize,
    /// End of the bytes read.
    end: usize,
    /// The reader reached end of file.
    eof: bool,
    /// Bytes written since the last flush.
    unflushed: bool,
    /// Bytes moved in all.
    total: u64,
    /// Done: end of file seen, everything written, the writer shut down.
    done: bool,
}

impl Transfer {
    fn new(size: usize) -> Transfer {
        Transfer {
            buf: vec![0; size.max(1)].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            unflushed: false,
            total: 0,
            done: false,
        }
    }

    /// Moves bytes from `r` to `w` until `r` ends (then shuts `w` down), or
    /// neither can make progress.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(self.total));
        }
        loop {
            if self.pos == self.end && !self.eof {
                match r.as_mut().poll_read(cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => self.eof = true,
                    Poll::Ready(Ok(n)) => {
                        self.pos = 0;
                        self.end = n;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Nothing more for now: push out what was written
                        // so the peer is not left waiting on a buffer.
                        if self.unflushed {
                            ready!(w.as_mut().poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.end {
                let n = ready!(w.as_mut().poll_write(cx, &self.buf[self.pos..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the writer took no bytes",
                    )));
                }
                self.pos += n;
                self.total += n as u64;
                self.unflushed = true;
            }
            if self.eof {
                ready!(w.as_mut().poll_flush(cx))?;
                ready!(w.as_mut().poll_close(cx))?;
                self.done = true;
                return Poll::Ready(Ok(self.total));
            }
        }
    }
}

/// Copies `a`'s bytes to `b` and `b`'s to `a` at the same time until both
/// reach end of file, shutting down each writer after its reader's end of
/// file; returns the bytes moved `(a to b, b to a)`. The first error ends
/// it (bytes already moved are not reported then).
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    copy_bidirectional_with_sizes(a, b, DEFAULT_BUF, DEFAULT_BUF).await
}

/// [`copy_bidirectional`] with the buffer size of each direction.
pub async fn copy_bidirectional_with_sizes<A, B>(
    a: &mut A,
    b: &mut B,
    a_to_b_size: usize,
    b_to_a_size: usize,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Transfer::new(a_to_b_size);
    let mut b_to_a = Transfer::new(b_to_a_size);
    poll_fn(|cx| {
        let ab = a_to_b.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b))?;
        let ba = b_to_a.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a))?;
        match (ab, ba) {
            (Poll::Ready(ab), Poll::Ready(ba)) => Poll::Ready(Ok((ab, ba))),
            _ => Poll::Pending,
        }
    })
    .await
}
