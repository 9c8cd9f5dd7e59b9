//! `File::sync_data` / `sync_all` right after a write: on io_uring the
//! write and the fsync go to the file ring as one linked pair. What the
//! write does wrong must still come out of the sync, a short write must
//! still be finished before the fsync, and nothing written may be lost;
//! on both backends.

mod net_support;

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use kevent::fs::{File, OpenOptions};
use kevent::io::AsyncWriteExt;
use net_support::{each_flavor, pattern};

/// A fresh path in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("kevent-fs-sync-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_byte_written_before_a_sync_is_in_the_file_after_it() {
    each_flavor(|| async {
        let tmp = TempFile::new("bytes");
        let mut f = File::create(&tmp.0).await.unwrap();
        let mut expected = Vec::new();
        // Small writes, one larger than a buffer (two operations), each
        // followed by one kind of sync or the other.
        for (i, len) in [1usize, 128, 4096, 100_000, 3 << 20, 7]
            .into_iter()
            .enumerate()
        {
            let chunk = pattern(i as u64, len);
            f.write_all(&chunk).await.unwrap();
            expected.extend_from_slice(&chunk);
            if i % 2 == 0 {
                f.sync_data().await.unwrap();
            } else {
                f.sync_all().await.unwrap();
            }
            // Synced: another descriptor sees it all, without a flush.
            let on_disk = std::fs::read(&tmp.0).unwrap();
            assert!(on_disk == expected, "after write {i} ({len} bytes)");
        }
        // A sync with nothing written is a plain fsync.
        f.sync_data().await.unwrap();
        f.sync_all().await.unwrap();
    });
}

#[test]
fn a_write_to_a_read_only_file_fails_at_the_sync_that_follows() {
    each_flavor(|| async {
        let tmp = TempFile::new("rdonly");
        std::fs::write(&tmp.0, b"before").unwrap();
        for data_only in [true, false] {
            let mut f = File::open(&tmp.0).await.unwrap();
            // Write-behind: the write is accepted, its error comes later.
            f.write_all(b"not allowed").await.unwrap();
            let res = if data_only {
                f.sync_data().await
            } else {
                f.sync_all().await
            };
            let err = res.expect_err("the failed write must surface from the sync");
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
            // Reported once: the file works on.
            f.sync_data().await.unwrap();
            f.flush().await.unwrap();
        }
        assert_eq!(std::fs::read(&tmp.0).unwrap(), b"before");
    });
}

#[test]
fn a_sync_dropped_before_it_finishes_still_writes_every_byte() {
    each_flavor(|| async {
        let tmp = TempFile::new("dropsync");
        let data = pattern(9, 1 << 20);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp.0)
            .await
            .unwrap();
        f.write_all(&data).await.unwrap();
        {
            // One poll starts the write and the fsync; then the caller
            // gives up on it.
            let mut sync = pin!(f.sync_data());
            let _ = std::future::poll_fn(|cx| Poll::Ready(sync.as_mut().poll(cx))).await;
        }
        // The next call waits for what the dropped sync started.
        f.flush().await.unwrap();
        f.sync_all().await.unwrap();
        assert!(std::fs::read(&tmp.0).unwrap() == data);
    });
}

/// Set in the child process of the file-size-limit test.
const FSIZE_CHILD: &str = "KEVENT_TEST_FSIZE_CHILD";

/// A write that crosses `RLIMIT_FSIZE` is cut short at the limit (the
/// kernel writes what fits), and the rest fails with `EFBIG`: the linked
/// fsync is cancelled by the short write, the sync finishes the write,
/// and reports its error. The limit is the whole process's, so the test
/// runs itself in a child process.
#[test]
fn a_write_cut_short_by_the_file_size_limit_is_finished_then_its_error_reported() {
    if std::env::var_os(FSIZE_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "a_write_cut_short_by_the_file_size_limit_is_finished_then_its_error_reported",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FSIZE_CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {text}");
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
        return;
    }
    const LIMIT: u64 = 1000;
    // SAFETY: plain libc calls on values made here; ignoring SIGXFSZ
    // makes an over-limit write fail with EFBIG instead of killing us.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    each_flavor(|| async {
        // The linked pair (a sync), the write alone (a flush), and
        // `fs::write` (a write linked to a close).
        for how in ["sync_data", "flush", "fs::write"] {
            let tmp = TempFile::new("fsize");
            let first = pattern(1, 600);
            let second = pattern(2, 600);
            let res = if how == "fs::write" {
                kevent::fs::write(&tmp.0, [&first[..], &second[..]].concat()).await
            } else {
                let mut f = File::create(&tmp.0).await.unwrap();
                f.write_all(&first).await.unwrap();
                f.sync_data().await.unwrap();
                f.write_all(&second).await.unwrap();
                let res = match how {
                    "sync_data" => f.sync_data().await,
                    _ => f.flush().await,
                };
                // The error is reported once.
                f.sync_all().await.unwrap();
                res
            };
            let err = res.expect_err("past the file size limit");
            assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{how}: {err}");
            // What fit landed, in its place: the first write and the
            // head of the second.
            let on_disk = std::fs::read(&tmp.0).unwrap();
            assert_eq!(on_disk.len() as u64, LIMIT, "{how}");
            assert!(on_disk[..600] == first[..], "{how}: first write");
            assert!(on_disk[600..] == second[..400], "{how}: second write");
        }
    });
}
