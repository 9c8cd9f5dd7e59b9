//! `File`: an open file with futures' `AsyncRead`, `AsyncWrite` and
//! `AsyncSeek`.
//!
//! Like tokio's, a `File` has at most one operation in flight, on an
//! internal buffer: a read fills the buffer and copies out of it, a write
//! copies into it and returns at once (write-behind) while the operation
//! runs; the next call waits for it first, and `flush` waits for it and
//! reports its error. The operation runs on the runtime's file ring on
//! io_uring, on the blocking pool otherwise. A `File` dropped with a write
//! in flight lets that write finish: every byte written lands.
//!
//! On the file ring a write's bytes are handed to the kernel by the
//! `File`'s next call (another write, a read, a seek, `flush`, a sync,
//! `set_len`, `into_std`, or its drop) rather than at once: when that
//! call is `sync_data` or `sync_all`, the write and the fsync go to the
//! ring as one linked pair, in one enter with one wait. A failed write's
//! error is reported by that call, as a write-behind's always is.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::sync::Mutex;

/// Most bytes one read or write moves (tokio's default as well).
const MAX_BUF: usize = 2 * 1024 * 1024;

/// The runtime's file ring, if file I/O goes through io_uring.
#[cfg(target_os = "linux")]
type Ring = Option<Arc<super::ring::FileRing>>;
/// No file ring off Linux.
#[cfg(not(target_os = "linux"))]
type Ring = Option<Arc<std::convert::Infallible>>;

/// An open file.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// use kevent_runtime::fs::File;
/// use kevent_runtime::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
/// use std::io::SeekFrom;
///
/// let path = std::env::temp_dir().join(format!("kevent-file-doc-{}", std::process::id()));
/// let mut file = File::create(&path).await?;
/// file.write_all(b"hello, world").await?;
/// file.sync_all().await?;
///
/// let mut file = File::open(&path).await?;
/// file.seek(SeekFrom::Start(7)).await?;
/// let mut word = String::new();
/// file.read_to_string(&mut word).await?;
/// assert_eq!(word, "world");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub struct File {
    /// The file itself, shared with the operation in flight (which keeps
    /// its descriptor open until the operation ends).
    std: Arc<std::fs::File>,
    /// The buffer and the operation in flight.
    inner: Mutex<Inner>,
    /// Where operations go: the runtime's file ring, or the blocking pool.
    ring: Ring,
    /// Most bytes one read or write moves.
    max_buf: usize,
}

/// A `File`'s mutable part.
struct Inner {
    /// Idle with the buffer, or an operation in flight owning it.
    state: State,
    /// The error of a write-behind that failed, reported by the next
    /// write, flush or sync.
    last_write_err: Option<io::Error>,
    /// The error of the fsync linked to a write, for the sync that
    /// submitted them.
    last_sync_err: Option<io::Error>,
    /// A seek started by tokio's `AsyncSeek::start_seek`, for its
    /// `poll_complete` (boxed: rare, and a `File` stays small).
    #[cfg(feature = "tokio-compat")]
    seek: Option<Box<SeekFrom>>,
}

/// What a `File` is doing.
enum State {
    /// Nothing in flight; the buffer holds bytes read ahead, if any.
    Idle(Option<Buf>),
    /// Bytes written and not handed to the kernel yet (file ring only):
    /// the next call submits them, linked to its fsync if it syncs.
    Written(Buf),
    /// An operation in flight (a write if the flag says so); it hands the
    /// buffer back.
    Busy(InFlight, bool),
}

/// An operation in flight on the buffer.
type InFlight = Pin<Box<dyn Future<Output = (Operation, Buf)> + Send>>;

/// What a finished operation did.
enum Operation {
    /// A read of this many bytes into the buffer, or its error.
    Read(io::Result<usize>),
    /// A write of the whole buffer, or its error.
    Write(io::Result<()>),
    /// A write of the whole buffer, then an fsync, and the fsync's result
    /// (a write that failed is a `Write` error).
    Synced(io::Result<()>),
}

/// A `File`'s buffer: bytes read ahead (from `pos`), or bytes to write.
#[derive(Default)]
pub(crate) struct Buf {
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// How many of them were already handed to the reader.
    pos: usize,
}

impl Buf {
    /// Bytes read ahead and not handed out yet.
    fn unread(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Copies read-ahead bytes into `dst`.
    fn copy_to(&mut self, dst: &mut [u8]) -> usize {
        let n = self.unread().min(dst.len());
        dst[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// Forgets the contents.
    fn clear(&mut self) {
        self.bytes.clear();
        self.pos = 0;
    }
}

impl File {
    /// Opens `path` for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        super::OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing, creating it or truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        super::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates `path` for reading and writing, failing with
    /// `AlreadyExists` if it exists.
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        super::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// A new [`OpenOptions`](super::OpenOptions).
    pub fn options() -> super::OpenOptions {
        super::OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`. Inside a runtime on io_uring its
    /// operations go through the file ring.
    pub fn from_std(std: std::fs::File) -> File {
        File::with_ring(std, super::ring())
    }

    pub(crate) fn with_ring(std: std::fs::File, ring: Ring) -> File {
        File {
            std: Arc::new(std),
            inner: Mutex::new(Inner {
                state: State::Idle(Some(Buf::default())),
                last_write_err: None,
                last_sync_err: None,
                #[cfg(feature = "tokio-compat")]
                seek: None,
            }),
            ring,
            max_buf: MAX_BUF,
        }
    }

    /// Waits for the operation in flight and returns the `std::fs::File`
    /// (its position where this `File`'s reads and writes left it).
    pub async fn into_std(mut self) -> std::fs::File {
        std::future::poll_fn(|cx| self.poll_settle(cx)).await;
        self.take_std()
    }

    /// The `std::fs::File`, if no operation is in flight; the `File`
    /// back otherwise.
    // tokio's signature: the `File` itself comes back, unboxed.
    #[allow(clippy::result_large_err)]
    pub fn try_into_std(mut self) -> Result<std::fs::File, File> {
        if matches!(
            self.inner.get_mut().state,
            State::Busy(..) | State::Written(_)
        ) {
            return Err(self);
        }
        self.unread_back();
        Ok(self.take_std())
    }

    /// Takes the `std::fs::File` out of an idle `File`.
    fn take_std(self) -> std::fs::File {
        let std = self.std.clone();
        drop(self);
        // No operation is in flight, so nothing else holds the file.
        Arc::try_unwrap(std).unwrap_or_else(|arc| {
            // Only if something did: a duplicate descriptor shares the
            // open file and its position.
            arc.try_clone().expect("dup of an open file")
        })
    }

    /// Moves the file position back over bytes read ahead and not handed
    /// out, so the next write or `std` user starts where the reader is.
    fn unread_back(&mut self) {
        if let State::Idle(Some(buf)) = &mut self.inner.get_mut().state {
            let back = buf.unread();
            buf.clear();
            if back > 0 {
                let _ = (&*self.std).seek(SeekFrom::Current(-(back as i64)));
            }
        }
    }

    /// Flushes file data and metadata to the disk (`fsync`), after the
    /// write in flight.
    pub async fn sync_all(&self) -> io::Result<()> {
        self.sync(false).await
    }

    /// Flushes file data to the disk (`fdatasync`), after the write in
    /// flight; metadata only as needed to read the data back.
    pub async fn sync_data(&self) -> io::Result<()> {
        self.sync(true).await
    }

    async fn sync(&self, data_only: bool) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        #[cfg(target_os = "linux")]
        if let (Some(ring), State::Written(_)) = (&self.ring, &inner.state) {
            // The bytes written and the fsync go together, linked. As an
            // operation in flight, the pair survives this future's drop.
            let State::Written(mut buf) = std::mem::replace(&mut inner.state, State::Idle(None))
            else {
                unreachable!("matched above")
            };
            let (ring, std) = (ring.clone(), self.std.clone());
            let op: InFlight = Box::pin(async move {
                let bytes = std::mem::take(&mut buf.bytes);
                let (bytes, res) = ring.write_all_fsync(std, bytes, data_only).await;
                buf.bytes = bytes;
                buf.clear();
                match res {
                    Ok(synced) => (Operation::Synced(synced), buf),
                    Err(e) => (Operation::Write(Err(e)), buf),
                }
            });
            inner.last_sync_err = None;
            inner.state = State::Busy(op, true);
            inner.settle(&self.std, &self.ring).await?;
            return match inner.last_sync_err.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        inner.settle(&self.std, &self.ring).await?;
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return ring.fsync(self.std.clone(), data_only).await;
        }
        let std = self.std.clone();
        super::asyncify(move || {
            if data_only {
                std.sync_data()
            } else {
                std.sync_all()
            }
        })
        .await
    }

    /// Truncates or extends the file to `size` bytes, after the write in
    /// flight. The position does not move. On io_uring an `ftruncate`
    /// through the file ring (Linux 6.9 and later; the blocking pool on
    /// older kernels, probed once).
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.settle(&self.std, &self.ring).await?;
        inner.seek_back_unread(&self.std)?;
        let std = self.std.clone();
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            // std's check, before the kernel sees a negative length.
            if i64::try_from(size).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a file's length past i64::MAX",
                ));
            }
            return super::ring::set_len(ring, std, size).await;
        }
        super::asyncify(move || std.set_len(size)).await
    }

    /// The file's metadata. On io_uring a `statx` of the open file goes
    /// through the file ring first (it waits, if anything must), then
    /// std's `Metadata` is read from the in-memory inode on the worker.
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let std = self.std.clone();
        #[cfg(target_os = "linux")]
        if let Some(ring) = &self.ring {
            return ring.file_metadata(std).await;
        }
        super::asyncify(move || std.metadata()).await
    }

    /// A second `File` on the same open file (a duplicate descriptor:
    /// they share the position).
    pub async fn try_clone(&self) -> io::Result<File> {
        let std = self.std.clone();
        let dup = super::asyncify(move || std.try_clone()).await?;
        Ok(File::with_ring(dup, self.ring.clone()))
    }

    /// Sets the file's permissions.
    pub async fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        let std = self.std.clone();
        super::asyncify(move || std.set_permissions(perm)).await
    }

    /// Sets the most bytes one read or write moves (default 2 MiB).
    pub fn set_max_buf_size(&mut self, max: usize) {
        self.max_buf = max.max(1);
    }

    /// Waits for the operation in flight, keeping a failed write's error.
    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.inner.get_mut();
        ready!(inner.poll_settle(cx, &self.std, &self.ring));
        Poll::Ready(())
    }
}

/// Starts a read of up to `len` bytes of `std` into `buf`.
fn start_read(std: &Arc<std::fs::File>, ring: &Ring, mut buf: Buf, len: usize) -> InFlight {
    buf.clear();
    let std = std.clone();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring {
        let ring = ring.clone();
        return Box::pin(async move {
            let (bytes, res) = ring.read(std, std::mem::take(&mut buf.bytes), len).await;
            buf.bytes = bytes;
            (Operation::Read(res), buf)
        });
    }
    blocking(move || {
        buf.bytes.resize(len, 0);
        let res = (&*std).read(&mut buf.bytes);
        buf.bytes.truncate(*res.as_ref().unwrap_or(&0));
        (Operation::Read(res), buf)
    })
}

/// Starts writing all of `buf` to `std`.
fn start_write(std: &Arc<std::fs::File>, ring: &Ring, mut buf: Buf) -> InFlight {
    let std = std.clone();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring {
        let ring = ring.clone();
        return Box::pin(async move {
            let (bytes, res) = ring.write_all(std, std::mem::take(&mut buf.bytes)).await;
            buf.bytes = bytes;
            buf.clear();
            (Operation::Write(res), buf)
        });
    }
    blocking(move || {
        let res = (&*std).write_all(&buf.bytes);
        buf.clear();
        (Operation::Write(res), buf)
    })
}

/// An operation on the blocking pool.
fn blocking(f: impl FnOnce() -> (Operation, Buf) + Send + 'static) -> InFlight {
    let handle = crate::task::spawn_blocking(f);
    Box::pin(async move {
        match handle.await {
            Ok(done) => done,
            Err(e) => {
                let e = io::Error::other(format!("blocking file task failed: {e}"));
                (Operation::Write(Err(e)), Buf::default())
            }
        }
    })
}

impl Inner {
    /// Submits bytes written and not handed over yet, and waits for the
    /// operation in flight; a failed write's error is kept for the next
    /// write, flush or sync.
    fn poll_settle(
        &mut self,
        cx: &mut Context<'_>,
        std: &Arc<std::fs::File>,
        ring: &Ring,
    ) -> Poll<()> {
        if let State::Written(_) = self.state {
            let State::Written(buf) = std::mem::replace(&mut self.state, State::Idle(None)) else {
                unreachable!("matched above")
            };
            self.state = State::Busy(start_write(std, ring, buf), true);
        }
        if let State::Busy(op, _) = &mut self.state {
            let (done, buf) = ready!(op.as_mut().poll(cx));
            self.record(done);
            // A read finished while nobody waits for it: its bytes stay
            // read ahead.
            self.state = State::Idle(Some(buf));
        }
        Poll::Ready(())
    }

    /// Keeps what a finished operation reports to later calls: a failed
    /// write's error, a linked fsync's result.
    fn record(&mut self, done: Operation) {
        match done {
            Operation::Write(Err(e)) => self.last_write_err = Some(e),
            Operation::Synced(Err(e)) => self.last_sync_err = Some(e),
            Operation::Write(Ok(())) | Operation::Synced(Ok(())) | Operation::Read(_) => {}
        }
    }

    /// Waits for the operation in flight, then returns (and forgets) the
    /// error of a failed write.
    async fn settle(&mut self, std: &Arc<std::fs::File>, ring: &Ring) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_settle(cx, std, ring)).await;
        match self.last_write_err.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// On an idle file, moves the position back over read-ahead bytes.
    fn seek_back_unread(&mut self, std: &std::fs::File) -> io::Result<()> {
        if let State::Idle(Some(buf)) = &mut self.state {
            let back = buf.unread();
            buf.clear();
            if back > 0 {
                let mut std = std;
                std.seek(SeekFrom::Current(-(back as i64)))?;
            }
        }
        Ok(())
    }
}

impl crate::io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        loop {
            let inner = me.inner.get_mut();
            match &mut inner.state {
                State::Idle(cell) => {
                    let buf = cell.as_mut().expect("an idle file holds its buffer");
                    if buf.unread() > 0 || dst.is_empty() {
                        return Poll::Ready(Ok(buf.copy_to(dst)));
                    }
                    let buf = cell.take().expect("an idle file holds its buffer");
                    let op = start_read(&me.std, &me.ring, buf, dst.len().min(me.max_buf));
                    inner.state = State::Busy(op, false);
                }
                State::Written(_) => ready!(inner.poll_settle(cx, &me.std, &me.ring)),
                State::Busy(op, _) => {
                    let (done, mut buf) = ready!(op.as_mut().poll(cx));
                    match done {
                        Operation::Read(Ok(_)) => {
                            let n = buf.copy_to(dst);
                            inner.state = State::Idle(Some(buf));
                            return Poll::Ready(Ok(n));
                        }
                        Operation::Read(Err(e)) => {
                            buf.clear();
                            inner.state = State::Idle(Some(buf));
                            return Poll::Ready(Err(e));
                        }
                        other => {
                            inner.record(other);
                            inner.state = State::Idle(Some(buf));
                        }
                    }
                }
            }
        }
    }
}

impl crate::io::AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let inner = me.inner.get_mut();
        ready!(inner.poll_settle(cx, &me.std, &me.ring));
        if let Some(e) = inner.last_write_err.take() {
            return Poll::Ready(Err(e));
        }
        inner.seek_back_unread(&me.std)?;
        if src.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let State::Idle(cell) = &mut inner.state else {
            unreachable!("settled above")
        };
        let mut buf = cell.take().expect("an idle file holds its buffer");
        let n = src.len().min(me.max_buf);
        buf.bytes.extend_from_slice(&src[..n]);
        if me.ring.is_some() {
            // Handed to the kernel by the next call, linked to its fsync
            // if it syncs (see the module docs).
            inner.state = State::Written(buf);
            return Poll::Ready(Ok(n));
        }
        inner.state = State::Busy(start_write(&me.std, &me.ring, buf), true);
        // Start it now, so the bytes are on their way even if this `File`
        // is never polled again; a write that completes at once settles.
        let _ = inner.poll_settle(cx, &me.std, &me.ring);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let inner = me.inner.get_mut();
        ready!(inner.poll_settle(cx, &me.std, &me.ring));
        match inner.last_write_err.take() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl crate::io::AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let me = self.get_mut();
        let inner = me.inner.get_mut();
        ready!(inner.poll_settle(cx, &me.std, &me.ring));
        if let Some(e) = inner.last_write_err.take() {
            return Poll::Ready(Err(e));
        }
        let State::Idle(Some(buf)) = &mut inner.state else {
            unreachable!("settled above")
        };
        // The kernel's position is past the bytes read ahead: a relative
        // seek counts from where the reader is.
        let pos = match pos {
            SeekFrom::Current(off) => SeekFrom::Current(off - buf.unread() as i64),
            other => other,
        };
        buf.clear();
        // lseek(2) only moves a number in the open file: no I/O, no wait.
        Poll::Ready((&*me.std).seek(pos))
    }
}

crate::net::byte_stream::tokio_io!(@read File);
crate::net::byte_stream::tokio_io!(@write File);

/// tokio's two-step seek (feature `tokio-compat`): `start_seek` records
/// the target, `poll_complete` waits for the operation in flight and
/// moves there (`lseek(2)`, inline), as futures' `poll_seek` does.
#[cfg(feature = "tokio-compat")]
impl tokio::io::AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let inner = self.get_mut().inner.get_mut();
        if inner.seek.is_some() {
            return Err(io::Error::other(
                "a seek is already in progress: call poll_complete before start_seek",
            ));
        }
        inner.seek = Some(Box::new(position));
        Ok(())
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        // No seek started: where the file is (tokio answers the same).
        let target = self
            .inner
            .get_mut()
            .seek
            .as_deref()
            .copied()
            .unwrap_or(SeekFrom::Current(0));
        let res = ready!(crate::io::AsyncSeek::poll_seek(self.as_mut(), cx, target));
        self.inner.get_mut().seek = None;
        Poll::Ready(res)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // A write in flight must land although nobody will wait for it:
        // let a task finish it (an operation on the blocking pool or the
        // file ring runs to its end without one, but a long write through
        // the ring may take more than one operation).
        let op = match std::mem::replace(&mut self.inner.get_mut().state, State::Idle(None)) {
            State::Busy(op, true) => op,
            State::Written(buf) => {
                // Hand the bytes to the kernel now: submitted, the write
                // lands even if no task ever polls it again.
                let mut op = start_write(&self.std, &self.ring, buf);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                if op.as_mut().poll(&mut cx).is_ready() {
                    return;
                }
                op
            }
            _ => return,
        };
        if let Ok(handle) = crate::runtime::Handle::try_current() {
            drop(handle.spawn(op));
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("std", &self.std)
            .field("ring", &self.ring.is_some())
            .finish()
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for File {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.std.as_raw_fd()
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for File {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.std.as_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::File;
    use crate::io::AsyncWriteExt;

    #[test]
    fn a_sync_right_after_a_write_takes_one_submission_on_the_file_ring() {
        crate::fs::with_test_ring(|ring| async move {
            let path =
                std::env::temp_dir().join(format!("kevent-file-link-{}", std::process::id()));
            let mut f = File::create(&path).await.unwrap();
            for round in 0..4u8 {
                let before = ring.submissions();
                f.write_all(&[round; 128]).await.unwrap();
                if round % 2 == 0 {
                    f.sync_data().await.unwrap();
                } else {
                    f.sync_all().await.unwrap();
                }
                assert_eq!(
                    ring.submissions() - before,
                    1,
                    "round {round}: the write and the fsync went separately"
                );
            }
            let on_disk = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(on_disk.len(), 4 * 128);
            assert!(on_disk
                .chunks(128)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        });
    }
}
