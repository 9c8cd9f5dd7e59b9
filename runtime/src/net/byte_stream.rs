//! What `TcpStream` and `UnixStream` share, written once: the readiness
//! and `try_*` surface, the I/O traits, the halves they split into, and
//! their bytes' way into the reactor (an `Evented` stream's reads and
//! writes, handed to the `StreamIo` its backend gave it with the
//! registration as its readiness).
//!
//! Both are an [`Evented`](crate::net::evented::Evented) mio stream in a
//! field named `io`, with a `new` that registers a mio stream. Each file
//! keeps what is its own (connecting, socket options, `peek` for TCP) and
//! invokes these macros for the rest, so the two types cannot drift apart.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use kevent_reactor::Interest;

use crate::net::evented::Evented;

/// An initialised buffer as the `MaybeUninit` slice a read fills.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: same layout, and a read only ever writes initialised bytes
    // into it, so the caller's slice stays initialised.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// A byte stream's reads and writes, through its
/// [`StreamIo`](kevent_reactor::StreamIo).
impl<S: AsRawFd> Evented<S> {
    /// `AsyncRead::poll_read`.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.bytes.poll_read(cx, &*self.reg, as_uninit(buf), false)
    }

    /// `AsyncRead::poll_read` into a buffer that is only written (hyper's).
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.bytes.poll_read(cx, &*self.reg, dst, false)
    }

    /// Reads without removing the bytes from the stream.
    pub(crate) fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.bytes.poll_read(cx, &*self.reg, as_uninit(buf), true)
    }

    /// `AsyncRead::poll_read_vectored`.
    pub(crate) fn poll_read_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.bytes.poll_read_vectored(cx, &*self.reg, bufs)
    }

    /// `AsyncWrite::poll_write`.
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.bytes.poll_write(cx, &*self.reg, buf)
    }

    /// `AsyncWrite::poll_write_vectored`.
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.bytes.poll_write_vectored(cx, &*self.reg, bufs)
    }

    /// Reads now if the stream looks readable; `WouldBlock` otherwise.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.bytes.try_read(&*self.reg, as_uninit(buf))
    }

    /// Vectored [`Evented::try_read`].
    pub(crate) fn try_read_vectored(&self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.bytes.try_read_vectored(&*self.reg, bufs)
    }

    /// Writes now if the stream looks writable; `WouldBlock` otherwise.
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.try_write(&*self.reg, buf)
    }

    /// Vectored [`Evented::try_write`].
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.bytes.try_write_vectored(&*self.reg, bufs)
    }

    /// `AsyncWrite::poll_flush`.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bytes.poll_flush(cx)
    }

    /// hyper's flush: reports a failed send, does not wait for those in
    /// flight (`StreamIo::flush_behind`).
    #[cfg(feature = "hyper")]
    pub(crate) fn flush_behind(&self) -> io::Result<()> {
        self.bytes.flush_behind()
    }

    /// Shuts down part of the connection (the write side after the bytes
    /// still queued in the ring).
    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.bytes.shutdown(how)
    }

    /// Fails if using the socket itself for `interest` (`try_io`,
    /// `async_io`, `into_std`) could lose or reorder bytes that went
    /// through the ring.
    pub(crate) fn check_raw(&self, interest: Interest) -> io::Result<()> {
        self.bytes.check_raw(interest)
    }
}

/// The shared surface of a byte stream type `$stream` whose field `io` is
/// an `Evented<$mio>`; `$std` is its std counterpart and `$addr` its
/// address type.
macro_rules! byte_stream {
    ($stream:ident, mio: $mio:ty, std: $std:ty, addr: $addr:ty) => {
        impl $stream {
            /// Wraps a connected std stream, switching it to nonblocking mode.
            ///
            /// # Panics
            ///
            /// Outside a kevent runtime.
            #[track_caller]
            pub fn from_std(stream: $std) -> ::std::io::Result<$stream> {
                stream.set_nonblocking(true)?;
                $stream::new(<$mio>::from_std(stream))
            }

            /// Leaves the runtime and returns the std stream, still in
            /// nonblocking mode (call `set_nonblocking(false)` to block on it).
            pub fn into_std(self) -> ::std::io::Result<$std> {
                // Bytes already received through the ring are not in the
                // socket, and bytes written may still be on their way
                // through it.
                self.io.check_raw(::kevent_reactor::Interest::BOTH)?;
                Ok(self.io.into_inner().into())
            }

            /// The local address of this end.
            pub fn local_addr(&self) -> ::std::io::Result<$addr> {
                self.io.get_ref().local_addr()
            }

            /// The remote peer's address.
            pub fn peer_addr(&self) -> ::std::io::Result<$addr> {
                self.io.get_ref().peer_addr()
            }

            /// Takes the pending socket error (`SO_ERROR`), if any.
            pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
                self.io.get_ref().take_error()
            }

            /// Waits until the stream may be readable (data, end of file or
            /// an error), then [`try_read`](Self::try_read) can be called.
            /// The readiness may be spurious: `try_read` can still return
            /// `WouldBlock`.
            pub async fn readable(&self) -> ::std::io::Result<()> {
                self.io
                    .ready_dir($crate::driver::slab::Direction::Read)
                    .await
            }

            /// Waits until the stream may be writable, then
            /// [`try_write`](Self::try_write) can be called.
            pub async fn writable(&self) -> ::std::io::Result<()> {
                self.io
                    .ready_dir($crate::driver::slab::Direction::Write)
                    .await
            }

            /// Waits until any direction in `interest` may be ready and
            /// returns the readiness seen.
            pub async fn ready(
                &self,
                interest: ::kevent_reactor::Interest,
            ) -> ::std::io::Result<::kevent_reactor::Ready> {
                self.io.ready(interest).await
            }

            /// Polls for read readiness. Every task that polled while it was
            /// not ready is woken by the next readiness, not only the last
            /// one.
            pub fn poll_read_ready(
                &self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                self.io
                    .poll_ready_dir(cx, $crate::driver::slab::Direction::Read)
            }

            /// Polls for write readiness. Every task that polled while it
            /// was not ready is woken by the next readiness, not only the
            /// last one.
            pub fn poll_write_ready(
                &self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                self.io
                    .poll_ready_dir(cx, $crate::driver::slab::Direction::Write)
            }

            /// Reads what is available without waiting: `Ok(0)` is end of
            /// file, `WouldBlock` means nothing is available yet.
            pub fn try_read(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.io.try_read(buf)
            }

            /// Vectored [`try_read`](Self::try_read).
            pub fn try_read_vectored(
                &self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.io.try_read_vectored(bufs)
            }

            /// [`try_read`](Self::try_read) into `buf`'s spare room
            /// (`BufMut::chunk_mut`: for a `Vec`, after its length; 64
            /// bytes are reserved if it has none), as tokio's
            /// `try_read_buf` does.
            pub fn try_read_buf<B: ::bytes::BufMut>(&self, buf: &mut B) -> ::std::io::Result<usize> {
                $crate::net::datagram::into_spare(buf, |dst| self.io.try_read(dst).map(|n| (n, n)))
            }

            /// Writes what the send buffer takes without waiting;
            /// `WouldBlock` when it is full.
            pub fn try_write(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.io.try_write(buf)
            }

            /// Vectored [`try_write`](Self::try_write).
            pub fn try_write_vectored(
                &self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.io.try_write_vectored(bufs)
            }

            /// Runs a custom nonblocking operation `f` on the socket if it
            /// looks ready for `interest` (`READABLE` or `WRITABLE`); a
            /// `WouldBlock` from `f` clears that readiness.
            ///
            /// # Panics
            ///
            /// With `Interest::BOTH`: pass one direction.
            #[track_caller]
            pub fn try_io<R>(
                &self,
                interest: ::kevent_reactor::Interest,
                f: impl FnOnce() -> ::std::io::Result<R>,
            ) -> ::std::io::Result<R> {
                self.check_raw(interest)?;
                self.io
                    .try_io($crate::net::evented::direction(interest), |_| f())
            }

            /// Waits for `interest` and runs `f` until it does not return
            /// `WouldBlock`.
            ///
            /// # Panics
            ///
            /// With `Interest::BOTH`: pass one direction.
            #[track_caller]
            pub fn async_io<'a, R: 'a>(
                &'a self,
                interest: ::kevent_reactor::Interest,
                mut f: impl FnMut() -> ::std::io::Result<R> + 'a,
            ) -> impl ::std::future::Future<Output = ::std::io::Result<R>> + 'a {
                // The direction is checked now, so that misuse panics at the call.
                let dir = $crate::net::evented::direction(interest);
                async move {
                    self.check_raw(interest)?;
                    self.io.io(dir, |_| f()).await
                }
            }

            /// Fails if using the socket itself for `interest` could lose or
            /// reorder bytes that went through the ring.
            fn check_raw(&self, interest: ::kevent_reactor::Interest) -> ::std::io::Result<()> {
                self.io.check_raw(interest)
            }

            /// Splits into a read half and a write half borrowing the
            /// stream, for reading and writing concurrently within one task.
            pub fn split(&mut self) -> (super::ReadHalf<'_>, super::WriteHalf<'_>) {
                super::split::new(self)
            }

            /// Splits into owned halves that can move to different tasks.
            /// Dropping the write half shuts down the write side;
            /// [`reunite`](super::OwnedReadHalf::reunite) puts the stream
            /// back together.
            pub fn into_split(self) -> (super::OwnedReadHalf, super::OwnedWriteHalf) {
                super::split_owned::new(::std::sync::Arc::new(self))
            }

            /// Shuts down part of the connection. The write side waits for
            /// bytes still queued in the ring.
            pub(crate) fn shutdown_std(&self, how: ::std::net::Shutdown) -> ::std::io::Result<()> {
                self.io.shutdown(how)
            }

            /// The registered socket (for the hyper integration).
            #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
            pub(crate) fn evented(&self) -> &$crate::net::evented::Evented<$mio> {
                &self.io
            }
        }

        $crate::net::byte_stream::byte_stream!(@io $stream);
        $crate::net::byte_stream::byte_stream!(@io &$stream);
        $crate::net::byte_stream::tokio_io!(@read $stream);
        $crate::net::byte_stream::tokio_io!(@write $stream);
        $crate::net::byte_stream::tokio_io!(@read &$stream);
        $crate::net::byte_stream::tokio_io!(@write &$stream);

        impl TryFrom<$std> for $stream {
            type Error = ::std::io::Error;

            #[doc = concat!("[`", stringify!($stream), "::from_std`].")]
            fn try_from(stream: $std) -> ::std::io::Result<$stream> {
                $stream::from_std(stream)
            }
        }

        impl ::std::os::fd::AsRawFd for $stream {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.io.get_ref().as_raw_fd()
            }
        }

        impl ::std::os::fd::AsFd for $stream {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }

        impl ::std::fmt::Debug for $stream {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                use ::std::os::fd::AsRawFd;
                f.debug_struct(stringify!($stream))
                    .field("local", &self.local_addr().ok())
                    .field("peer", &self.peer_addr().ok())
                    .field("fd", &self.as_raw_fd())
                    .finish()
            }
        }
    };
    // `AsyncRead` and `AsyncWrite` for the stream, and for a shared
    // reference to it (reads and writes take `&self` underneath).
    (@io $ty:ty) => {
        impl ::futures_io::AsyncRead for $ty {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io.poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io.poll_read_vectored(cx, bufs)
            }
        }

        impl ::futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                // Bytes written through the ring are sent when this returns.
                self.io.poll_flush(cx)
            }

            fn poll_close(
                self: ::std::pin::Pin<&mut Self>,
                _: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::task::Poll::Ready(self.shutdown_std(::std::net::Shutdown::Write))
            }
        }
    };
}

/// `ReadHalf` and `WriteHalf`: a byte stream `$stream` split into two
/// borrowing halves (`$stream::split`); `$addr` is its address type.
macro_rules! borrowed_halves {
    ($stream:ident, addr: $addr:ty) => {
        #[doc = concat!(
            "The read half of a [`", stringify!($stream), "`], from [`",
            stringify!($stream), "::split`]."
        )]
        #[derive(Debug)]
        pub struct ReadHalf<'a>(
            /// The stream.
            &'a $stream,
        );

        #[doc = concat!(
            "The write half of a [`", stringify!($stream), "`], from [`",
            stringify!($stream), "::split`]. Closing it shuts down the stream's write side."
        )]
        #[derive(Debug)]
        pub struct WriteHalf<'a>(
            /// The stream.
            &'a $stream,
        );

        pub(super) fn new(stream: &mut $stream) -> (ReadHalf<'_>, WriteHalf<'_>) {
            (ReadHalf(stream), WriteHalf(stream))
        }

        $crate::net::byte_stream::borrowed_halves!(@common ReadHalf<'_>, $stream, $addr, 0);
        $crate::net::byte_stream::borrowed_halves!(@common WriteHalf<'_>, $stream, $addr, 0);
        $crate::net::byte_stream::borrowed_halves!(@read ReadHalf<'_>, $stream, 0);
        $crate::net::byte_stream::borrowed_halves!(@write WriteHalf<'_>, $stream, 0);

        impl ::futures_io::AsyncRead for ReadHalf<'_> {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_read_vectored(cx, bufs)
            }
        }

        impl ::futures_io::AsyncWrite for WriteHalf<'_> {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
            }

            fn poll_close(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.get_mut().0).poll_close(cx)
            }
        }

        $crate::net::byte_stream::tokio_io!(@read ReadHalf<'_>);
        $crate::net::byte_stream::tokio_io!(@write WriteHalf<'_>);

        impl AsRef<$stream> for ReadHalf<'_> {
            fn as_ref(&self) -> &$stream {
                self.0
            }
        }

        impl AsRef<$stream> for WriteHalf<'_> {
            fn as_ref(&self) -> &$stream {
                self.0
            }
        }
    };
    // What both halves of either kind offer: readiness and addresses.
    // `$field` names the half's reference to the stream.
    (@common $half:ty, $stream:ident, $addr:ty, $field:tt) => {
        impl $half {
            #[doc = concat!("See [`", stringify!($stream), "::ready`].")]
            pub async fn ready(
                &self,
                interest: ::kevent_reactor::Interest,
            ) -> ::std::io::Result<::kevent_reactor::Ready> {
                self.$field.ready(interest).await
            }

            #[doc = concat!("See [`", stringify!($stream), "::peer_addr`].")]
            pub fn peer_addr(&self) -> ::std::io::Result<$addr> {
                self.$field.peer_addr()
            }

            #[doc = concat!("See [`", stringify!($stream), "::local_addr`].")]
            pub fn local_addr(&self) -> ::std::io::Result<$addr> {
                self.$field.local_addr()
            }
        }
    };
    // The read half's own methods.
    (@read $half:ty, $stream:ident, $field:tt) => {
        impl $half {
            #[doc = concat!("See [`", stringify!($stream), "::readable`].")]
            pub async fn readable(&self) -> ::std::io::Result<()> {
                self.$field.readable().await
            }

            #[doc = concat!("See [`", stringify!($stream), "::try_read`].")]
            pub fn try_read(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.$field.try_read(buf)
            }

            #[doc = concat!("See [`", stringify!($stream), "::try_read_vectored`].")]
            pub fn try_read_vectored(
                &self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                self.$field.try_read_vectored(bufs)
            }

            #[doc = concat!("See [`", stringify!($stream), "::try_read_buf`].")]
            pub fn try_read_buf<B: ::bytes::BufMut>(&self, buf: &mut B) -> ::std::io::Result<usize> {
                self.$field.try_read_buf(buf)
            }
        }
    };
    // The write half's own methods.
    (@write $half:ty, $stream:ident, $field:tt) => {
        impl $half {
            #[doc = concat!("See [`", stringify!($stream), "::writable`].")]
            pub async fn writable(&self) -> ::std::io::Result<()> {
                self.$field.writable().await
            }

            #[doc = concat!("See [`", stringify!($stream), "::try_write`].")]
            pub fn try_write(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.$field.try_write(buf)
            }

            #[doc = concat!("See [`", stringify!($stream), "::try_write_vectored`].")]
            pub fn try_write_vectored(
                &self,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::io::Result<usize> {
                self.$field.try_write_vectored(bufs)
            }
        }
    };
}

/// `OwnedReadHalf`, `OwnedWriteHalf` and `ReuniteError`: a byte stream
/// `$stream` split into two halves sharing it through an `Arc`
/// (`$stream::into_split`); `$addr` is its address type.
macro_rules! owned_halves {
    ($stream:ident, addr: $addr:ty) => {
        #[doc = concat!(
            "The read half of a [`", stringify!($stream), "`], from [`",
            stringify!($stream), "::into_split`]."
        )]
        #[derive(Debug)]
        pub struct OwnedReadHalf {
            /// The stream, shared with the write half.
            inner: ::std::sync::Arc<$stream>,
        }

        #[doc = concat!(
            "The write half of a [`", stringify!($stream), "`], from [`",
            stringify!($stream), "::into_split`].\n",
            "Dropping (or closing) it shuts down the stream's write side, so the peer ",
            "reads end of file; [`forget`](OwnedWriteHalf::forget) drops it without that."
        )]
        #[derive(Debug)]
        pub struct OwnedWriteHalf {
            /// The stream, shared with the read half.
            inner: ::std::sync::Arc<$stream>,
            /// Whether dropping this half shuts down the write side (cleared
            /// once it has been shut down, or by `forget`).
            shutdown_on_drop: bool,
        }

        /// The two halves passed to [`OwnedReadHalf::reunite`] came from
        /// different streams; they are handed back unchanged.
        #[derive(Debug)]
        pub struct ReuniteError(
            /// The read half passed in.
            pub OwnedReadHalf,
            /// The write half passed in.
            pub OwnedWriteHalf,
        );

        impl ::std::fmt::Display for ReuniteError {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(
                    "tried to reunite halves that are not from the same ",
                    stringify!($stream)
                ))
            }
        }

        impl ::std::error::Error for ReuniteError {}

        pub(super) fn new(
            stream: ::std::sync::Arc<$stream>,
        ) -> (OwnedReadHalf, OwnedWriteHalf) {
            (
                OwnedReadHalf {
                    inner: stream.clone(),
                },
                OwnedWriteHalf {
                    inner: stream,
                    shutdown_on_drop: true,
                },
            )
        }

        fn reunite(
            read: OwnedReadHalf,
            write: OwnedWriteHalf,
        ) -> Result<$stream, ReuniteError> {
            if !::std::sync::Arc::ptr_eq(&read.inner, &write.inner) {
                return Err(ReuniteError(read, write));
            }
            write.forget();
            // The halves held the only two references, and `forget`
            // dropped one.
            Ok(::std::sync::Arc::try_unwrap(read.inner).expect(concat!(
                "a ",
                stringify!($stream),
                "'s halves hold the only references to it"
            )))
        }

        impl OwnedReadHalf {
            /// Puts the stream back together with its write half; fails,
            /// returning both halves, if `other` came from another stream.
            pub fn reunite(self, other: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
                reunite(self, other)
            }
        }

        impl OwnedWriteHalf {
            /// Puts the stream back together with its read half; fails,
            /// returning both halves, if `other` came from another stream.
            pub fn reunite(self, other: OwnedReadHalf) -> Result<$stream, ReuniteError> {
                reunite(other, self)
            }

            /// Drops this half without shutting down the write side.
            pub fn forget(mut self) {
                self.shutdown_on_drop = false;
            }
        }

        $crate::net::byte_stream::borrowed_halves!(@common OwnedReadHalf, $stream, $addr, inner);
        $crate::net::byte_stream::borrowed_halves!(@common OwnedWriteHalf, $stream, $addr, inner);
        $crate::net::byte_stream::borrowed_halves!(@read OwnedReadHalf, $stream, inner);
        $crate::net::byte_stream::borrowed_halves!(@write OwnedWriteHalf, $stream, inner);

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                if self.shutdown_on_drop {
                    let _ = self.inner.shutdown_std(::std::net::Shutdown::Write);
                }
            }
        }

        impl ::futures_io::AsyncRead for OwnedReadHalf {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self.inner).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self.inner).poll_read_vectored(cx, bufs)
            }
        }

        impl ::futures_io::AsyncWrite for OwnedWriteHalf {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self.inner).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut &*self.inner).poll_flush(cx)
            }

            fn poll_close(
                self: ::std::pin::Pin<&mut Self>,
                _: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                let this = self.get_mut();
                let res = this.inner.shutdown_std(::std::net::Shutdown::Write);
                if res.is_ok() {
                    this.shutdown_on_drop = false;
                }
                ::std::task::Poll::Ready(res)
            }
        }

        $crate::net::byte_stream::tokio_io!(@read OwnedReadHalf);
        $crate::net::byte_stream::tokio_io!(@write OwnedWriteHalf);

        impl AsRef<$stream> for OwnedReadHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }

        impl AsRef<$stream> for OwnedWriteHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }
    };
}

/// tokio's `AsyncRead` (`@read`) or `AsyncWrite` (`@write`) for `$ty`, in
/// terms of its futures-io impl (feature `tokio-compat`), so tokio-rustls,
/// tokio-util's codecs and `axum::serve` take kevent's streams directly.
/// Reads zero the part of tokio's buffer not yet initialised (once per
/// buffer, tracked by `ReadBuf`); writes, vectored writes, flush and
/// shutdown go straight through.
macro_rules! tokio_io {
    (@read $ty:ty) => {
        #[cfg(feature = "tokio-compat")]
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                let dst = buf.initialize_unfilled();
                let n = ::std::task::ready!(::futures_io::AsyncRead::poll_read(self, cx, dst))?;
                buf.advance(n);
                ::std::task::Poll::Ready(Ok(()))
            }
        }
    };
    (@write $ty:ty) => {
        #[cfg(feature = "tokio-compat")]
        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::futures_io::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::futures_io::AsyncWrite::poll_flush(self, cx)
            }

            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::futures_io::AsyncWrite::poll_close(self, cx)
            }
        }
    };
}

pub(crate) use {borrowed_halves, byte_stream, owned_halves, tokio_io};
