//! The file ring: file I/O through an io_uring of its own, with no
//! blocking-pool hop.
//!
//! One small io_uring per runtime, made by the runtime at its first file
//! operation when its backend is io_uring. A caller pushes its submission
//! entries (one operation, or a short linked chain) and enters the kernel
//! once; a page-cache hit, an open of a cached path or a close completes
//! inside that enter, and the caller reads its completion right away.
//! Operations the kernel finishes later (an fsync, a statx, a read that
//! waits for the disk) post their completion from the kernel's own
//! workers. While any operation waits, the ring's descriptor is registered
//! with the runtime's reactor like a socket (through [`FileRingHost`]: it
//! polls readable when completions are posted), so whichever backend
//! delivers that readiness; the waiting tasks then read the completions and
//! wake each other's. The registration is dropped when nothing waits, so
//! operations that complete inline cost the reactor nothing.
//!
//! Buffers, paths and the file of an operation belong to the operation's
//! slot until its last completion is read, not to the future awaiting it:
//! a future dropped early leaves them there (the slot is abandoned, and
//! freed at its completion), so the kernel never writes into freed memory
//! or into a descriptor number reused by another file. Dropping the ring
//! cancels what is in flight and waits for it.

use std::any::Any;
use std::ffi::CString;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};

use crate::loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use crate::loom::Mutex;
use crate::stream::{Direction, Readiness};

mod copy;
mod meta;

/// Submission queue entries: operations are submitted as they come, so a
/// few chains at a time.
const SQ_ENTRIES: u32 = 64;
/// Completion queue entries; past them the kernel keeps completions aside
/// (`NODROP`) until a reader flushes them in.
const CQ_ENTRIES: u32 = 1024;
/// Most entries in one chain.
const MAX_CHAIN: usize = 4;
/// Direct descriptor slots (the ring's own file table, outside the
/// process's): one per `read_file` in flight on the one-enter path.
const FIXED_SLOTS: u32 = 64;
/// What `read_file` reads in its one enter: a file up to this size is read
/// whole there; a larger one is read again the longer way.
const GUESS: usize = 32 * 1024;
/// Bytes read past a file's size to see its end.
const PROBE: usize = 32;

/// What a file ring needs from the runtime that owns it: a way to wait for
/// its descriptor to turn readable.
pub trait FileRingHost: Send + Sync + 'static {
    /// The readiness of a registered descriptor.
    type Watch: Readiness + Send + Sync + 'static;

    /// Registers `fd` with the runtime's reactor for readable readiness;
    /// fails once the runtime is gone (waiting operations then wait in the
    /// kernel).
    fn watch(&self, fd: RawFd) -> io::Result<Arc<Self::Watch>>;

    /// Whether the runtime still runs: the ring keeps a registration
    /// across operations only then, since the registration holds the
    /// runtime, which holds the ring.
    fn running(&self) -> bool;
}

/// A runtime's file ring (see the module docs).
pub struct FileRing<H: FileRingHost> {
    /// The ring and the operations in flight.
    state: Mutex<State>,
    /// The runtime, to register the ring's descriptor with while
    /// operations wait.
    host: H,
    /// The registration of the ring's descriptor while operations wait,
    /// and a while after (see [`FileRing::inline_done`]).
    watch: Mutex<Watch<H::Watch>>,
    /// Operations completed inline since one last waited, while the
    /// ring's descriptor is registered.
    quiet: AtomicU32,
    /// Whether `watch` holds the registration.
    watched: AtomicBool,
    /// Operations submitted (each one enter), for tests that count them.
    submitted: AtomicU64,
    /// Whether the kernel has `IORING_OP_FTRUNCATE` (`meta::FTRUNCATE_*`).
    ftruncate: AtomicU8,
}

/// The registration of the ring's descriptor.
struct Watch<W> {
    /// Held by the ring: kept across operations that wait one after the
    /// other (an fsync after a write), so each does not register anew.
    sticky: Option<Arc<W>>,
    /// Held by the waiting operations.
    shared: std::sync::Weak<W>,
}

impl<W> Default for Watch<W> {
    fn default() -> Self {
        Watch {
            sticky: None,
            shared: std::sync::Weak::new(),
        }
    }
}

/// Inline completions after which the ring stops watching its descriptor:
/// while watched, each completion also raises a readiness event, which
/// operations that never wait only pay for.
const STICKY_QUIET: u32 = 64;

/// The ring and its operation slots, under one lock: submitting and
/// reading completions both need them.
struct State {
    /// The io_uring.
    uring: IoUring,
    /// Operation slots; a completion's `user_data` is its slot index
    /// times eight plus its place in the chain.
    slots: Vec<Slot>,
    /// Free slot indices.
    free: Vec<usize>,
    /// Slots with completions outstanding.
    in_flight: usize,
    /// Free direct descriptor slots (empty if the kernel refused a table).
    fixed_free: Vec<u32>,
}

/// One operation (a chain of up to [`MAX_CHAIN`] entries) in flight.
#[derive(Default)]
struct Slot {
    /// Completions still to come.
    pending: usize,
    /// Each entry's result.
    results: [i32; MAX_CHAIN],
    /// The task waiting for it.
    waker: Option<Waker>,
    /// What the kernel reads or writes while it runs (buffers, path,
    /// file), kept until the last completion.
    keep: Option<Box<dyn Any + Send>>,
    /// The future went away: free the slot at the last completion.
    abandoned: bool,
}

impl<H: FileRingHost> std::fmt::Debug for FileRing<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRing").finish_non_exhaustive()
    }
}

impl<H: FileRingHost> FileRing<H> {
    /// A file ring for the runtime `host` stands for; fails where the
    /// kernel refuses an io_uring.
    pub fn new(host: H) -> io::Result<FileRing<H>> {
        let uring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        let fixed_free = match uring.submitter().register_files_sparse(FIXED_SLOTS) {
            Ok(()) => (0..FIXED_SLOTS).rev().collect(),
            Err(_) => Vec::new(),
        };
        Ok(FileRing {
            state: Mutex::new(State {
                uring,
                slots: Vec::new(),
                free: Vec::new(),
                in_flight: 0,
                fixed_free,
            }),
            host,
            watch: Mutex::new(Watch::default()),
            quiet: AtomicU32::new(0),
            watched: AtomicBool::new(false),
            submitted: AtomicU64::new(0),
            ftruncate: AtomicU8::new(meta::FTRUNCATE_UNKNOWN),
        })
    }

    /// The registration of the ring's descriptor, made if nothing holds it.
    fn watch(&self) -> io::Result<Arc<H::Watch>> {
        let mut watch = self.watch.lock();
        self.quiet.store(0, Ordering::Relaxed);
        if let Some(reg) = &watch.sticky {
            return Ok(reg.clone());
        }
        let reg = match watch.shared.upgrade() {
            Some(reg) => reg,
            None => {
                let fd = self.state.lock().uring.as_raw_fd();
                self.host.watch(fd)?
            }
        };
        watch.shared = Arc::downgrade(&reg);
        // The registration holds the runtime, which holds this ring: once
        // the runtime shuts down, only waiting operations may hold it.
        if self.host.running() {
            watch.sticky = Some(reg.clone());
            self.watched.store(true, Ordering::Relaxed);
        }
        Ok(reg)
    }

    /// Lets go of the ring's own hold on its registration (at the
    /// runtime's shutdown).
    pub fn release_watch(&self) {
        let reg = {
            let mut watch = self.watch.lock();
            self.watched.store(false, Ordering::Relaxed);
            watch.sticky.take()
        };
        drop(reg);
    }

    /// An operation completed without waiting: after [`STICKY_QUIET`] of
    /// them in a row the ring lets go of its registration (waiting
    /// operations keep their own).
    fn inline_done(&self) {
        if !self.watched.load(Ordering::Relaxed)
            || self.quiet.fetch_add(1, Ordering::Relaxed) + 1 < STICKY_QUIET
        {
            return;
        }
        let reg = {
            let mut watch = self.watch.lock();
            self.watched.store(false, Ordering::Relaxed);
            watch.sticky.take()
        };
        drop(reg);
    }

    /// Submits `entries` as one operation (linked as their flags say),
    /// with `keep` owned by the operation until it ends.
    fn submit(
        self: &Arc<Self>,
        entries: &[squeue::Entry],
        keep: Box<dyn Any + Send>,
    ) -> io::Result<Submitted<H>> {
        debug_assert!(!entries.is_empty() && entries.len() <= MAX_CHAIN);
        self.submitted.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        let index = match state.free.pop() {
            Some(i) => i,
            None => {
                state.slots.push(Slot::default());
                state.slots.len() - 1
            }
        };
        state.slots[index] = Slot {
            pending: entries.len(),
            keep: Some(keep),
            ..Slot::default()
        };
        state.in_flight += 1;
        let State { uring, .. } = &mut *state;
        let room = {
            let sq = uring.submission();
            sq.capacity() - sq.len()
        };
        if room < entries.len() {
            // Entries left by a failed enter; push them in first.
            let _ = uring.submit();
            let sq = uring.submission();
            if sq.capacity() - sq.len() < entries.len() {
                // The kernel takes nothing now: nothing of this operation
                // was pushed, so its slot can go.
                drop(sq);
                state.slots[index] = Slot::default();
                state.free.push(index);
                state.in_flight -= 1;
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
        }
        {
            let mut sq = uring.submission();
            for (k, entry) in entries.iter().enumerate() {
                let entry = entry.clone().user_data((index * 8 + k) as u64);
                // SAFETY: every buffer and path the entry points to is in
                // `keep`, which the slot holds until the entry's completion
                // has been read (also when the awaiting future is dropped,
                // and `Drop for FileRing` waits for in-flight operations).
                unsafe { sq.push(&entry) }.expect("room was made in the submission queue");
            }
        }
        loop {
            match uring.submit() {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY)) => {
                    // Completions must be read first; the entries stay in
                    // the queue and go with the next enter.
                    let wake = state.reap();
                    drop(state);
                    wake.into_iter().for_each(Waker::wake);
                    break;
                }
                Err(e) => {
                    // The entries stay queued and go with the next enter;
                    // report nothing here, their completions will.
                    let _ = e;
                    break;
                }
            }
        }
        Ok(Submitted {
            ring: self.clone(),
            index,
            done: false,
            watch: None,
            waited: false,
        })
    }

    /// Opens `path` with `open(2)` flags and mode.
    pub async fn open(
        self: &Arc<Self>,
        path: &Path,
        flags: i32,
        mode: u32,
    ) -> io::Result<std::fs::File> {
        let path = cstring(path)?;
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(flags)
            .mode(mode)
            .build();
        let (res, _) = self.submit(&[entry], Box::new(path))?.await;
        let fd = check(res[0])?;
        // SAFETY: the kernel just opened `fd` for us; nobody else owns it.
        Ok(unsafe { std::fs::File::from_raw_fd(fd as RawFd) })
    }

    /// Reads up to `len` bytes at the file's position into `buf`
    /// (replacing its contents); the buffer comes back either way.
    pub async fn read(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        mut buf: Vec<u8>,
        len: usize,
    ) -> (Vec<u8>, io::Result<usize>) {
        buf.clear();
        buf.reserve(len);
        let fd = file.as_raw_fd();
        let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), len as u32)
            .offset(u64::MAX)
            .build();
        let submitted = match self.submit(&[entry], Box::new((file, buf))) {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let (res, keep) = submitted.await;
        let (_file, mut buf) = *keep
            .downcast::<(Arc<std::fs::File>, Vec<u8>)>()
            .expect("read keeps its buffer");
        match check(res[0]) {
            Ok(n) => {
                // SAFETY: the kernel wrote `n <= len <= capacity` bytes.
                unsafe { buf.set_len(n as usize) };
                (buf, Ok(n as usize))
            }
            Err(e) => (buf, Err(e)),
        }
    }

    /// Writes all of `buf` at the file's position (the end with
    /// `O_APPEND`); the buffer comes back either way.
    pub async fn write_all(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        buf: Vec<u8>,
    ) -> (Vec<u8>, io::Result<()>) {
        let start = position(&file);
        self.write_all_from(file, buf, 0, start).await
    }

    /// Writes `buf[written..]`, the first `written` bytes having gone to
    /// the file from `start` (its position before them, if it has one);
    /// the buffer comes back either way, the file position after the
    /// bytes written.
    ///
    /// After a short write the kernel may leave the file position where
    /// the write began (seen on Linux 6.18 when a write at the file's
    /// position is cut short by `RLIMIT_FSIZE`): from the first short
    /// write on, the rest goes at explicit offsets from `start`, and the
    /// position is set after them.
    async fn write_all_from(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        buf: Vec<u8>,
        mut written: usize,
        start: Option<u64>,
    ) -> (Vec<u8>, io::Result<()>) {
        let fd = file.as_raw_fd();
        // The explicit start, once a write came back short.
        let mut at = if written > 0 {
            resume_at(fd, start)
        } else {
            None
        };
        let mut keep: Box<dyn Any + Send> = Box::new((file, buf));
        let res = loop {
            let (ptr, len) = {
                let (_, buf) = keep
                    .downcast_ref::<(Arc<std::fs::File>, Vec<u8>)>()
                    .expect("write keeps its buffer");
                if written == buf.len() {
                    break Ok(());
                }
                (buf[written..].as_ptr(), buf.len() - written)
            };
            let offset = at.map_or(u64::MAX, |p| p + written as u64);
            let entry = opcode::Write::new(types::Fd(fd), ptr, len.min(u32::MAX as usize) as u32)
                .offset(offset)
                .build();
            let submitted = match self.submit(&[entry], keep) {
                Ok(s) => s,
                Err(e) => return (Vec::new(), Err(e)),
            };
            let (res, back) = submitted.await;
            keep = back;
            match check(res[0]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n as usize;
                    if (n as usize) < len && at.is_none() {
                        at = resume_at(fd, start);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if let Some(p) = at {
            // SAFETY: lseek(2) on a descriptor `keep` holds open.
            let r = unsafe { libc::lseek(fd, (p + written as u64) as libc::off_t, libc::SEEK_SET) };
            if r < 0 && res.is_ok() {
                return (take_buf(keep), Err(io::Error::last_os_error()));
            }
        }
        (take_buf(keep), res)
    }

    /// `fsync` (`fdatasync` with `data_only`).
    pub async fn fsync(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        data_only: bool,
    ) -> io::Result<()> {
        let entry = fsync_entry(file.as_raw_fd(), data_only);
        let (res, _) = self.submit(&[entry], Box::new(file))?.await;
        check(res[0]).map(drop)
    }

    /// Writes all of `buf` at the file's position, then `fsync`s
    /// (`fdatasync` with `data_only`): the write and the fsync are one
    /// linked pair, submitted in one enter and awaited once. Returns the
    /// buffer, and the write's result holding the fsync's.
    ///
    /// The kernel cancels the linked fsync (`ECANCELED`) when the write
    /// fails or is short; after a short write the rest is written and the
    /// fsync submitted again, so the fsync always covers every byte.
    pub async fn write_all_fsync(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        buf: Vec<u8>,
        data_only: bool,
    ) -> (Vec<u8>, io::Result<io::Result<()>>) {
        let len = buf.len();
        if len == 0 || len > u32::MAX as usize {
            let (buf, res) = self.write_all(file.clone(), buf).await;
            if let Err(e) = res {
                return (buf, Err(e));
            }
            return (buf, Ok(self.fsync(file, data_only).await));
        }
        let fd = file.as_raw_fd();
        let start = position(&file);
        let write = opcode::Write::new(types::Fd(fd), buf.as_ptr(), len as u32)
            .offset(u64::MAX)
            .build()
            .flags(squeue::Flags::IO_LINK);
        let sync = fsync_entry(fd, data_only);
        let submitted = match self.submit(&[write, sync], Box::new((file, buf))) {
            Ok(s) => s,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let (res, keep) = submitted.await;
        let (file, buf) = *keep
            .downcast::<(Arc<std::fs::File>, Vec<u8>)>()
            .expect("write_all_fsync keeps its buffer");
        let written = match check(res[0]) {
            Ok(n) if n as usize == len => return (buf, Ok(check(res[1]).map(drop))),
            Ok(0) => return (buf, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return (buf, Err(e)),
        };
        // Short (or interrupted): the fsync was cancelled with the chain.
        let (buf, res) = self.write_all_from(file.clone(), buf, written, start).await;
        if let Err(e) = res {
            return (buf, Err(e));
        }
        (buf, Ok(self.fsync(file, data_only).await))
    }

    /// Operations submitted to this ring so far (each one enter), for
    /// tests that count them.
    #[doc(hidden)]
    pub fn submissions(&self) -> u64 {
        self.submitted.load(Ordering::Relaxed)
    }

    /// Reads the whole file at `path`. A file up to [`GUESS`] bytes takes
    /// one enter: open into a direct descriptor slot, read, read on to see
    /// the end, close. A larger one (or with no slot free) takes
    /// [`FileRing::read_file_sized`].
    pub async fn read_file(self: &Arc<Self>, path: &Path) -> io::Result<Vec<u8>> {
        let Some(fixed) = self.state.lock().fixed_free.pop() else {
            return self.read_file_sized(path).await;
        };
        let res = self.read_file_direct(path, fixed).await;
        self.state.lock().fixed_free.push(fixed);
        match res {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => self.read_file_sized(path).await,
            Err(e) => Err(e),
        }
    }

    /// The one-enter read of a small file through direct slot `fixed`;
    /// `None` if the file is larger than [`GUESS`].
    async fn read_file_direct(
        self: &Arc<Self>,
        path: &Path,
        fixed: u32,
    ) -> io::Result<Option<Vec<u8>>> {
        let cpath = cstring(path)?;
        let mut buf: Vec<u8> = Vec::with_capacity(GUESS + PROBE);
        let ptr = buf.as_mut_ptr();
        let slot = types::DestinationSlot::try_from_slot_target(fixed)
            .map_err(|_| io::Error::other("bad direct descriptor slot"))?;
        // A failed open cancels the rest of the chain (the slot stays
        // empty); after a successful one the close runs whatever the reads
        // return (hard links).
        let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), cpath.as_ptr())
            // No O_CLOEXEC: the kernel refuses it for a direct slot, which
            // is no process descriptor anyway.
            .flags(libc::O_RDONLY)
            .file_index(Some(slot))
            .build()
            .flags(squeue::Flags::IO_LINK);
        // Both reads at the file's position: the probe goes on where the
        // first read stopped, so it sees the end however short that was.
        let read = opcode::Read::new(types::Fixed(fixed), ptr, GUESS as u32)
            .offset(u64::MAX)
            .build()
            .flags(squeue::Flags::IO_HARDLINK);
        // SAFETY: `GUESS + PROBE` bytes are reserved, so `ptr + GUESS`
        // stays inside the allocation.
        let probe_at = unsafe { ptr.add(GUESS) };
        let probe = opcode::Read::new(types::Fixed(fixed), probe_at, PROBE as u32)
            .offset(u64::MAX)
            .build()
            .flags(squeue::Flags::IO_HARDLINK);
        let close = opcode::Close::new(types::Fixed(fixed)).build();
        let (res, keep) = self
            .submit(&[open, read, probe, close], Box::new((cpath, buf)))?
            .await;
        let (_, mut buf) = *keep
            .downcast::<(CString, Vec<u8>)>()
            .expect("read_file keeps its buffer");
        check(res[0])?;
        let n = check(res[1])? as usize;
        if check(res[2])? != 0 {
            return Ok(None);
        }
        // SAFETY: the kernel wrote `n <= GUESS` bytes at the start.
        unsafe { buf.set_len(n) };
        if n <= GUESS / 2 {
            buf.shrink_to_fit();
        }
        Ok(Some(buf))
    }

    /// Reads the whole file at `path`: an open, then one enter that
    /// reads its size, reads past it to see the end, and closes it.
    async fn read_file_sized(self: &Arc<Self>, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).await?;
        // fstat(2) on an open file reads its in-memory inode: no I/O.
        let size = file.metadata()?.len() as usize;
        if size == 0 || size > (u32::MAX as usize) - PROBE {
            // Files that do not know their size (procfs) or huge ones:
            // read in a loop.
            return self.read_to_end(file).await;
        }
        let fd = file.as_raw_fd();
        let mut buf: Vec<u8> = Vec::with_capacity(size + PROBE);
        let ptr = buf.as_mut_ptr();
        let read = opcode::Read::new(types::Fd(fd), ptr, size as u32)
            .offset(0)
            .build()
            .flags(squeue::Flags::IO_HARDLINK);
        // SAFETY: `size + PROBE` bytes are reserved, so `ptr + size` stays
        // inside the allocation.
        let probe_at = unsafe { ptr.add(size) };
        let probe = opcode::Read::new(types::Fd(fd), probe_at, PROBE as u32)
            .offset(size as u64)
            .build()
            .flags(squeue::Flags::IO_HARDLINK);
        let close = opcode::Close::new(types::Fd(fd)).build();
        // The chain closes the descriptor: the file must not close it too.
        let fd_owner = FdAfterClose(Some(file));
        let (res, keep) = self
            .submit(&[read, probe, close], Box::new((fd_owner, buf)))?
            .await;
        let (mut owner, mut buf) = *keep
            .downcast::<(FdAfterClose, Vec<u8>)>()
            .expect("read_file keeps its buffer");
        if res[2] >= 0 || res[2] == -libc::EBADF {
            owner.closed();
        }
        let n = check(res[0])? as usize;
        let more = check(res[1])?;
        if n == size && more == 0 {
            // SAFETY: the kernel wrote `size` bytes at the start.
            unsafe { buf.set_len(size) };
            return Ok(buf);
        }
        // The file changed size while being read: read it again, to its
        // end, in a loop of reads.
        drop(owner);
        let file = self.open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0).await?;
        self.read_to_end(file).await
    }

    /// Reads `file` to its end in a loop of reads.
    async fn read_to_end(self: &Arc<Self>, file: std::fs::File) -> io::Result<Vec<u8>> {
        let file = Arc::new(file);
        let mut out = Vec::new();
        let mut chunk = Vec::new();
        loop {
            let (back, res) = self.read(file.clone(), chunk, 64 * 1024).await;
            chunk = back;
            match res {
                Ok(0) => return Ok(out),
                Ok(_) => out.extend_from_slice(&chunk),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates or truncates `path` and writes `contents`: an open, then
    /// one enter that writes and closes.
    pub async fn write_file(self: &Arc<Self>, path: &Path, contents: Vec<u8>) -> io::Result<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        let file = self.open(path, flags, 0o666).await?;
        if contents.is_empty() || contents.len() > u32::MAX as usize {
            let (_, res) = self.write_all(Arc::new(file), contents).await;
            return res;
        }
        let fd = file.as_raw_fd();
        let write = opcode::Write::new(types::Fd(fd), contents.as_ptr(), contents.len() as u32)
            .offset(0)
            .build()
            .flags(squeue::Flags::IO_LINK);
        let close = opcode::Close::new(types::Fd(fd)).build();
        let len = contents.len();
        let (res, keep) = self
            .submit(
                &[write, close],
                Box::new((FdAfterClose(Some(file)), contents)),
            )?
            .await;
        let (mut owner, contents) = *keep
            .downcast::<(FdAfterClose, Vec<u8>)>()
            .expect("write_file keeps its buffer");
        if res[1] >= 0 || res[1] == -libc::EBADF {
            owner.closed();
        }
        let n = check(res[0])? as usize;
        if n == len {
            return Ok(());
        }
        // A short write: the close was cancelled with the rest of the
        // chain, the file is still open; write the rest.
        let file = owner.0.take().expect("the file was not closed");
        let (_, res) = self
            .write_all_from(Arc::new(file), contents, n, Some(0))
            .await;
        res
    }
}

/// A file whose descriptor a linked `CLOSE` may have closed: unless told
/// it was, it closes the file itself when dropped.
struct FdAfterClose(Option<std::fs::File>);

impl FdAfterClose {
    /// The chain closed the descriptor: forget the file without closing.
    fn closed(&mut self) {
        if let Some(file) = self.0.take() {
            std::mem::forget(file);
        }
    }
}

/// The file position of `file`; `None` for a file without one (a pipe).
fn position(file: &std::fs::File) -> Option<u64> {
    // SAFETY: lseek(2) on a descriptor `file` holds open.
    let pos = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) };
    u64::try_from(pos).ok()
}

/// Where the rest of a write cut short goes: explicit offsets from
/// `start`, unless the file appends (every write goes to its end then)
/// or has no position.
fn resume_at(fd: RawFd, start: Option<u64>) -> Option<u64> {
    // SAFETY: fcntl(2) F_GETFL on a descriptor the caller holds open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || flags & libc::O_APPEND != 0 {
        return None;
    }
    start
}

/// An `fsync` of `fd` (`fdatasync` with `data_only`).
fn fsync_entry(fd: RawFd, data_only: bool) -> squeue::Entry {
    let mut entry = opcode::Fsync::new(types::Fd(fd));
    if data_only {
        entry = entry.flags(types::FsyncFlags::DATASYNC);
    }
    entry.build()
}

/// The buffer of a finished write's `keep`.
fn take_buf(keep: Box<dyn Any + Send>) -> Vec<u8> {
    keep.downcast::<(Arc<std::fs::File>, Vec<u8>)>()
        .map(|b| b.1)
        .unwrap_or_default()
}

/// A path as the kernel takes it.
fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// A completion's result as an `io::Result`.
fn check(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

impl State {
    /// Reads every completion posted, filling slots; returns the wakers
    /// of the operations that finished (wake them after the lock).
    fn reap(&mut self) -> Vec<Waker> {
        let mut wake = Vec::new();
        let State {
            uring,
            slots,
            free,
            in_flight,
            ..
        } = self;
        if uring.submission().cq_overflow() {
            // Completions kept aside on overflow come in with an enter.
            let _ = uring.submit();
        }
        for cqe in uring.completion() {
            let data = cqe.user_data() as usize;
            let (index, k) = (data / 8, data % 8);
            let slot = &mut slots[index];
            slot.results[k] = cqe.result();
            slot.pending -= 1;
            if slot.pending == 0 {
                *in_flight -= 1;
                if slot.abandoned {
                    *slot = Slot::default();
                    free.push(index);
                } else if let Some(w) = slot.waker.take() {
                    wake.push(w);
                }
            }
        }
        wake
    }
}

/// An operation submitted to the file ring; resolves to its entries'
/// results and what it kept.
struct Submitted<H: FileRingHost> {
    /// The ring.
    ring: Arc<FileRing<H>>,
    /// The operation's slot.
    index: usize,
    /// The result was taken (the slot is free).
    done: bool,
    /// The ring descriptor's registration, held while this waits.
    watch: Option<Arc<H::Watch>>,
    /// This operation did not complete inline.
    waited: bool,
}

impl<H: FileRingHost> Submitted<H> {
    /// Reads completions; takes this operation's result if it is in.
    fn try_take(&mut self, cx: &mut Context<'_>) -> Option<<Self as Future>::Output> {
        let mut state = self.ring.state.lock();
        let mut wake = Vec::new();
        if state.slots[self.index].pending > 0 {
            if !state.uring.submission().is_empty() {
                // Entries an enter could not take earlier (EBUSY): they
                // must reach the kernel before anything waits for them.
                let _ = state.uring.submit();
            }
            wake = state.reap();
        }
        let index = self.index;
        let out = if state.slots[index].pending == 0 {
            let slot = std::mem::take(&mut state.slots[index]);
            state.free.push(index);
            self.done = true;
            Some((
                slot.results,
                slot.keep.expect("a finished slot keeps its data"),
            ))
        } else {
            let slot = &mut state.slots[index];
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            None
        };
        drop(state);
        wake.into_iter().for_each(Waker::wake);
        out
    }
}

impl<H: FileRingHost> Future for Submitted<H> {
    type Output = ([i32; MAX_CHAIN], Box<dyn Any + Send>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            if let Some(out) = self.try_take(cx) {
                self.watch = None;
                if !self.waited {
                    self.ring.inline_done();
                }
                return Poll::Ready(out);
            }
            self.waited = true;
            // Waiting: the completion comes either through another task
            // that reads it (which wakes this one) or through the ring's
            // readiness, watched from now on (a ring that already holds
            // completions polls readable at once).
            if self.watch.is_none() {
                match self.ring.watch() {
                    Ok(reg) => self.watch = Some(reg),
                    // No reactor to watch with (the runtime is gone): wait
                    // for the kernel here.
                    Err(_) => {
                        let _ = self.ring.state.lock().uring.submit_and_wait(1);
                        continue;
                    }
                }
            }
            let reg = self.watch.clone().expect("set above");
            match reg.poll_ready(cx, Direction::Read) {
                Poll::Ready(Ok(ev)) => {
                    // Read what the readiness announced before forgetting
                    // it; a completion posted after the clear raises it
                    // again with a newer tick.
                    if let Some(out) = self.try_take(cx) {
                        self.watch = None;
                        return Poll::Ready(out);
                    }
                    reg.clear(ev);
                }
                Poll::Ready(Err(_)) => {
                    self.watch = None;
                    let _ = self.ring.state.lock().uring.submit_and_wait(1);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<H: FileRingHost> Drop for Submitted<H> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.ring.state.lock();
        let slot = &mut state.slots[self.index];
        if slot.pending == 0 {
            *slot = Slot::default();
            state.free.push(self.index);
        } else {
            // The kernel still uses what the slot keeps: leave it there.
            slot.abandoned = true;
            slot.waker = None;
        }
    }
}

impl<H: FileRingHost> Drop for FileRing<H> {
    fn drop(&mut self) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if state.in_flight == 0 {
            return;
        }
        // Abandoned operations still use buffers this ring frees: let them
        // finish (a write dropped with its `File` must land), and cancel
        // what is still waiting after a while (a read of an idle pipe).
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut cancelled = false;
        while state.in_flight > 0 {
            if !cancelled && std::time::Instant::now() >= give_up {
                cancelled = true;
                let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any().all())
                    .build()
                    .user_data(u64::MAX);
                // SAFETY: a cancel points to no memory.
                let _ = unsafe { state.uring.submission().push(&cancel) };
            }
            let wait = types::Timespec::new().nsec(10_000_000);
            let args = types::SubmitArgs::new().timespec(&wait);
            match state.uring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => {}
                Err(_) => break,
            }
            let State {
                uring,
                slots,
                in_flight,
                ..
            } = state;
            for cqe in uring.completion() {
                if cqe.user_data() == u64::MAX {
                    continue;
                }
                let data = cqe.user_data() as usize;
                let slot = &mut slots[data / 8];
                slot.pending -= 1;
                if slot.pending == 0 {
                    *in_flight -= 1;
                }
            }
        }
    }
}
