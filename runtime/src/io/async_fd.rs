//! [`AsyncFd`]: the readiness of any file descriptor, from the ring.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::task::{ready, Context, Poll};

use kevent_reactor::{Interest, Ready};

use crate::driver::slab::{Direction, ReadyEvent};
use crate::driver::Registration;

/// A file descriptor's readiness (tokio's `AsyncFd`): wraps an object that
/// owns an fd, registers the fd with the runtime's ring, and tells when it
/// may be read or written. The fd should be in nonblocking mode; the
/// caller does the I/O itself, and reports `WouldBlock` by clearing the
/// readiness ([`AsyncFdReadyGuard::clear_ready`], or through
/// [`try_io`](AsyncFdReadyGuard::try_io)).
///
/// ```
/// use std::io::Read;
/// use kevent_runtime::io::unix::AsyncFd;
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// let fd = AsyncFd::new(a)?;
/// std::io::Write::write_all(&mut &b, b"hi")?;
/// let mut buf = [0; 2];
/// loop {
///     let mut guard = fd.readable().await?;
///     match guard.try_io(|fd| fd.get_ref().read(&mut buf)) {
///         Ok(n) => break assert_eq!(n?, 2),
///         Err(_would_block) => continue,
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct AsyncFd<T: AsRawFd> {
    /// The ring registration. Declared first so that it is dropped (and
    /// the fd deregistered) before `inner` closes the fd.
    reg: Registration,
    /// The fd's owner.
    inner: T,
    /// What was registered.
    interest: Interest,
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .field("interest", &self.interest)
            .finish()
    }
}

/// [`AsyncFd::try_new`] failed: the error, and the object back.
pub struct AsyncFdTryNewError<T> {
    /// The object that was to be registered.
    inner: T,
    /// Why it was not.
    cause: io::Error,
}

impl<T> AsyncFdTryNewError<T> {
    /// The object and the error.
    pub fn into_parts(self) -> (T, io::Error) {
        (self.inner, self.cause)
    }
}

impl<T> fmt::Debug for AsyncFdTryNewError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.cause, f)
    }
}

impl<T> fmt::Display for AsyncFdTryNewError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

impl<T> std::error::Error for AsyncFdTryNewError<T> {}

impl<T> From<AsyncFdTryNewError<T>> for io::Error {
    fn from(e: AsyncFdTryNewError<T>) -> io::Error {
        e.cause
    }
}

/// The operation given to a guard's `try_io` would block: the readiness
/// was cleared; wait again.
#[derive(Debug)]
pub struct TryIoError(());

impl<T: AsRawFd> AsyncFd<T> {
    /// Registers `inner`'s fd for reading and writing.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn new(inner: T) -> io::Result<AsyncFd<T>> {
        Self::with_interest(inner, Interest::BOTH)
    }

    /// Registers `inner`'s fd for `interest`. Fails (dropping `inner`)
    /// when the fd cannot be registered, e.g. a regular file under epoll
    /// (`EPERM`) or an fd already registered.
    ///
    /// Besides reading and writing, `interest` may ask for
    /// [`Interest::PRIORITY`] (`POLLPRI`: a TCP socket's out-of-band byte)
    /// and [`Interest::ERROR`] (`POLLERR`: a socket error, or an entry on
    /// its error queue), waited for with [`AsyncFd::ready`] and seen as
    /// [`Ready::is_priority`] and [`Ready::is_error`].
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn with_interest(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
        Self::try_with_interest(inner, interest).map_err(io::Error::from)
    }

    /// [`AsyncFd::new`], handing `inner` back on failure.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn try_new(inner: T) -> Result<AsyncFd<T>, AsyncFdTryNewError<T>> {
        Self::try_with_interest(inner, Interest::BOTH)
    }

    /// [`AsyncFd::with_interest`], handing `inner` back on failure.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    #[track_caller]
    pub fn try_with_interest(
        inner: T,
        interest: Interest,
    ) -> Result<AsyncFd<T>, AsyncFdTryNewError<T>> {
        match Registration::new_fd(inner.as_raw_fd(), interest) {
            Ok(reg) => Ok(AsyncFd {
                reg,
                inner,
                interest,
            }),
            Err(cause) => Err(AsyncFdTryNewError { inner, cause }),
        }
    }

    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The interest registered.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Deregisters the fd and hands back the object (which still owns it).
    pub fn into_inner(self) -> T {
        let AsyncFd { reg, inner, .. } = self;
        drop(reg);
        inner
    }

    /// Readiness for each part of `interest` that looks ready, or
    /// registers the task to be woken by any.
    fn poll_events(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<Events>> {
        let mut events = [None; 4];
        for (k, (wanted, dir)) in [
            (interest.is_readable(), Direction::Read),
            (interest.is_writable(), Direction::Write),
            (interest.is_priority(), Direction::Priority),
            (interest.is_error(), Direction::Error),
        ]
        .into_iter()
        .enumerate()
        {
            if wanted {
                if let Poll::Ready(ev) = self.reg.poll_ready(cx, dir) {
                    events[k] = Some(ev?);
                }
            }
        }
        if events.iter().all(Option::is_none) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(events))
    }

    /// Polls for read readiness.
    pub fn poll_read_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        let events = ready!(self.poll_events(cx, Interest::READABLE))?;
        Poll::Ready(Ok(AsyncFdReadyGuard { fd: self, events }))
    }

    /// Polls for write readiness.
    pub fn poll_write_ready<'a>(
        &'a self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyGuard<'a, T>>> {
        let events = ready!(self.poll_events(cx, Interest::WRITABLE))?;
        Poll::Ready(Ok(AsyncFdReadyGuard { fd: self, events }))
    }

    /// Polls for read readiness, with a guard giving `&mut T`.
    pub fn poll_read_ready_mut<'a>(
        &'a mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        let events = ready!(self.poll_events(cx, Interest::READABLE))?;
        Poll::Ready(Ok(AsyncFdReadyMutGuard { fd: self, events }))
    }

    /// Polls for write readiness, with a guard giving `&mut T`.
    pub fn poll_write_ready_mut<'a>(
        &'a mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<AsyncFdReadyMutGuard<'a, T>>> {
        let events = ready!(self.poll_events(cx, Interest::WRITABLE))?;
        Poll::Ready(Ok(AsyncFdReadyMutGuard { fd: self, events }))
    }

    /// Waits until any direction of `interest` may be ready.
    pub async fn ready(&self, interest: Interest) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        let events = poll_fn(|cx| self.poll_events(cx, interest)).await?;
        Ok(AsyncFdReadyGuard { fd: self, events })
    }

    /// [`AsyncFd::ready`] with a guard giving `&mut T`.
    pub async fn ready_mut(
        &mut self,
        interest: Interest,
    ) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        let events = poll_fn(|cx| self.poll_events(cx, interest)).await?;
        Ok(AsyncFdReadyMutGuard { fd: self, events })
    }

    /// Waits until the fd may be readable.
    pub async fn readable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Interest::READABLE).await
    }

    /// Waits until the fd may be writable.
    pub async fn writable(&self) -> io::Result<AsyncFdReadyGuard<'_, T>> {
        self.ready(Interest::WRITABLE).await
    }

    /// [`AsyncFd::readable`] with a guard giving `&mut T`.
    pub async fn readable_mut(&mut self) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        self.ready_mut(Interest::READABLE).await
    }

    /// [`AsyncFd::writable`] with a guard giving `&mut T`.
    pub async fn writable_mut(&mut self) -> io::Result<AsyncFdReadyMutGuard<'_, T>> {
        self.ready_mut(Interest::WRITABLE).await
    }

    /// Waits for `interest` (one direction) and runs `f` until it does not
    /// return `WouldBlock`.
    ///
    /// # Panics
    ///
    /// With `Interest::BOTH`: pass one direction.
    #[track_caller]
    pub fn async_io<'a, R: 'a>(
        &'a self,
        interest: Interest,
        mut f: impl FnMut(&T) -> io::Result<R> + 'a,
    ) -> impl Future<Output = io::Result<R>> + 'a {
        // The direction is checked now, so that misuse panics at the call.
        let dir = crate::net::evented::direction(interest);
        poll_fn(move |cx| self.reg.poll_io(cx, dir, || f(&self.inner)))
    }

    /// [`AsyncFd::async_io`] with `&mut T`.
    ///
    /// # Panics
    ///
    /// With `Interest::BOTH`: pass one direction.
    #[track_caller]
    pub fn async_io_mut<'a, R: 'a>(
        &'a mut self,
        interest: Interest,
        mut f: impl FnMut(&mut T) -> io::Result<R> + 'a,
    ) -> impl Future<Output = io::Result<R>> + 'a {
        let dir = crate::net::evented::direction(interest);
        let AsyncFd { reg, inner, .. } = self;
        poll_fn(move |cx| reg.poll_io(cx, dir, || f(inner)))
    }

    /// Runs `f` now if `interest` (one direction) looks ready;
    /// `WouldBlock` otherwise, or when `f` returns it (which clears the
    /// readiness).
    ///
    /// # Panics
    ///
    /// With `Interest::BOTH`: pass one direction.
    #[track_caller]
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        let dir = crate::net::evented::direction(interest);
        self.reg.try_io(dir, || f(&self.inner))
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// The readiness a guard saw, one slot per part of the interest waited
/// for: readable, writable, priority, error.
type Events = [Option<ReadyEvent>; 4];

/// What both guard types share.
fn ready_of(events: &Events) -> Ready {
    let mut ready = Ready::EMPTY;
    for ev in events.iter().flatten() {
        ready |= ev.ready;
    }
    ready
}

macro_rules! guard {
    ($guard:ident, $get:ident, $try_arg:ty) => {
        impl<'a, T: AsRawFd> $guard<'a, T> {
            /// The readiness seen (it may be spurious: the operation can
            /// still block).
            pub fn ready(&self) -> Ready {
                ready_of(&self.events)
            }

            /// Forgets the readiness seen, so that the next wait waits for
            /// a new event: call it after an operation hit `WouldBlock`.
            /// Readiness that arrived after it was seen survives.
            pub fn clear_ready(&mut self) {
                for ev in self.events.iter_mut() {
                    if let Some(ev) = ev.take() {
                        self.fd.reg.clear_readiness(ev);
                    }
                }
            }

            /// Forgets the readiness seen in the parts `ready` names
            /// (readable and closed-for-reading bits: the read side;
            /// writable and closed-for-writing bits: the write side;
            /// the priority bit; the error bit).
            pub fn clear_ready_matching(&mut self, ready: Ready) {
                let sides = [
                    ready.intersects(Ready::READABLE | Ready::READ_CLOSED),
                    ready.intersects(Ready::WRITABLE | Ready::WRITE_CLOSED),
                    ready.is_priority(),
                    ready.is_error(),
                ];
                for (ev, clear) in self.events.iter_mut().zip(sides) {
                    if clear {
                        if let Some(ev) = ev.take() {
                            self.fd.reg.clear_readiness(ev);
                        }
                    }
                }
            }

            /// Keeps the readiness (the default when the guard drops).
            pub fn retain_ready(&mut self) {
                self.events = [None; 4];
            }

            /// Runs `f`; on `WouldBlock` clears the readiness and returns
            /// `Err(TryIoError)` (wait again), else `Ok` with its result.
            pub fn try_io<R>(
                &mut self,
                f: impl FnOnce($try_arg) -> io::Result<R>,
            ) -> Result<io::Result<R>, TryIoError> {
                let res = f(self.$get());
                match res {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.clear_ready();
                        Err(TryIoError(()))
                    }
                    res => Ok(res),
                }
            }

            /// The `AsyncFd`.
            pub fn get_ref(&self) -> &AsyncFd<T> {
                self.fd
            }

            /// The wrapped object.
            pub fn get_inner(&self) -> &T {
                self.fd.get_ref()
            }
        }

        impl<'a, T: AsRawFd + fmt::Debug> fmt::Debug for $guard<'a, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("fd", &self.fd)
                    .field("ready", &self.ready())
                    .finish()
            }
        }
    };
}

/// Readiness seen on an [`AsyncFd`]; dropping it keeps the readiness.
pub struct AsyncFdReadyGuard<'a, T: AsRawFd> {
    /// The fd.
    fd: &'a AsyncFd<T>,
    /// The readiness seen, per part of the interest.
    events: Events,
}

/// Readiness seen on an [`AsyncFd`], giving `&mut` access to it.
pub struct AsyncFdReadyMutGuard<'a, T: AsRawFd> {
    /// The fd.
    fd: &'a mut AsyncFd<T>,
    /// The readiness seen, per part of the interest.
    events: Events,
}

guard!(AsyncFdReadyGuard, get_ref_fd, &AsyncFd<T>);
guard!(AsyncFdReadyMutGuard, get_mut_fd, &mut AsyncFd<T>);

impl<'a, T: AsRawFd> AsyncFdReadyGuard<'a, T> {
    fn get_ref_fd(&self) -> &AsyncFd<T> {
        self.fd
    }
}

impl<'a, T: AsRawFd> AsyncFdReadyMutGuard<'a, T> {
    fn get_mut_fd(&mut self) -> &mut AsyncFd<T> {
        self.fd
    }

    /// The `AsyncFd`, mutably.
    pub fn get_mut(&mut self) -> &mut AsyncFd<T> {
        self.fd
    }

    /// The wrapped object, mutably.
    pub fn get_inner_mut(&mut self) -> &mut T {
        self.fd.get_mut()
    }
}
