//! What `UdpSocket` and `UnixDatagram` share, written once: registering,
//! sending to and receiving from the connected peer, receiving with the
//! sender's address, readiness, and the descriptor traits.
//!
//! Both are an [`Evented`](crate::net::evented::Evented) mio socket in a
//! field named `io`. Each file keeps what is its own (binding, connecting,
//! `send_to` with its address type, socket options) and invokes
//! [`datagram_socket!`] for the rest.

/// The shared surface of a datagram socket type `$socket` whose field `io`
/// is an `Evented<$mio>`; `$std` is its std counterpart and `$addr` its
/// address type.
macro_rules! datagram_socket {
    ($socket:ident, mio: $mio:ty, std: $std:ty, addr: $addr:ty) => {
        impl $socket {
            /// Registers a nonblocking mio socket.
            #[track_caller]
            fn new(socket: $mio) -> ::std::io::Result<$socket> {
                Ok($socket {
                    io: $crate::net::evented::Evented::new(
                        socket,
                        ::kevent_reactor::Interest::BOTH,
                    )?,
                })
            }

            /// Wraps a std socket, switching it to nonblocking mode.
            ///
            /// # Panics
            ///
            /// Outside a kevent runtime.
            #[track_caller]
            pub fn from_std(socket: $std) -> ::std::io::Result<$socket> {
                socket.set_nonblocking(true)?;
                $socket::new(<$mio>::from_std(socket))
            }

            /// Leaves the runtime and returns the std socket, still in
            /// nonblocking mode.
            pub fn into_std(self) -> ::std::io::Result<$std> {
                Ok(self.io.into_inner().into())
            }

            /// Sends `buf` to the connected peer; returns the bytes sent.
            pub async fn send(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.io
                    .io($crate::driver::slab::Direction::Write, |s| s.send(buf))
                    .await
            }

            /// Polling form of [`send`](Self::send).
            pub fn poll_send(
                &self,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io
                    .poll_io(cx, $crate::driver::slab::Direction::Write, |s| s.send(buf))
            }

            /// Sends to the connected peer without waiting; `WouldBlock` if
            /// the send buffer (or the peer's queue) is full.
            pub fn try_send(&self, buf: &[u8]) -> ::std::io::Result<usize> {
                self.io
                    .try_io($crate::driver::slab::Direction::Write, |s| s.send(buf))
            }

            /// Receives one datagram from the connected peer into `buf`;
            /// bytes past `buf`'s length are discarded.
            pub async fn recv(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.io
                    .io($crate::driver::slab::Direction::Read, |s| s.recv(buf))
                    .await
            }

            /// Polling form of [`recv`](Self::recv) (with a plain slice
            /// where tokio takes a `ReadBuf`).
            pub fn poll_recv(
                &self,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.io
                    .poll_io(cx, $crate::driver::slab::Direction::Read, |s| s.recv(buf))
            }

            /// Receives from the connected peer without waiting;
            /// `WouldBlock` if no datagram is queued.
            pub fn try_recv(&self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                self.io
                    .try_io($crate::driver::slab::Direction::Read, |s| s.recv(buf))
            }

            /// Receives one datagram into `buf` and returns its length and
            /// sender; bytes past `buf`'s length are discarded.
            pub async fn recv_from(&self, buf: &mut [u8]) -> ::std::io::Result<(usize, $addr)> {
                self.io
                    .io($crate::driver::slab::Direction::Read, |s| s.recv_from(buf))
                    .await
            }

            /// Polling form of [`recv_from`](Self::recv_from).
            pub fn poll_recv_from(
                &self,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<(usize, $addr)>> {
                self.io
                    .poll_io(cx, $crate::driver::slab::Direction::Read, |s| {
                        s.recv_from(buf)
                    })
            }

            /// Receives a datagram and its sender without waiting;
            /// `WouldBlock` if none is queued.
            pub fn try_recv_from(&self, buf: &mut [u8]) -> ::std::io::Result<(usize, $addr)> {
                self.io
                    .try_io($crate::driver::slab::Direction::Read, |s| s.recv_from(buf))
            }

            /// Receives one datagram from the connected peer into `buf`'s
            /// spare room (`BufMut::chunk_mut`: for a `Vec`, after its
            /// length; 64 bytes are reserved if it has none), as tokio's
            /// `recv_buf` does; bytes past the room are discarded.
            pub async fn recv_buf<B: ::bytes::BufMut>(
                &self,
                buf: &mut B,
            ) -> ::std::io::Result<usize> {
                self.io
                    .io($crate::driver::slab::Direction::Read, |s| {
                        $crate::net::datagram::into_spare(buf, |dst| s.recv(dst).map(|n| (n, n)))
                    })
                    .await
            }

            /// [`recv_buf`](Self::recv_buf) without waiting; `WouldBlock`
            /// if no datagram is queued.
            pub fn try_recv_buf<B: ::bytes::BufMut>(
                &self,
                buf: &mut B,
            ) -> ::std::io::Result<usize> {
                self.io.try_io($crate::driver::slab::Direction::Read, |s| {
                    $crate::net::datagram::into_spare(buf, |dst| s.recv(dst).map(|n| (n, n)))
                })
            }

            /// [`recv_buf`](Self::recv_buf) with the sender's address.
            pub async fn recv_buf_from<B: ::bytes::BufMut>(
                &self,
                buf: &mut B,
            ) -> ::std::io::Result<(usize, $addr)> {
                self.io
                    .io($crate::driver::slab::Direction::Read, |s| {
                        $crate::net::datagram::into_spare(buf, |dst| {
                            s.recv_from(dst).map(|r| (r.0, r))
                        })
                    })
                    .await
            }

            /// [`recv_buf_from`](Self::recv_buf_from) without waiting;
            /// `WouldBlock` if no datagram is queued.
            pub fn try_recv_buf_from<B: ::bytes::BufMut>(
                &self,
                buf: &mut B,
            ) -> ::std::io::Result<(usize, $addr)> {
                self.io.try_io($crate::driver::slab::Direction::Read, |s| {
                    $crate::net::datagram::into_spare(buf, |dst| s.recv_from(dst).map(|r| (r.0, r)))
                })
            }

            /// Waits until a datagram may be queued; the readiness may be
            /// spurious.
            pub async fn readable(&self) -> ::std::io::Result<()> {
                self.io
                    .ready_dir($crate::driver::slab::Direction::Read)
                    .await
            }

            /// Waits until the socket may take a datagram.
            pub async fn writable(&self) -> ::std::io::Result<()> {
                self.io
                    .ready_dir($crate::driver::slab::Direction::Write)
                    .await
            }

            /// Waits until any direction in `interest` may be ready.
            pub async fn ready(
                &self,
                interest: ::kevent_reactor::Interest,
            ) -> ::std::io::Result<::kevent_reactor::Ready> {
                self.io.ready(interest).await
            }

            /// Polls for receive readiness. Every task that polled while it
            /// was not ready is woken by the next readiness, not only the
            /// last one.
            pub fn poll_recv_ready(
                &self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                self.io
                    .poll_ready_dir(cx, $crate::driver::slab::Direction::Read)
            }

            /// Polls for send readiness. Every task that polled while it was
            /// not ready is woken by the next readiness, not only the last
            /// one.
            pub fn poll_send_ready(
                &self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                self.io
                    .poll_ready_dir(cx, $crate::driver::slab::Direction::Write)
            }

            /// Runs a custom nonblocking operation `f` if the socket looks
            /// ready for `interest` (`READABLE` or `WRITABLE`).
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
                async move { self.io.io(dir, |_| f()).await }
            }

            /// The local address.
            pub fn local_addr(&self) -> ::std::io::Result<$addr> {
                self.io.get_ref().local_addr()
            }

            /// The connected peer's address (`NotConnected` if there is
            /// none).
            pub fn peer_addr(&self) -> ::std::io::Result<$addr> {
                self.io.get_ref().peer_addr()
            }

            /// Takes the pending socket error (`SO_ERROR`), if any.
            pub fn take_error(&self) -> ::std::io::Result<Option<::std::io::Error>> {
                self.io.get_ref().take_error()
            }
        }

        impl TryFrom<$std> for $socket {
            type Error = ::std::io::Error;

            #[doc = concat!("[`", stringify!($socket), "::from_std`].")]
            fn try_from(socket: $std) -> ::std::io::Result<$socket> {
                $socket::from_std(socket)
            }
        }

        impl ::std::os::fd::AsRawFd for $socket {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.io.get_ref().as_raw_fd()
            }
        }

        impl ::std::os::fd::AsFd for $socket {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                self.io.get_ref().as_fd()
            }
        }

        impl ::std::fmt::Debug for $socket {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                use ::std::os::fd::AsRawFd;
                f.debug_struct(stringify!($socket))
                    .field("local", &self.local_addr().ok())
                    .field("fd", &self.as_raw_fd())
                    .finish()
            }
        }
    };
}

pub(crate) use datagram_socket;

/// Runs `recv` on `buf`'s next chunk of spare room (for a full `Vec`,
/// `BufMut::chunk_mut` reserves 64 bytes first) and advances `buf` over
/// the `n` bytes it reports, where `recv` returns `(n, result)`.
///
/// The chunk is zeroed first: `recv` takes an initialised slice.
pub(crate) fn into_spare<B: bytes::BufMut + ?Sized, R>(
    buf: &mut B,
    recv: impl FnOnce(&mut [u8]) -> std::io::Result<(usize, R)>,
) -> std::io::Result<R> {
    let chunk = buf.chunk_mut();
    let room = chunk.len();
    let ptr = chunk.as_mut_ptr();
    // SAFETY: `chunk_mut` hands out `room` writable bytes at `ptr`; zeroed,
    // they are initialised, so a `&mut [u8]` over them is sound while
    // `buf` is not touched.
    let dst = unsafe {
        std::ptr::write_bytes(ptr, 0, room);
        std::slice::from_raw_parts_mut(ptr, room)
    };
    let res = recv(dst);
    if let Ok((n, _)) = &res {
        let n = (*n).min(room);
        // SAFETY: the first `n <= room` bytes of the chunk are initialised
        // (zeroed, then written by `recv`).
        unsafe { buf.advance_mut(n) };
    }
    res.map(|(_, r)| r)
}
