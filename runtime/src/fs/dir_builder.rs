//! `DirBuilder`: how to create a directory, as `std::fs::DirBuilder`.

use std::io;
use std::path::Path;

/// Creates directories: optionally with every missing parent, and on Unix
/// with given permission bits.
///
/// ```
/// # kevent_runtime::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("kevent-dirb-doc-{}", std::process::id()));
/// kevent_runtime::fs::DirBuilder::new().recursive(true).create(dir.join("a/b")).await?;
/// assert!(dir.join("a/b").is_dir());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct DirBuilder {
    /// Create missing parents too.
    recursive: bool,
    /// Permission bits of created directories (before the umask); `None`
    /// for the default `0o777`.
    mode: Option<u32>,
}

impl DirBuilder {
    /// Not recursive; default permissions.
    pub fn new() -> DirBuilder {
        DirBuilder::default()
    }

    /// Create missing parents too (no error if the directory exists).
    pub fn recursive(&mut self, recursive: bool) -> &mut DirBuilder {
        self.recursive = recursive;
        self
    }

    /// Permission bits of created directories (before the umask).
    #[cfg(unix)]
    pub fn mode(&mut self, mode: u32) -> &mut DirBuilder {
        self.mode = Some(mode);
        self
    }

    /// Creates the directory at `path`.
    pub async fn create(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref().to_owned();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(self.recursive);
        #[cfg(unix)]
        if let Some(mode) = self.mode {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(mode);
        }
        super::asyncify(move || builder.create(path)).await
    }
}
