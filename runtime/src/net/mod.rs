//! Networking: TCP, UDP and Unix-domain sockets on the ring.
//!
//! The types mirror tokio's `tokio::net`: same names, same methods, same
//! errors. Byte streams implement futures' [`AsyncRead`] and
//! [`AsyncWrite`] (re-exported in [`crate::io`]) instead of tokio's traits,
//! so `kevent::io::{AsyncReadExt, AsyncWriteExt}` give `read`, `write_all`,
//! `close` and friends.
//!
//! ```
//! use kevent_runtime::io::{AsyncReadExt, AsyncWriteExt};
//! use kevent_runtime::net::{TcpListener, TcpStream};
//!
//! let rt = kevent_runtime::runtime::Builder::new_current_thread().build()?;
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = kevent_runtime::spawn(async move {
//!         let (mut socket, _) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         socket.read_exact(&mut buf).await?;
//!         socket.write_all(&buf).await?;
//!         Ok::<_, std::io::Error>(())
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echo = [0; 5];
//!     client.read_exact(&mut echo).await?;
//!     assert_eq!(&echo, b"hello");
//!     server.await.unwrap()
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Every socket registers with the runtime it is created in: create
//! sockets inside the runtime (a task, `block_on`, or after
//! `Runtime::enter`); elsewhere their constructors panic.
//!
//! Each direction of a socket keeps every task waiting on it, and its next
//! readiness wakes them all; those that then find nothing wait again. Split
//! a stream ([`TcpStream::into_split`]) to read in one task and write in
//! another.
//!
//! [`AsyncRead`]: futures_io::AsyncRead
//! [`AsyncWrite`]: futures_io::AsyncWrite

mod addr;
pub(crate) mod byte_stream;
pub(crate) mod datagram;
pub(crate) mod evented;
mod sockopt;
pub mod tcp;
mod udp;
pub mod unix;

pub use addr::{lookup_host, ToSocketAddrs};
pub use tcp::{TcpListener, TcpSocket, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixSocket, UnixStream};
