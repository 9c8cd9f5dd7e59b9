//! `read_dir`: a directory's entries, as a stream.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::task::JoinHandle;

/// Entries read from the directory per trip to the blocking pool.
const BATCH: usize = 32;

/// The entries of the directory at `path` (without `.` and `..`), in the
/// order the OS gives them.
///
/// On every backend, io_uring included, the directory is opened and read
/// on the blocking pool, 32 entries a trip: io_uring has no
/// operation that reads a directory (no `getdents`), so there is nothing
/// to submit to the file ring.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// let mut dir = kevent_runtime::fs::read_dir(std::env::temp_dir()).await?;
/// while let Some(entry) = dir.next_entry().await? {
///     let _name = entry.file_name();
/// }
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let std = super::asyncify(move || std::fs::read_dir(path)).await?;
    Ok(ReadDir {
        state: State::Idle(Some((VecDeque::new(), std, true))),
    })
}

/// Entries read ahead, the directory handle, and whether more may come.
type Batch = (VecDeque<io::Result<DirEntry>>, std::fs::ReadDir, bool);

/// A directory's entries: [`ReadDir::next_entry`], or a `Stream` of
/// `io::Result<DirEntry>`.
#[derive(Debug)]
pub struct ReadDir {
    /// Read-ahead entries, or a batch being read on the blocking pool.
    state: State,
}

/// Where the next entries come from.
#[derive(Debug)]
enum State {
    /// Entries read ahead (`None` only while a batch is being read).
    Idle(Option<Batch>),
    /// A batch being read on the blocking pool.
    Pending(JoinHandle<Batch>),
}

impl ReadDir {
    /// The next entry, or `None` at the end of the directory.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry: `Ready(Ok(None))` at the end.
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            match &mut self.state {
                State::Idle(batch) => {
                    let (mut queue, mut std, more) = batch.take().expect("a batch is present");
                    if let Some(entry) = queue.pop_front() {
                        self.state = State::Idle(Some((queue, std, more)));
                        return Poll::Ready(entry.map(Some));
                    }
                    if !more {
                        self.state = State::Idle(Some((queue, std, false)));
                        return Poll::Ready(Ok(None));
                    }
                    self.state = State::Pending(crate::task::spawn_blocking(move || {
                        let more = next_batch(&mut queue, &mut std);
                        (queue, std, more)
                    }));
                }
                State::Pending(handle) => {
                    let batch = ready!(Pin::new(handle).poll(cx)).map_err(|e| {
                        io::Error::other(format!("blocking read_dir task failed: {e}"))
                    });
                    match batch {
                        Ok(batch) => self.state = State::Idle(Some(batch)),
                        Err(e) => {
                            // The handle went with the failed task: the stream ends.
                            self.state = State::Idle(None);
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
            if matches!(self.state, State::Idle(None)) {
                return Poll::Ready(Ok(None));
            }
        }
    }
}

/// Reads up to [`BATCH`] entries into `queue`; false once the directory
/// is exhausted.
fn next_batch(queue: &mut VecDeque<io::Result<DirEntry>>, std: &mut std::fs::ReadDir) -> bool {
    for _ in 0..BATCH {
        match std.next() {
            Some(entry) => queue.push_back(entry.map(|e| DirEntry(Arc::new(e)))),
            None => return false,
        }
    }
    true
}

impl futures_core::Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.get_mut().poll_next_entry(cx)) {
            Ok(Some(entry)) => Poll::Ready(Some(Ok(entry))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// One entry of a directory, from [`ReadDir`].
#[derive(Debug, Clone)]
pub struct DirEntry(Arc<std::fs::DirEntry>);

impl DirEntry {
    /// The entry's full path: the directory's path joined with its name.
    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// The entry's name, without the directory.
    pub fn file_name(&self) -> std::ffi::OsString {
        self.0.file_name()
    }

    /// The entry's inode number.
    #[cfg(unix)]
    pub fn ino(&self) -> u64 {
        use std::os::unix::fs::DirEntryExt;
        self.0.ino()
    }

    /// The entry's metadata, not following a symbolic link.
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let entry = self.0.clone();
        super::asyncify(move || entry.metadata()).await
    }

    /// The entry's type, not following a symbolic link (usually known
    /// without a system call).
    pub async fn file_type(&self) -> io::Result<std::fs::FileType> {
        let entry = self.0.clone();
        super::asyncify(move || entry.file_type()).await
    }
}
