//! `OpenOptions`: how to open a file, as `std::fs::OpenOptions`.

use std::io;
use std::path::Path;

use super::File;

/// Options for opening a file: read, write, append, truncate, create,
/// create_new, and on Unix the mode and extra `open(2)` flags. The same
/// rules as `std::fs::OpenOptions`.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// use kevent_runtime::fs::OpenOptions;
/// use kevent_runtime::io::AsyncWriteExt;
///
/// let path = std::env::temp_dir().join(format!("kevent-oo-doc-{}", std::process::id()));
/// let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&path).await?;
/// file.write_all(b"log line\n").await?;
/// file.flush().await?;
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Open for reading.
    read: bool,
    /// Open for writing.
    write: bool,
    /// Writes go to the end of the file.
    append: bool,
    /// Truncate the file to 0 bytes.
    truncate: bool,
    /// Create the file if it is missing.
    create: bool,
    /// Create the file, failing if it exists.
    create_new: bool,
    /// Permission bits of a created file (before the umask).
    mode: u32,
    /// Extra `open(2)` flags (the access mode bits are ignored).
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Every option off; mode `0o666`.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Append: every write goes to the end of the file (implies write).
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncate an existing file to 0 bytes (needs write).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs write or append).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// Permission bits of a created file (before the umask).
    #[cfg(unix)]
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Extra flags passed to `open(2)` (the access mode bits are ignored).
    #[cfg(unix)]
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.custom_flags = flags;
        self
    }

    /// Opens the file at `path` with these options.
    ///
    /// Errors as `std::fs::OpenOptions::open`: `NotFound`, `AlreadyExists`
    /// with `create_new`, `PermissionDenied`, `InvalidInput` for a
    /// combination that makes no sense (no access mode, truncate without
    /// write), and the OS's (`EMFILE` when out of descriptors).
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        #[cfg(target_os = "linux")]
        if let Some(ring) = super::ring() {
            let flags = self.open_flags()?;
            let std = ring.open(&path, flags, self.mode).await?;
            return Ok(File::with_ring(std, Some(ring)));
        }
        let opts = self.to_std();
        let std = super::asyncify(move || opts.open(path)).await?;
        Ok(File::from_std(std))
    }

    /// The same options as a `std::fs::OpenOptions`.
    pub(crate) fn to_std(&self) -> std::fs::OpenOptions {
        let mut o = std::fs::OpenOptions::new();
        o.read(self.read)
            .write(self.write)
            .append(self.append)
            .truncate(self.truncate)
            .create(self.create)
            .create_new(self.create_new);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(self.mode).custom_flags(self.custom_flags);
        }
        o
    }

    /// The `open(2)` flags these options stand for, refusing the
    /// combinations `std::fs::OpenOptions` refuses.
    #[cfg(target_os = "linux")]
    pub(crate) fn open_flags(&self) -> io::Result<i32> {
        let invalid = || Err(io::Error::from_raw_os_error(libc::EINVAL));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return invalid(),
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return invalid();
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return invalid();
                }
            }
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (false, false, false) => 0,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
        };
        Ok(libc::O_CLOEXEC | access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}
