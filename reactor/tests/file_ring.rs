//! The file ring on its own, with a host that has no reactor: every
//! operation that does not complete inline waits for the kernel in place.
//! The runtime's tests (tests/fs.rs, tests/fs_sync.rs) cover the ring
//! behind `kevent::fs` with a reactor delivering its readiness.

#![cfg(target_os = "linux")]

use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use kevent_reactor::{Direction, FileRing, FileRingHost, Readiness, Ready};

/// A host without a reactor: the ring cannot register its descriptor.
struct NoReactor;

/// Never made: `NoReactor::watch` always fails.
enum NoWatch {}

impl Readiness for NoWatch {
    type Event = ();
    fn poll_ready(&self, _: &mut Context<'_>, _: Direction) -> Poll<io::Result<()>> {
        match *self {}
    }
    fn current(&self, _: Direction) -> Option<()> {
        match *self {}
    }
    fn clear(&self, _: ()) {
        match *self {}
    }
    fn clear_with_closed(&self, _: ()) {
        match *self {}
    }
    fn ready(_: ()) -> Ready {
        unreachable!("no event is ever observed")
    }
}

impl FileRingHost for NoReactor {
    type Watch = NoWatch;
    fn watch(&self, _: RawFd) -> io::Result<Arc<NoWatch>> {
        Err(io::Error::other("no reactor"))
    }
    fn running(&self) -> bool {
        false
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

fn ring() -> Option<Arc<FileRing<NoReactor>>> {
    match FileRing::new(NoReactor) {
        Ok(ring) => Some(Arc::new(ring)),
        Err(e) => {
            eprintln!("no io_uring here ({e}): nothing to check");
            None
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kevent-file-ring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn whole_files_small_and_large_go_through_and_back() {
    let Some(ring) = ring() else { return };
    for (name, len) in [("empty", 0usize), ("small", 1000), ("large", 200_000)] {
        let path = scratch(name);
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        block_on(ring.write_file(&path, bytes.clone())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: written");
        assert_eq!(
            block_on(ring.read_file(&path)).unwrap(),
            bytes,
            "{name}: read"
        );
        let copy = scratch(&format!("{name}.copy"));
        let n = block_on(ring.copy(&path, &copy)).unwrap();
        assert_eq!(n, len as u64);
        assert_eq!(std::fs::read(&copy).unwrap(), bytes, "{name}: copied");
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&copy).unwrap();
    }
}

#[test]
fn errors_come_back_as_the_kernel_gave_them() {
    let Some(ring) = ring() else { return };
    let missing = scratch("missing");
    let err = block_on(ring.read_file(&missing)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(!block_on(ring.try_exists(&missing)).unwrap());
    let err = block_on(ring.open(&missing, libc::O_RDONLY, 0)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let nul = std::path::Path::new("a\0b");
    let err = block_on(ring.read_file(nul)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn a_file_written_and_synced_reads_back_with_its_metadata() {
    let Some(ring) = ring() else { return };
    let path = scratch("synced");
    let file = block_on(ring.open(
        &path,
        libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        0o600,
    ))
    .unwrap();
    let file = Arc::new(file);
    let (buf, res) = block_on(ring.write_all_fsync(file.clone(), b"hello ring".to_vec(), true));
    res.unwrap().unwrap();
    assert_eq!(buf, b"hello ring");
    let meta = block_on(ring.file_metadata(file.clone())).unwrap();
    assert_eq!(meta.len(), 10);
    if ring.has_ftruncate() {
        block_on(ring.set_len(file.clone(), 5)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
    }
    ring.forget_ftruncate();
    let err = block_on(ring.set_len(file, 1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    std::fs::remove_file(&path).unwrap();
}
