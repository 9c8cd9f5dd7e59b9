//! Asynchronous filesystem operations, with tokio's `fs` API.
//!
//! On io_uring (Linux, the default backend there) the calls that move
//! bytes or wait for the disk (opening and closing files, `read`,
//! `write`, the reads and writes of a [`File`], `sync_all`, `sync_data`,
//! `set_len`, [`copy`], [`try_exists`], the path lookup of [`metadata`]) are submitted to a small io_uring of the runtime's own
//! and complete without a thread hop: a worker submits, and a page-cache
//! hit completes inside that submission. Everything else, and everything
//! on the mio backend, runs on the blocking pool ([`spawn_blocking`]), as
//! tokio's `fs` does. `KEVENT_FS=blocking` keeps every call on the pool.
//!
//! ```
//! # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = std::env::temp_dir().join(format!("kevent-fs-doc-{}", std::process::id()));
//! kevent_runtime::fs::create_dir_all(&dir).await?;
//! let path = dir.join("hello.txt");
//! kevent_runtime::fs::write(&path, b"hello").await?;
//! assert_eq!(kevent_runtime::fs::read_to_string(&path).await?, "hello");
//! kevent_runtime::fs::remove_dir_all(&dir).await?;
//! # Ok::<(), std::io::Error>(())
//! # }).unwrap();
//! ```
//!
//! [`spawn_blocking`]: crate::task::spawn_blocking

mod dir_builder;
mod file;
mod open_options;
mod read_dir;
#[cfg(target_os = "linux")]
pub(crate) mod ring;

pub use dir_builder::DirBuilder;
pub use file::File;
pub use open_options::OpenOptions;
pub use read_dir::{read_dir, DirEntry, ReadDir};

use std::io;
use std::path::{Path, PathBuf};

/// Runs `f` on the blocking pool and returns its result; a panic in `f`
/// or a runtime shutting down becomes an `io::Error`.
pub(crate) async fn asyncify<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match crate::task::spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) => Err(io::Error::other(format!(
            "blocking filesystem task failed: {e}"
        ))),
    }
}

/// The runtime's file ring, where file I/O goes through io_uring; `None`
/// on the blocking pool.
#[cfg(target_os = "linux")]
pub(crate) fn ring() -> Option<std::sync::Arc<ring::FileRing>> {
    ring::current()
}

/// Runs `body` with the file ring of a current-thread io_uring runtime, for
/// unit tests that count the ring's submissions; says why and does nothing
/// where there is none (no io_uring, or `KEVENT_FS=blocking`).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn with_test_ring<Fut: std::future::Future<Output = ()>>(
    body: impl FnOnce(std::sync::Arc<ring::FileRing>) -> Fut,
) {
    let Ok(rt) = crate::runtime::Builder::new_current_thread()
        .backend(crate::runtime::Backend::Uring)
        .build()
    else {
        eprintln!("no io_uring here: nothing to check");
        return;
    };
    rt.block_on(async {
        match ring() {
            Some(ring) => body(ring).await,
            None => {
                eprintln!("file I/O on the blocking pool (KEVENT_FS=blocking): nothing to check")
            }
        }
    });
}

/// The runtime's file ring: never, off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn ring() -> Option<std::sync::Arc<std::convert::Infallible>> {
    None
}

/// Reads the whole file at `path`, as `std::fs::read` does.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.read_file(&path).await;
    }
    asyncify(move || std::fs::read(path)).await
}

/// Reads the whole file at `path` into a `String`; fails if it is not
/// UTF-8.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
}

/// Writes `contents` to the file at `path`, creating it or truncating it.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.write_file(&path, contents).await;
    }
    asyncify(move || std::fs::write(path, contents)).await
}

/// Copies the contents and permissions of `from` to `to`; returns the
/// bytes copied. `to` is created or truncated; `from` must be a regular
/// file (or a link to one).
///
/// On io_uring both files are opened, and the bytes read and written, by
/// linked chains through the file ring (a file up to 1 MiB in one enter
/// after the opens); on mio `std::fs::copy` runs on the blocking pool.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.copy(&from, &to).await;
    }
    asyncify(move || std::fs::copy(from, to)).await
}

/// Creates a directory; its parent must exist.
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::create_dir(path)).await
}

/// Creates a directory and every missing parent.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::create_dir_all(path)).await
}

/// Removes a file (or a symbolic link).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_file(path)).await
}

/// Removes an empty directory.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_dir(path)).await
}

/// Removes a directory and everything in it.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_dir_all(path)).await
}

/// Renames `from` to `to`, replacing `to` if it exists.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    asyncify(move || std::fs::rename(from, to)).await
}

/// The metadata of `path`, following symbolic links.
///
/// On io_uring the path is resolved by a `statx` through the file ring,
/// which gives the error if any; std's `Metadata` (which has no public
/// constructor) is then read on the worker from the kernel's caches.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = path.as_ref().to_owned();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.metadata(&path, false).await;
    }
    asyncify(move || std::fs::metadata(path)).await
}

/// The metadata of `path` itself, not following a symbolic link; on
/// io_uring through the file ring as [`metadata`] is.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = path.as_ref().to_owned();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.metadata(&path, true).await;
    }
    asyncify(move || std::fs::symlink_metadata(path)).await
}

/// The absolute path of `path`, with every symbolic link resolved.
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::canonicalize(path)).await
}

/// Creates a hard link `dst` to the file `src`.
pub async fn hard_link(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> io::Result<()> {
    let (src, dst) = (src.as_ref().to_owned(), dst.as_ref().to_owned());
    asyncify(move || std::fs::hard_link(src, dst)).await
}

/// The target of the symbolic link `path`.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::read_link(path)).await
}

/// Creates a symbolic link `dst` pointing to `src`.
#[cfg(unix)]
pub async fn symlink(src: impl AsRef<Path>, dst: impl AsRef<Path>) -> io::Result<()> {
    let (src, dst) = (src.as_ref().to_owned(), dst.as_ref().to_owned());
    asyncify(move || std::os::unix::fs::symlink(src, dst)).await
}

/// Sets the permissions of `path`.
pub async fn set_permissions(path: impl AsRef<Path>, perm: std::fs::Permissions) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::set_permissions(path, perm)).await
}

/// Whether `path` exists: `Ok(false)` if it does not, an error if that
/// cannot be told (a permission denied on a parent, for example). Follows
/// symbolic links, so a broken link does not exist.
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = path.as_ref().to_owned();
    #[cfg(target_os = "linux")]
    if let Some(ring) = ring() {
        return ring.try_exists(&path).await;
    }
    asyncify(move || path.try_exists()).await
}
