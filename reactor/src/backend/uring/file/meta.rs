//! Metadata and length through the file ring: `statx` and `ftruncate`.
//!
//! # Why `metadata` calls `statx` twice
//!
//! tokio's `fs::metadata`, `fs::symlink_metadata` and `File::metadata`
//! return `std::fs::Metadata`, and so do ours: a port must not see another
//! type. std gives that type no constructor, so a `statx` buffer the ring
//! filled cannot become one. What the ring can do is the part that waits:
//! it resolves the path and reads the inode (from the disk if it must; on a
//! network filesystem it refreshes the attributes), and it gives the error
//! if there is one (`NotFound`, `PermissionDenied`, ...). After a
//! successful ring `statx` the worker asks std for the `Metadata` inline,
//! and that call finds the path and the inode in the kernel's caches: a
//! microsecond, no disk, no blocking-pool hop. If the file changed between
//! the two calls, the answer is the later state, which is as true as the
//! earlier one. Where the ring's `statx` gives the whole answer (whether a
//! path exists, a size), the second call is not made.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, types};

use crate::loom::sync::atomic::Ordering;

use super::{check, cstring, FileRing, FileRingHost};

/// `IORING_OP_FTRUNCATE` not probed yet.
pub(super) const FTRUNCATE_UNKNOWN: u8 = 0;
/// The kernel has `IORING_OP_FTRUNCATE` (Linux 6.9 and later).
const FTRUNCATE_YES: u8 = 1;
/// The kernel lacks it: the runtime truncates on its blocking pool.
const FTRUNCATE_NO: u8 = 2;

/// Where a `statx` starts from.
enum StatxAt {
    /// A path, relative to the working directory if not absolute.
    Path(CString),
    /// An open file (`AT_EMPTY_PATH`), kept open while the kernel uses it.
    File(Arc<std::fs::File>),
}

impl<H: FileRingHost> FileRing<H> {
    /// `statx(2)` of `path` through the ring: follows a final symbolic
    /// link unless `nofollow`; `mask` says which fields are wanted.
    pub async fn statx_path(
        self: &Arc<Self>,
        path: &Path,
        nofollow: bool,
        mask: u32,
    ) -> io::Result<libc::statx> {
        let flags = if nofollow {
            libc::AT_SYMLINK_NOFOLLOW
        } else {
            0
        };
        self.statx(StatxAt::Path(cstring(path)?), flags, mask).await
    }

    /// `statx(2)` of an open file through the ring.
    pub async fn statx_file(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
        mask: u32,
    ) -> io::Result<libc::statx> {
        self.statx(StatxAt::File(file), libc::AT_EMPTY_PATH, mask)
            .await
    }

    async fn statx(
        self: &Arc<Self>,
        at: StatxAt,
        flags: i32,
        mask: u32,
    ) -> io::Result<libc::statx> {
        // SAFETY: `statx` is plain data; all zeroes is a valid value.
        let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
        let (dirfd, path) = match &at {
            StatxAt::Path(path) => (libc::AT_FDCWD, path.as_ptr()),
            StatxAt::File(file) => (file.as_raw_fd(), c"".as_ptr()),
        };
        let entry = opcode::Statx::new(
            types::Fd(dirfd),
            path,
            (&mut *buf as *mut libc::statx).cast::<types::statx>(),
        )
        .flags(flags)
        .mask(mask)
        .build();
        // The path (or the file) and the buffer are the slot's until the
        // completion: the kernel reads one and writes the other.
        let (res, keep) = self.submit(&[entry], Box::new((at, buf)))?.await;
        check(res[0])?;
        let (_, buf) = *keep
            .downcast::<(StatxAt, Box<libc::statx>)>()
            .expect("statx keeps its buffer");
        Ok(*buf)
    }

    /// `fs::metadata` (or `fs::symlink_metadata` with `nofollow`): the
    /// ring's `statx`, then std's from the caches (see the module docs).
    pub async fn metadata(
        self: &Arc<Self>,
        path: &Path,
        nofollow: bool,
    ) -> io::Result<std::fs::Metadata> {
        self.statx_path(path, nofollow, libc::STATX_BASIC_STATS)
            .await?;
        if nofollow {
            std::fs::symlink_metadata(path)
        } else {
            std::fs::metadata(path)
        }
    }

    /// `File::metadata`: the ring's `statx` of the open file, then std's
    /// `fstat` of its in-memory inode (see the module docs).
    pub async fn file_metadata(
        self: &Arc<Self>,
        file: Arc<std::fs::File>,
    ) -> io::Result<std::fs::Metadata> {
        self.statx_file(file.clone(), libc::STATX_BASIC_STATS)
            .await?;
        file.metadata()
    }

    /// Whether `path` exists: the ring's `statx` alone, following links.
    pub async fn try_exists(self: &Arc<Self>, path: &Path) -> io::Result<bool> {
        match self.statx_path(path, false, libc::STATX_TYPE).await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the kernel has `IORING_OP_FTRUNCATE` (Linux 6.9 and later),
    /// probed once per ring: where it does not, [`FileRing::set_len`]
    /// fails with `Unsupported` and the caller truncates another way. The
    /// probe decides, not an `EINVAL` completion: `ftruncate` answers
    /// `EINVAL` itself for a file not open for writing.
    pub fn has_ftruncate(&self) -> bool {
        match self.ftruncate.load(Ordering::Relaxed) {
            FTRUNCATE_YES => return true,
            FTRUNCATE_NO => return false,
            _ => {}
        }
        let mut probe = io_uring::Probe::new();
        let yes = {
            let state = self.state.lock();
            state.uring.submitter().register_probe(&mut probe).is_ok()
                && probe.is_supported(opcode::Ftruncate::CODE)
        };
        let known = if yes { FTRUNCATE_YES } else { FTRUNCATE_NO };
        self.ftruncate.store(known, Ordering::Relaxed);
        yes
    }

    /// Makes the ring act as on a kernel without `IORING_OP_FTRUNCATE`,
    /// for tests of the caller's other way.
    #[doc(hidden)]
    pub fn forget_ftruncate(&self) {
        self.ftruncate.store(FTRUNCATE_NO, Ordering::Relaxed);
    }

    /// `ftruncate(2)` through the ring; `Unsupported` on a kernel without
    /// the opcode (see [`FileRing::has_ftruncate`]).
    pub async fn set_len(self: &Arc<Self>, file: Arc<std::fs::File>, size: u64) -> io::Result<()> {
        if !self.has_ftruncate() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel has no IORING_OP_FTRUNCATE",
            ));
        }
        let entry = opcode::Ftruncate::new(types::Fd(file.as_raw_fd()), size).build();
        let (res, _) = self.submit(&[entry], Box::new(file))?.await;
        check(res[0]).map(drop)
    }
}
