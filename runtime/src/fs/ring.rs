//! The runtime's side of the file ring: which runtime has one, and how the
//! ring waits on the runtime's reactor.
//!
//! The ring itself (its io_uring, submission, completions, the operations)
//! lives in the reactor crate (`kevent_reactor::FileRing`); ARCHITECTURE.md
//! ("Files") tells how an operation goes through it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::driver::Registration;
use crate::runtime::Handle;

/// A runtime's file ring.
pub(crate) type FileRing = kevent_reactor::FileRing<Host>;

/// The runtime a file ring belongs to (weak: the runtime holds the ring).
pub(crate) struct Host {
    runtime: Weak<crate::scheduler::Shared>,
}

impl kevent_reactor::FileRingHost for Host {
    type Watch = Registration;

    fn watch(&self, fd: RawFd) -> io::Result<Arc<Registration>> {
        let shared = self
            .runtime
            .upgrade()
            .ok_or_else(|| io::Error::other("the runtime of this file ring is gone"))?;
        Ok(Arc::new(Registration::new_fd_on(
            &Handle { shared },
            fd,
            kevent_reactor::Interest::READABLE,
        )?))
    }

    fn running(&self) -> bool {
        self.runtime
            .upgrade()
            .is_some_and(|shared| !shared.shutdown.load(Ordering::Acquire))
    }
}

/// Whether `KEVENT_FS` asks for the blocking pool.
fn blocking_asked() -> bool {
    static ASKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ASKED.get_or_init(|| std::env::var("KEVENT_FS").is_ok_and(|v| v == "blocking"))
}

/// The current runtime's file ring, made on first use; `None` outside a
/// runtime, off io_uring, with `KEVENT_FS=blocking`, or when the kernel
/// refuses a ring.
pub(crate) fn current() -> Option<Arc<FileRing>> {
    let handle = Handle::try_current().ok()?;
    handle
        .shared
        .file_ring
        .get_or_init(|| {
            if blocking_asked() || handle.shared.kevent.backend_name() != "io_uring" {
                return None;
            }
            let host = Host {
                runtime: Arc::downgrade(&handle.shared),
            };
            FileRing::new(host).ok().map(Arc::new)
        })
        .clone()
}

/// `ftruncate(2)` through the ring where the kernel has it, on the
/// blocking pool where not.
pub(crate) async fn set_len(
    ring: &Arc<FileRing>,
    file: Arc<std::fs::File>,
    size: u64,
) -> io::Result<()> {
    if ring.has_ftruncate() {
        return ring.set_len(file, size).await;
    }
    super::asyncify(move || file.set_len(size)).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn set_len_uses_the_ring_where_the_kernel_has_ftruncate_and_the_pool_where_not() {
        crate::fs::with_test_ring(|ring| async move {
            let path = std::env::temp_dir().join(format!("kevent-ftrunc-{}", std::process::id()));
            let file = Arc::new(std::fs::File::create(&path).unwrap());
            let before = ring.submissions();
            super::set_len(&ring, file.clone(), 1000).await.unwrap();
            assert_eq!(file.metadata().unwrap().len(), 1000);
            let through_ring = ring.submissions() - before;
            if ring.has_ftruncate() {
                assert_eq!(through_ring, 1, "the ftruncate did not go through the ring");
            } else {
                assert_eq!(through_ring, 0);
            }
            // A kernel without the opcode: the pool does it, the ring sees
            // nothing.
            ring.forget_ftruncate();
            let before = ring.submissions();
            super::set_len(&ring, file.clone(), 10).await.unwrap();
            assert_eq!(file.metadata().unwrap().len(), 10);
            assert_eq!(ring.submissions() - before, 0);
            std::fs::remove_file(&path).unwrap();
        });
    }
}
