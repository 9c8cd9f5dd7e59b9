//! The buffer pool multishot receives take their buffers from: a
//! provided-buffer ring shared with the kernel. The kernel picks a buffer
//! when data arrives; whoever drains the completion queue copies the bytes
//! out and hands the buffer straight back (`RecycleOnDrop`), so a socket
//! that is not read never holds one.

use std::io;
// std's atomics, not the loom shim's: the tail is memory shared with the
// kernel (see `loom.rs`).
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{types, IoUring};

/// The provided-buffer group receives take their buffers from.
pub(super) const BUF_GROUP: u16 = 0;

/// Buffers in the pool (a power of two).
const BUFS: u16 = 512;

/// Bytes per buffer.
const BUF_SIZE: usize = 4096;

/// The provided-buffer ring: `BUFS` buffers of `BUF_SIZE` bytes the kernel
/// takes from when a receive completes, given back by the harvester.
pub(super) struct BufPool {
    /// The ring of buffer descriptors, page aligned, shared with the kernel.
    ring: std::ptr::NonNull<types::BufRingEntry>,
    /// The buffers.
    mem: Box<[u8]>,
    /// Our tail (the kernel's copy is published by `publish`); touched by
    /// the harvester only.
    tail: AtomicU16,
}

// SAFETY: the descriptor ring is written only by the harvester (one thread
// at a time, by the ring's role protocol) and read by the kernel; `mem` is
// written by the kernel and read by the harvester after the completion that
// names it.
unsafe impl Send for BufPool {}

// SAFETY: as for Send.
unsafe impl Sync for BufPool {}

impl BufPool {
    fn ring_layout() -> std::alloc::Layout {
        let size = BUFS as usize * std::mem::size_of::<types::BufRingEntry>();
        std::alloc::Layout::from_size_align(size, 4096).expect("a valid layout")
    }

    /// Allocates the pool and registers it with `ring`.
    pub(super) fn new(ring: &IoUring) -> io::Result<BufPool> {
        let layout = Self::ring_layout();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        let ring_ptr = std::ptr::NonNull::new(ptr)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let pool = BufPool {
            ring: ring_ptr,
            mem: vec![0u8; BUFS as usize * BUF_SIZE].into_boxed_slice(),
            tail: AtomicU16::new(0),
        };
        for bid in 0..BUFS {
            pool.recycle(bid);
        }
        pool.publish();
        // SAFETY: the descriptor ring is `BUFS` entries, page aligned, and
        // lives until the pool drops, which unregisters it first.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, BUFS, BUF_GROUP, 0)?;
        }
        Ok(pool)
    }

    /// Puts buffer `bid` back in the ring (visible to the kernel after
    /// `publish`).
    pub(super) fn recycle(&self, bid: u16) {
        let tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: the index is masked into the ring's `BUFS` entries; only
        // the harvester writes descriptors, and the kernel reads only those
        // below the published tail, which this one is not yet.
        let entry = unsafe { &mut *self.ring.as_ptr().add((tail & (BUFS - 1)) as usize) };
        let start = bid as usize * BUF_SIZE;
        entry.set_addr(self.mem[start..].as_ptr() as u64);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail.store(tail.wrapping_add(1), Ordering::Relaxed);
    }

    /// Makes recycled buffers visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: the tail field overlays the first descriptor's reserved
        // half-word, as the kernel's `io_uring_buf_ring` lays it out; it is
        // aligned for an atomic u16 and the kernel reads it with acquire.
        let tail = unsafe { &*types::BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail.load(Ordering::Relaxed), Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`.
    pub(super) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.mem[start..start + len.min(BUF_SIZE)]
    }
}

/// Recycles a completion's buffer when dropped.
pub(super) struct RecycleOnDrop<'a>(pub(super) &'a BufPool, pub(super) Option<u16>);

impl Drop for RecycleOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(bid) = self.1 {
            self.0.recycle(bid);
        }
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel no longer
        // uses it (unregistered, or the ring is gone).
        unsafe { std::alloc::dealloc(self.ring.as_ptr().cast(), Self::ring_layout()) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use io_uring::{cqueue, opcode, squeue};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    /// A ring with the pool registered in it, and a connected datagram
    /// pair to receive from (one receive takes one datagram, so bytes a
    /// failed receive left behind never join the next one's). The ring is declared first so it closes before the
    /// pool's memory goes, as in the backend.
    struct Rig {
        ring: IoUring,
        pool: BufPool,
        rx: UnixDatagram,
        tx: UnixDatagram,
    }

    impl Rig {
        fn new() -> Rig {
            let ring = IoUring::new(8).expect("io_uring on this kernel");
            let pool = BufPool::new(&ring).expect("a provided-buffer ring");
            let (rx, tx) = UnixDatagram::pair().unwrap();
            Rig { ring, pool, rx, tx }
        }

        /// Sends `data`, then one receive that picks its buffer from the
        /// pool: its result and the buffer it took.
        fn receive(&mut self, data: &[u8]) -> (i32, Option<u16>) {
            assert_eq!(self.tx.send(data).unwrap(), data.len());
            let sqe = opcode::Recv::new(types::Fd(self.rx.as_raw_fd()), std::ptr::null_mut(), 0)
                .buf_group(BUF_GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(7);
            // SAFETY: the receive names no user memory (the kernel picks a
            // pool buffer, which lives as long as the ring).
            unsafe { self.ring.submission().push(&sqe) }.unwrap();
            self.ring.submit_and_wait(1).unwrap();
            let cqe = self.ring.completion().next().expect("a completion");
            assert_eq!(cqe.user_data(), 7);
            (cqe.result(), cqueue::buffer_select(cqe.flags()))
        }
    }

    #[test]
    fn a_receive_lands_in_a_pool_buffer_that_bytes_reads() {
        let mut rig = Rig::new();
        let (n, bid) = rig.receive(b"hello, pool");
        assert_eq!(n, 11);
        let bid = bid.expect("the receive names its buffer");
        assert!(bid < BUFS);
        assert_eq!(rig.pool.bytes(bid, n as usize), b"hello, pool");
        // A length past the buffer is cut to the buffer.
        assert_eq!(rig.pool.bytes(bid, BUF_SIZE * 2).len(), BUF_SIZE);
    }

    #[test]
    fn an_exhausted_pool_fails_receives_until_a_buffer_is_recycled_and_published() {
        let mut rig = Rig::new();
        // Every buffer is handed out once, each to one receive.
        let mut seen = vec![false; BUFS as usize];
        for i in 0..BUFS {
            let (n, bid) = rig.receive(&[i as u8]);
            assert_eq!(n, 1, "receive {i}");
            let bid = bid.expect("a buffer while the pool has one");
            assert!(!seen[bid as usize], "buffer {bid} handed out twice");
            seen[bid as usize] = true;
            assert_eq!(rig.pool.bytes(bid, 1), [i as u8]);
        }
        // None left: the kernel fails the receive rather than wait.
        let (n, bid) = rig.receive(b"x");
        assert_eq!(n, -libc::ENOBUFS);
        assert_eq!(bid, None);
        // Recycled but not yet published: the kernel does not see it.
        drop(RecycleOnDrop(&rig.pool, Some(42)));
        assert_eq!(rig.receive(b"y").0, -libc::ENOBUFS);
        // Published: the next receive takes exactly that buffer (and the
        // oldest datagram, which the failed receives left in the socket);
        // then the pool is empty again.
        rig.pool.publish();
        let (n, bid) = rig.receive(b"z");
        assert_eq!((n, bid), (1, Some(42)));
        assert_eq!(rig.pool.bytes(42, 1), b"x");
        assert_eq!(rig.receive(b"w").0, -libc::ENOBUFS);
    }

    #[test]
    fn recycling_nothing_gives_nothing_back() {
        let mut rig = Rig::new();
        for _ in 0..BUFS {
            rig.receive(b"a").1.expect("a buffer");
        }
        drop(RecycleOnDrop(&rig.pool, None));
        rig.pool.publish();
        assert_eq!(rig.receive(b"b").0, -libc::ENOBUFS);
    }
}
