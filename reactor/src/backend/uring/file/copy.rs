//! `fs::copy` through the file ring.
//!
//! Both files are opened through the ring; the destination gets the
//! source's permission bits, as `std::fs::copy` gives them (at the open,
//! then on the open file, so the umask and an existing file's mode do not
//! stay). The bytes then move in linked chains at explicit offsets: a read
//! of up to [`CHUNK`] bytes, the write of what it read, and for the last
//! chunk the source's size promised, a one-byte read past it that sees the
//! end. A file that fits in one chunk is copied in one enter. A read that
//! comes back short breaks the chain (the kernel cancels the linked write),
//! and the bytes it did read are written on their own; the copy goes on
//! until a read finds the end, so a file that grew while being copied is
//! copied whole, as std's is.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use io_uring::{opcode, squeue, types};

use super::{check, FileRing, FileRingHost};

/// Most bytes one read-and-write pair moves.
const CHUNK: usize = 1024 * 1024;

/// What a copy chain keeps alive until its last completion: the two
/// files (their descriptors) and the buffer.
type Keep = (Arc<std::fs::File>, Arc<std::fs::File>, Vec<u8>);

impl<H: FileRingHost> FileRing<H> {
    /// Copies the contents and permission bits of `from` to `to`;
    /// returns the bytes copied.
    pub async fn copy(self: &Arc<Self>, from: &Path, to: &Path) -> io::Result<u64> {
        let src = self.open(from, libc::O_RDONLY | libc::O_CLOEXEC, 0).await?;
        // fstat(2) on an open file reads its in-memory inode: no I/O.
        let meta = src.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the source path is neither a regular file nor a symlink to a regular file",
            ));
        }
        let perm = meta.permissions();
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        let dst = self.open(to, flags, perm.mode()).await?;
        if dst.metadata()?.is_file() {
            // fchmod(2): the mode the open asked for was masked by the
            // umask, or the file existed with its own.
            dst.set_permissions(perm)?;
        }
        let size = meta.len();
        let mut buf = Vec::with_capacity(CHUNK.min(size as usize).max(4096) + 1);
        let (src, dst) = (Arc::new(src), Arc::new(dst));
        let mut copied = 0u64;
        loop {
            let room = buf.capacity() - 1;
            let (want, probe) = match size.saturating_sub(copied) {
                // Past the size the source claimed (it grew, or it is a
                // file that does not know its size): whole chunks until a
                // read finds the end.
                0 => (room, false),
                // The last chunk the size promises: look for the end too.
                left if left <= room as u64 => (left as usize, true),
                _ => (room, false),
            };
            let (step, back) = self
                .copy_chunk(&src, &dst, buf, copied, want, probe)
                .await?;
            buf = back;
            match step {
                Step::Done(n) => return Ok(copied + n as u64),
                Step::More(n) => copied += n as u64,
            }
        }
    }

    /// Copies up to `want` bytes at `at`: a read, the write linked to it,
    /// and with `probe` a one-byte read past them.
    async fn copy_chunk(
        self: &Arc<Self>,
        src: &Arc<std::fs::File>,
        dst: &Arc<std::fs::File>,
        mut buf: Vec<u8>,
        at: u64,
        want: usize,
        probe: bool,
    ) -> io::Result<(Step, Vec<u8>)> {
        buf.clear();
        let (sfd, dfd, ptr) = (src.as_raw_fd(), dst.as_raw_fd(), buf.as_mut_ptr());
        let read = opcode::Read::new(types::Fd(sfd), ptr, want as u32)
            .offset(at)
            .build()
            .flags(squeue::Flags::IO_LINK);
        let mut write = opcode::Write::new(types::Fd(dfd), ptr, want as u32)
            .offset(at)
            .build();
        let mut chain = vec![read];
        if probe {
            write = write.flags(squeue::Flags::IO_LINK);
            chain.push(write);
            // SAFETY: the buffer holds `want + 1` bytes or more
            // (`want < capacity`), so `ptr + want` stays inside it.
            let end = unsafe { ptr.add(want) };
            chain.push(
                opcode::Read::new(types::Fd(sfd), end, 1)
                    .offset(at + want as u64)
                    .build(),
            );
        } else {
            chain.push(write);
        }
        let keep: Keep = (src.clone(), dst.clone(), buf);
        let (res, keep) = self.submit(&chain, Box::new(keep))?.await;
        let (_, _, mut buf) = *keep.downcast::<Keep>().expect("copy keeps its buffer");
        let n = check(res[0])? as usize;
        if n == 0 {
            return Ok((Step::Done(0), buf));
        }
        // SAFETY: the kernel wrote `n <= want` bytes at the start.
        unsafe { buf.set_len(n) };
        if n < want || res[1] == -libc::ECANCELED {
            // A short read broke the chain: write what it read.
            let buf = self.write_all_at(dst, buf, 0, at).await?;
            return Ok((Step::More(n), buf));
        }
        let written = check(res[1])? as usize;
        if written < n {
            // A short write: the probe was cancelled; write the rest.
            let buf = self.write_all_at(dst, buf, written, at).await?;
            return Ok((Step::More(n), buf));
        }
        if probe && check(res[2])? == 0 {
            return Ok((Step::Done(n), buf));
        }
        // No probe, or the source grew: on from the next offset.
        Ok((Step::More(n), buf))
    }

    /// Writes `buf[from..]` at offset `at + from` of `dst`, in as many
    /// writes as it takes; the buffer comes back.
    async fn write_all_at(
        self: &Arc<Self>,
        dst: &Arc<std::fs::File>,
        buf: Vec<u8>,
        mut from: usize,
        at: u64,
    ) -> io::Result<Vec<u8>> {
        let mut keep: Box<Keep> = Box::new((dst.clone(), dst.clone(), buf));
        while from < keep.2.len() {
            let len = keep.2.len() - from;
            // SAFETY: `from < len()`, inside the buffer.
            let ptr = unsafe { keep.2.as_ptr().add(from) };
            let entry = opcode::Write::new(types::Fd(dst.as_raw_fd()), ptr, len as u32)
                .offset(at + from as u64)
                .build();
            let (res, back) = self.submit(&[entry], keep)?.await;
            keep = back.downcast::<Keep>().expect("copy keeps its buffer");
            match check(res[0]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => from += w as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(keep.2)
    }
}

/// What one chunk of a copy did.
enum Step {
    /// Copied this many bytes and saw the end of the source.
    Done(usize),
    /// Copied this many bytes; more may follow.
    More(usize),
}
