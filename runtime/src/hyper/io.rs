//! [`Io`]: hyper's `Read` and `Write` for any futures-io stream.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// The most of hyper's buffer one read offers the stream. futures-io reads
/// need initialised memory, so the offered part is zeroed first: a cap
/// keeps that cost bounded when hyper's buffer has grown large, and is
/// above a TLS record's 16 KiB, so a TLS stream still hands over a whole
/// record per read.
const READ_CHUNK: usize = 64 * 1024;

/// hyper's `Read` and `Write` for a futures-io stream (`AsyncRead` +
/// `AsyncWrite`): what hyper-util's `TokioIo` is for tokio's streams.
///
/// kevent's own `TcpStream` and `UnixStream` need no wrapper (they
/// implement hyper's traits and read into hyper's buffer without zeroing
/// it); `Io` is for everything else that speaks futures-io: a TLS stream
/// from futures-rustls or async-native-tls over a kevent socket, a
/// compressed or counted stream, an in-memory pipe.
///
/// ```no_run
/// # async fn serve(tls: futures_util::io::Cursor<Vec<u8>>) {
/// use kevent_runtime::hyper::Io;
/// // `tls` is any `AsyncRead + AsyncWrite + Unpin` stream, for example a
/// // futures-rustls `TlsStream<kevent::net::TcpStream>`.
/// let io = Io::new(tls);
/// # let _: &dyn hyper::rt::Read = &io;
/// // hyper::server::conn::http1::Builder::new().serve_connection(io, service)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Io<T> {
    /// The stream; structurally pinned (see `inner_pin`).
    inner: T,
}

impl<T> Io<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Io<T> {
        Io { inner }
    }

    /// The stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The stream, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The pinned stream.
    fn inner_pin(self: Pin<&mut Self>) -> Pin<&mut T> {
        // SAFETY: `inner` is structurally pinned: `Io` never moves it out
        // of a pinned `Io` (only `into_inner`, by value, and `inner_mut`,
        // on `&mut Io`, which a pinned `!Unpin` `Io` cannot give), has no
        // `Drop` of its own, and is `Unpin` only when `T` is.
        unsafe { self.map_unchecked_mut(|io| &mut io.inner) }
    }
}

impl<T: AsyncRead> hyper::rt::Read for Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the slice is only written here (zeroed, then read into by
        // the stream) and `advance` marks only the bytes the stream
        // reports as read, all of which are initialised.
        let uninit = unsafe { buf.as_mut() };
        let len = uninit.len().min(READ_CHUNK);
        let uninit = &mut uninit[..len];
        uninit.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `uninit` was just initialised (zeroed), and
        // `MaybeUninit<u8>` has the layout of `u8`.
        let dst = unsafe { &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]) };
        let n = ready!(self.inner_pin().poll_read(cx, dst))?;
        assert!(
            n <= len,
            "AsyncRead::poll_read reported more bytes than the buffer holds"
        );
        // SAFETY: the first `n` bytes are initialised (zeroed, then written
        // by the stream).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> hyper::rt::Write for Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner_pin().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner_pin().poll_write_vectored(cx, bufs)
    }

    /// No: futures-io cannot say whether a stream's vectored write is
    /// real, and for the streams `Io` is meant for (TLS) hyper's own
    /// flattening into one buffer makes fewer, fuller records.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner_pin().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner_pin().poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::io::Cursor;
    use std::task::Waker;

    /// Reads through `Io` into a hyper buffer of `cap` bytes.
    fn read_via_hyper<T: AsyncRead + Unpin>(io: &mut Io<T>, cap: usize) -> Vec<u8> {
        let mut storage = vec![MaybeUninit::<u8>::uninit(); cap];
        let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
        let mut cx = Context::from_waker(Waker::noop());
        match hyper::rt::Read::poll_read(Pin::new(io), &mut cx, buf.unfilled()) {
            Poll::Ready(Ok(())) => buf.filled().to_vec(),
            other => panic!("read did not complete: {other:?}"),
        }
    }

    #[test]
    fn reads_what_the_stream_holds_and_marks_only_those_bytes_filled() {
        let mut io = Io::new(Cursor::new(b"hello".to_vec()));
        assert_eq!(read_via_hyper(&mut io, 64), b"hello");
        assert_eq!(read_via_hyper(&mut io, 64), b"", "end of stream");
    }

    #[test]
    fn offers_the_stream_at_most_one_chunk_per_read() {
        let data = vec![7u8; READ_CHUNK + 10];
        let mut io = Io::new(Cursor::new(data));
        assert_eq!(read_via_hyper(&mut io, READ_CHUNK * 2).len(), READ_CHUNK);
        assert_eq!(read_via_hyper(&mut io, READ_CHUNK * 2).len(), 10);
    }

    #[test]
    fn writes_flushes_and_shuts_down_through_to_the_stream() {
        let mut io = Io::new(Cursor::new(Vec::new()));
        let mut cx = Context::from_waker(Waker::noop());
        let n = hyper::rt::Write::poll_write(Pin::new(&mut io), &mut cx, b"abc");
        assert!(matches!(n, Poll::Ready(Ok(3))));
        let bufs = [IoSlice::new(b"de"), IoSlice::new(b"f")];
        let n = hyper::rt::Write::poll_write_vectored(Pin::new(&mut io), &mut cx, &bufs);
        assert!(matches!(n, Poll::Ready(Ok(n)) if n >= 2));
        assert!(hyper::rt::Write::poll_flush(Pin::new(&mut io), &mut cx).is_ready());
        assert!(hyper::rt::Write::poll_shutdown(Pin::new(&mut io), &mut cx).is_ready());
        assert!(io.into_inner().into_inner().starts_with(b"abcde"));
    }
}
