//! `TcpStream`: a connected TCP socket.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use kevent_reactor::Ready;

use crate::driver::slab::Direction;
use crate::net::addr::{each_addr, ToSocketAddrs};
use crate::net::byte_stream::byte_stream;
use crate::net::evented::Evented;
use crate::net::sockopt;

/// A TCP connection between a local and a remote socket (tokio's
/// `TcpStream`).
///
/// Read and write it through [`AsyncRead`](futures_io::AsyncRead) and
/// [`AsyncWrite`](futures_io::AsyncWrite) (with
/// `kevent::io::{AsyncReadExt, AsyncWriteExt}`), or with the `try_*`
/// methods after [`readable`](TcpStream::readable) /
/// [`writable`](TcpStream::writable). Closing it
/// ([`AsyncWriteExt::close`](futures_util::io::AsyncWriteExt::close))
/// shuts down the write side; dropping it closes the socket.
///
/// ```
/// use kevent_runtime::io::{AsyncReadExt, AsyncWriteExt};
/// use kevent_runtime::net::{TcpListener, TcpStream};
///
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"ping").await?;
/// client.close().await?; // shutdown(Write): the server reads to EOF
/// let mut got = Vec::new();
/// server.read_to_end(&mut got).await?;
/// assert_eq!(got, b"ping");
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    /// The registered socket.
    io: Evented<mio::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to in
    /// turn; returns the last error if none accepts.
    ///
    /// # Panics
    ///
    /// Outside a kevent runtime.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, TcpStream::connect_addr).await
    }

    /// Connects to one address: a nonblocking `connect`, then waits for the
    /// socket to turn writable and asks it whether the connection is up.
    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::new(mio::net::TcpStream::connect(addr)?)?
            .established()
            .await
    }

    /// Waits for the connect this stream's socket started to finish.
    pub(crate) async fn established(self) -> io::Result<TcpStream> {
        let ev = self.io.registration().ready(Direction::Write).await?;
        let socket = self.io.get_ref();
        if let Some(e) = socket.take_error()? {
            return Err(e);
        }
        // A connecting TCP socket polls writable only once established
        // (Linux's `tcp_poll`): plain writability is the answer. Closed or
        // in error with no error pending, it is connected if it has a peer.
        if ev.ready.intersects(Ready::ERROR | Ready::WRITE_CLOSED) {
            socket.peer_addr()?;
        }
        Ok(self)
    }

    /// Registers a connected (or connecting) nonblocking mio stream.
    #[track_caller]
    pub(crate) fn new(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: Evented::new_stream(stream)?,
        })
    }

    /// Sets `TCP_NODELAY`: `true` sends small writes at once instead of
    /// coalescing them (Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`, the time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_LINGER`. `Some(Duration::ZERO)` makes dropping the stream
    /// reset the connection instead of closing it gracefully. A nonzero
    /// linger makes the close in `drop` block the thread until unsent data
    /// is acknowledged or the time runs out: avoid it on a worker.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        sockopt::set_linger(self.io.get_ref(), dur)
    }

    /// Reads `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        sockopt::linger(self.io.get_ref())
    }

    /// Sets `SO_LINGER` to zero: dropping the stream resets the connection
    /// (the peer reads `ConnectionReset`) instead of closing it gracefully,
    /// and leaves no `TIME_WAIT` behind. Never blocks the close.
    pub fn set_zero_linger(&self) -> io::Result<()> {
        sockopt::set_linger(self.io.get_ref(), Some(Duration::ZERO))
    }

    /// Receives data without removing it from the queue: the next read
    /// sees it again. Waits until there is some (or end of file).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_peek(cx, buf)).await
    }

    /// Polling form of [`peek`](TcpStream::peek).
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_peek(cx, buf)
    }
}

byte_stream!(
    TcpStream,
    mio: mio::net::TcpStream,
    std: std::net::TcpStream,
    addr: SocketAddr
);
