//! The process's standard streams as async streams (tokio's `stdin()`,
//! `stdout()`, `stderr()`).
//!
//! Standard streams may be terminals or files shared with other processes:
//! switching them to nonblocking mode would change them for everyone, and
//! files are always "ready". So, as tokio does, each read or write runs on
//! the blocking pool, one at a time per handle, through a buffer the handle
//! owns. A write returns once its bytes are copied into that buffer; its
//! result (an error such as `BrokenPipe`) comes with the next write or
//! flush.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::task::JoinHandle;

/// Most bytes one blocking read or write moves.
const MAX_BUF: usize = 64 * 1024;

/// What the last blocking job did.
#[derive(Debug)]
enum Done {
    /// A read of this many bytes (0: end of file) into the buffer.
    Read(io::Result<usize>),
    /// A write of the whole buffer.
    Write(io::Result<()>),
    /// A flush.
    Flush(io::Result<()>),
}

/// A buffer and the bytes of it not yet handed to the caller.
#[derive(Debug, Default)]
struct Buf {
    /// The bytes.
    bytes: Vec<u8>,
    /// Where the unread part of `bytes` starts.
    pos: usize,
}

/// Who holds the stream and buffer: this handle, or a job on the pool.
#[derive(Debug)]
enum State<T> {
    /// Here (`None` only while changing state).
    Idle(Option<(T, Buf)>),
    /// A blocking job, which hands them back when done.
    Busy(JoinHandle<(Done, Buf, T)>),
}

/// A blocking std stream driven from async code through the blocking pool.
#[derive(Debug)]
struct Blocking<T> {
    /// The stream's whereabouts.
    state: State<T>,
    /// Opens the stream again, should a job be lost with it.
    open: fn() -> T,
}

impl<T: Send + 'static> Blocking<T> {
    fn new(open: fn() -> T) -> Blocking<T> {
        Blocking {
            state: State::Idle(Some((open(), Buf::default()))),
            open,
        }
    }

    /// Waits for the job in flight, if any, and returns its outcome.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Done>> {
        if let State::Busy(job) = &mut self.state {
            let done = match ready!(Pin::new(job).poll(cx)) {
                Ok((done, buf, io)) => {
                    self.state = State::Idle(Some((io, buf)));
                    done
                }
                // The job panicked or was cancelled (runtime shutdown), and
                // took the handle with it: open a new one.
                Err(e) => {
                    self.state = State::Idle(Some(((self.open)(), Buf::default())));
                    Done::Flush(Err(io::Error::other(format!(
                        "a standard stream's blocking job failed: {e}"
                    ))))
                }
            };
            return Poll::Ready(Some(done));
        }
        Poll::Ready(None)
    }

    fn start(&mut self, job: impl FnOnce(&mut T, &mut Buf) -> Done + Send + 'static) {
        let State::Idle(idle) = &mut self.state else {
            unreachable!("a job starts only when idle")
        };
        let (mut io, mut buf) = idle.take().expect("an idle stream is here");
        self.state = State::Busy(crate::task::spawn_blocking(move || {
            let done = job(&mut io, &mut buf);
            (done, buf, io)
        }));
    }

    fn idle_buf(&mut self) -> &mut Buf {
        match &mut self.state {
            State::Idle(Some((_, buf))) => buf,
            _ => unreachable!("called when idle"),
        }
    }
}

impl<T: Read + Send + 'static> Blocking<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match ready!(self.poll_idle(cx)) {
                Some(Done::Read(Ok(0))) => return Poll::Ready(Ok(0)),
                Some(Done::Read(Err(e)) | Done::Write(Err(e)) | Done::Flush(Err(e))) => {
                    return Poll::Ready(Err(e))
                }
                _ => {}
            }
            let buf = self.idle_buf();
            if buf.pos < buf.bytes.len() {
                let n = dst.len().min(buf.bytes.len() - buf.pos);
                dst[..n].copy_from_slice(&buf.bytes[buf.pos..buf.pos + n]);
                buf.pos += n;
                return Poll::Ready(Ok(n));
            }
            if dst.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let want = dst.len().min(MAX_BUF);
            self.start(move |io, buf| {
                buf.bytes.resize(want, 0);
                buf.pos = 0;
                let res = io.read(&mut buf.bytes);
                buf.bytes.truncate(*res.as_ref().unwrap_or(&0));
                Done::Read(res)
            });
        }
    }
}

impl<T: Write + Send + 'static> Blocking<T> {
    fn poll_write(&mut self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        if let Some(Done::Write(Err(e)) | Done::Flush(Err(e))) = ready!(self.poll_idle(cx)) {
            return Poll::Ready(Err(e));
        }
        let n = src.len().min(MAX_BUF);
        let buf = self.idle_buf();
        buf.bytes.clear();
        buf.bytes.extend_from_slice(&src[..n]);
        self.start(|io, buf| Done::Write(io.write_all(&buf.bytes)));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match ready!(self.poll_idle(cx)) {
                Some(Done::Write(Err(e))) => return Poll::Ready(Err(e)),
                Some(Done::Flush(res)) => return Poll::Ready(res),
                _ => self.start(|io, _| Done::Flush(io.flush())),
            }
        }
    }
}

/// The process's standard input (tokio's `Stdin`), read on the blocking
/// pool. A read in flight cannot be cancelled: dropping the handle leaves
/// it to finish on its thread.
#[derive(Debug)]
pub struct Stdin {
    /// The stream, here or on the pool.
    inner: Blocking<io::Stdin>,
}

/// The process's standard output (tokio's `Stdout`). Flush it before the
/// runtime ends to be sure every byte was written.
#[derive(Debug)]
pub struct Stdout {
    /// The stream, here or on the pool.
    inner: Blocking<io::Stdout>,
}

/// The process's standard error (tokio's `Stderr`).
#[derive(Debug)]
pub struct Stderr {
    /// The stream, here or on the pool.
    inner: Blocking<io::Stderr>,
}

/// A handle to the process's standard input. Reads need a kevent runtime.
pub fn stdin() -> Stdin {
    Stdin {
        inner: Blocking::new(io::stdin),
    }
}

/// A handle to the process's standard output. Writes need a kevent runtime.
pub fn stdout() -> Stdout {
    Stdout {
        inner: Blocking::new(io::stdout),
    }
}

/// A handle to the process's standard error. Writes need a kevent runtime.
pub fn stderr() -> Stderr {
    Stderr {
        inner: Blocking::new(io::stderr),
    }
}

impl futures_io::AsyncRead for Stdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_read(cx, buf)
    }
}

macro_rules! async_write {
    ($name:ident) => {
        impl futures_io::AsyncWrite for $name {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.poll_flush(cx)
            }

            /// Flushes: a standard stream stays open.
            fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.inner.poll_flush(cx)
            }
        }
    };
}

async_write!(Stdout);
async_write!(Stderr);
