//! `kevent::fs`: files, directories and paths, on both backends (the
//! file ring on io_uring, the blocking pool on mio), under every runtime
//! flavor; bad input included.

mod net_support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kevent::fs::{self, File, OpenOptions};
use kevent::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use net_support::{each_flavor, pattern};

/// A fresh directory on the real disk (not /dev/shm), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kevent-fs-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn write_then_read_round_trips_whole_files_of_many_sizes() {
    each_flavor(|| async {
        let dir = TempDir::new("roundtrip");
        for (i, len) in [
            0usize,
            1,
            31,
            4096,
            4097,
            32 << 10,
            (32 << 10) + 1,
            100_000,
            3 << 20,
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.join(&format!("f{i}"));
            let data = pattern(i as u64, len);
            fs::write(&path, &data).await.unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                data,
                "written by fs::write, {len} bytes"
            );
            assert_eq!(
                fs::read(&path).await.unwrap(),
                data,
                "read by fs::read, {len} bytes"
            );
        }
        fs::write(dir.join("text"), "héllo").await.unwrap();
        assert_eq!(fs::read_to_string(dir.join("text")).await.unwrap(), "héllo");
        fs::write(dir.join("bad"), [0xff, 0xfe]).await.unwrap();
        let err = fs::read_to_string(dir.join("bad")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    });
}

#[test]
fn fs_write_replaces_a_longer_file() {
    each_flavor(|| async {
        let dir = TempDir::new("truncate");
        let path = dir.join("f");
        fs::write(&path, vec![7u8; 10_000]).await.unwrap();
        fs::write(&path, b"short").await.unwrap();
        assert_eq!(fs::read(&path).await.unwrap(), b"short");
    });
}

#[test]
fn a_missing_file_is_not_found_everywhere() {
    each_flavor(|| async {
        let dir = TempDir::new("missing");
        let missing = dir.join("nope");
        assert_eq!(
            fs::read(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            File::open(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs::metadata(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs::remove_file(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs::read_dir(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(!fs::try_exists(&missing).await.unwrap());
        assert!(fs::try_exists(&dir.0).await.unwrap());
        // Writing below a missing directory fails too.
        let below = missing.join("f");
        assert_eq!(
            fs::write(&below, b"x").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

#[test]
fn a_directory_read_as_a_file_fails_with_is_a_directory() {
    each_flavor(|| async {
        let dir = TempDir::new("isdir");
        let err = fs::read(&dir.0).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        // Opening a directory read-only works (as with std); reading it does not.
        let mut file = File::open(&dir.0).await.unwrap();
        let mut buf = [0u8; 16];
        let err = file.read(&mut buf).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        let err = File::create(&dir.0).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
    });
}

#[test]
fn seeks_move_reads_and_writes_and_count_from_the_readers_place() {
    each_flavor(|| async {
        let dir = TempDir::new("seek");
        let path = dir.join("f");
        fs::write(&path, b"0123456789").await.unwrap();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();

        let mut two = [0u8; 2];
        assert_eq!(file.seek(SeekFrom::Start(3)).await.unwrap(), 3);
        file.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"34");
        assert_eq!(file.seek(SeekFrom::Current(0)).await.unwrap(), 5);
        assert_eq!(file.seek(SeekFrom::Current(2)).await.unwrap(), 7);
        file.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"78");
        assert_eq!(file.seek(SeekFrom::End(-1)).await.unwrap(), 9);
        file.read_exact(&mut [0u8; 1]).await.unwrap();
        assert_eq!(file.read(&mut two).await.unwrap(), 0, "end of file");
        assert!(
            file.seek(SeekFrom::Current(-100)).await.is_err(),
            "before the start"
        );

        // Read a large chunk, hand out only part of it, then write: the
        // write lands where the reader is, not where the read-ahead ended.
        file.set_max_buf_size(1 << 20);
        file.seek(SeekFrom::Start(0)).await.unwrap();
        let mut big = [0u8; 64];
        let n = file.read(&mut big).await.unwrap();
        assert_eq!(&big[..n], b"0123456789");
        file.seek(SeekFrom::Start(2)).await.unwrap();
        file.write_all(b"ab").await.unwrap();
        file.seek(SeekFrom::End(2)).await.unwrap();
        file.write_all(b"Z").await.unwrap();
        file.flush().await.unwrap();
        let mut expect = b"01ab456789".to_vec();
        expect.extend_from_slice(&[0, 0, b'Z']);
        assert_eq!(std::fs::read(&path).unwrap(), expect);
    });
}

#[test]
fn a_file_dropped_mid_write_still_writes_every_byte() {
    each_flavor(|| async {
        let dir = TempDir::new("dropwrite");
        for round in 0..3u64 {
            let path = dir.join(&format!("f{round}"));
            let data = pattern(round, 6 << 20);
            let mut file = File::create(&path).await.unwrap();
            // write_all returns once the last chunk is handed over; it is
            // then in flight, and nobody flushes.
            file.write_all(&data).await.unwrap();
            drop(file);
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::metadata(&path).unwrap().len() < data.len() as u64 {
                assert!(
                    Instant::now() < deadline,
                    "the dropped file's last write never landed"
                );
                kevent::time::sleep(Duration::from_millis(2)).await;
            }
            assert!(
                std::fs::read(&path).unwrap() == data,
                "round {round}: bytes differ"
            );
        }
    });
}

#[test]
fn a_runtime_dropped_right_after_a_file_write_loses_nothing() {
    let dir = TempDir::new("droprt");
    for (i, flavor) in net_support::FLAVORS.into_iter().enumerate() {
        let path = dir.join(&format!("f{i}"));
        let data = pattern(i as u64, 4 << 20);
        let rt = flavor.build();
        rt.block_on(async {
            let mut file = File::create(&path).await.unwrap();
            file.write_all(&data).await.unwrap();
        });
        drop(rt);
        // On the blocking pool the write may still be running on its
        // thread (the runtime's drop does not wait for the pool).
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < data.len() as u64 {
            assert!(
                Instant::now() < deadline,
                "under {flavor}: the last write never landed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(
            std::fs::read(&path).unwrap() == data,
            "under {flavor}: bytes lost"
        );
    }
}

#[test]
fn read_dir_lists_every_entry_once_by_next_entry_and_as_a_stream() {
    each_flavor(|| async {
        let dir = TempDir::new("readdir");
        let mut expect = BTreeSet::new();
        for i in 0..75 {
            let name = format!("file{i:03}");
            std::fs::write(dir.join(&name), b"x").unwrap();
            expect.insert(name);
        }
        std::fs::create_dir(dir.join("sub")).unwrap();
        expect.insert("sub".to_string());

        let mut seen = BTreeSet::new();
        let mut rd = fs::read_dir(&dir.0).await.unwrap();
        while let Some(entry) = rd.next_entry().await.unwrap() {
            let name = entry.file_name().into_string().unwrap();
            assert_eq!(entry.path(), dir.join(&name));
            let is_dir = entry.file_type().await.unwrap().is_dir();
            assert_eq!(is_dir, name == "sub", "{name}");
            assert!(seen.insert(name), "an entry listed twice");
        }
        assert_eq!(seen, expect);
        assert!(rd.next_entry().await.unwrap().is_none(), "stays at the end");

        let names: BTreeSet<String> = fs::read_dir(&dir.0)
            .await
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
            .await;
        assert_eq!(names, expect);
        assert_eq!(
            fs::read_dir(dir.join("file000"))
                .await
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOTDIR)
        );
    });
}

#[test]
fn open_options_follow_std_rules() {
    each_flavor(|| async {
        let dir = TempDir::new("options");
        let path = dir.join("f");
        fs::write(&path, b"abc").await.unwrap();
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let err = OpenOptions::new()
            .read(true)
            .truncate(true)
            .open(&path)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            OpenOptions::new().open(&path).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );

        let mut f = OpenOptions::new().append(true).open(&path).await.unwrap();
        f.write_all(b"def").await.unwrap();
        f.flush().await.unwrap();
        assert_eq!(fs::read(&path).await.unwrap(), b"abcdef");

        let mut f = File::options().read(true).open(&path).await.unwrap();
        let err = f.write_all(b"no").await;
        let err = match err {
            Err(e) => e,
            Ok(()) => f.flush().await.unwrap_err(),
        };
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join("mode");
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o600)
                .open(&p)
                .await
                .unwrap();
            drop(f);
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    });
}

#[test]
fn file_sync_set_len_metadata_clone_and_into_std() {
    each_flavor(|| async {
        let dir = TempDir::new("filecalls");
        let path = dir.join("f");
        let mut f = File::create(&path).await.unwrap();
        f.write_all(&[1u8; 5000]).await.unwrap();
        f.sync_data().await.unwrap();
        f.sync_all().await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 5000);
        f.set_len(100).await.unwrap();
        assert_eq!(fs::metadata(&path).await.unwrap().len(), 100);

        let mut clone = f.try_clone().await.unwrap();
        clone.seek(SeekFrom::Start(0)).await.unwrap();
        clone.write_all(b"zz").await.unwrap();
        clone.flush().await.unwrap();

        let mut perms = f.metadata().await.unwrap().permissions();
        perms.set_readonly(true);
        f.set_permissions(perms.clone()).await.unwrap();
        assert!(fs::metadata(&path).await.unwrap().permissions().readonly());
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .await
            .unwrap();
        let mode = fs::metadata(&path).await.unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);

        // The clone shares the position (a duplicate descriptor).
        assert_eq!(f.seek(SeekFrom::Current(0)).await.unwrap(), 2);
        f.seek(SeekFrom::Start(100)).await.unwrap();
        f.write_all(b"tail").await.unwrap();
        let mut std = f.into_std().await;
        use std::io::{Read, Seek};
        std.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        std.read_to_end(&mut all).unwrap_err(); // opened write-only
        let all = std::fs::read(&path).unwrap();
        assert_eq!(&all[..2], b"zz");
        assert_eq!(
            &all[100..],
            b"tail",
            "the write in flight went before into_std returned"
        );

        let from = File::from_std(std::fs::File::open(&path).unwrap());
        let mut back = String::new();
        let mut from = from;
        from.seek(SeekFrom::Start(100)).await.unwrap();
        from.read_to_string(&mut back).await.unwrap();
        assert_eq!(back, "tail");
    });
}

#[test]
fn metadata_and_set_len_report_what_std_reports_and_fail_like_it() {
    each_flavor(|| async {
        let dir = TempDir::new("meta");
        let path = dir.join("f");
        std::fs::write(&path, [7u8; 3000]).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();

        // The same answers std gives.
        let ours = fs::metadata(&link).await.unwrap();
        let std = std::fs::metadata(&link).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (ours.ino(), ours.len(), ours.mode()),
            (std.ino(), std.len(), std.mode())
        );
        assert!(ours.is_file());
        let ours = fs::symlink_metadata(&link).await.unwrap();
        assert!(ours.file_type().is_symlink());
        assert_eq!(ours.ino(), std::fs::symlink_metadata(&link).unwrap().ino());
        assert!(fs::metadata(&dir.0).await.unwrap().is_dir());

        // Bad paths: missing, a broken link, a file used as a directory,
        // a NUL byte.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&link).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert!(
            fs::symlink_metadata(&link).await.is_ok(),
            "the link itself is there"
        );
        assert_eq!(
            fs::symlink_metadata(&path).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        std::fs::write(&path, b"x").unwrap();
        let err = fs::metadata(path.join("below")).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
        let err = fs::metadata("a\0b").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

        // set_len shrinks and extends with zeroes, keeps the position, and
        // File::metadata sees it.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        f.write_all(b"abcdef").await.unwrap();
        f.set_len(3).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 3);
        f.set_len(10).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 10);
        assert_eq!(f.seek(SeekFrom::Current(0)).await.unwrap(), 6);
        assert_eq!(std::fs::read(&path).unwrap(), b"abc\0\0\0\0\0\0\0");
        let err = f.set_len(u64::MAX).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");

        // set_len on a file opened read-only fails as ftruncate(2) does,
        // and changes nothing.
        let ro = File::open(&path).await.unwrap();
        let err = ro.set_len(1).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        assert_eq!(ro.metadata().await.unwrap().len(), 10);
    });
}

#[test]
fn copy_moves_every_byte_and_the_permission_bits_and_fails_like_std() {
    use std::os::unix::fs::PermissionsExt;
    each_flavor(|| async {
        let dir = TempDir::new("copy");
        // Sizes around the copy's 1 MiB chunk and its one-byte probe.
        for (i, len) in [0usize, 1, 4096, 1 << 20, (1 << 20) + 1, (3 << 20) + 5]
            .into_iter()
            .enumerate()
        {
            let (src, dst) = (dir.join(&format!("src{i}")), dir.join(&format!("dst{i}")));
            let bytes = pattern(i as u64, len);
            std::fs::write(&src, &bytes).unwrap();
            assert_eq!(
                fs::copy(&src, &dst).await.unwrap(),
                len as u64,
                "{len} bytes"
            );
            assert!(std::fs::read(&dst).unwrap() == bytes, "{len} bytes differ");
        }

        // The source's permission bits, past the umask, onto an existing
        // longer file (truncated).
        let (src, dst) = (dir.join("mode-src"), dir.join("mode-dst"));
        std::fs::write(&src, b"short").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::write(&dst, [1u8; 100]).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(fs::copy(&src, &dst).await.unwrap(), 5);
        assert_eq!(std::fs::read(&dst).unwrap(), b"short");
        let mode = std::fs::metadata(&dst).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);

        // A file that does not know its size (procfs says 0).
        let proc_copy = dir.join("version");
        let n = fs::copy("/proc/version", &proc_copy).await.unwrap();
        let want = std::fs::read("/proc/version").unwrap();
        assert!(!want.is_empty());
        assert_eq!(
            (n, std::fs::read(&proc_copy).unwrap()),
            (want.len() as u64, want)
        );

        // Bad input fails as std::fs::copy does.
        for (from, to) in [
            (dir.join("missing"), dir.join("out")),
            (dir.0.clone(), dir.join("out")),
            (src.clone(), dir.join("no/such/dir")),
            (src.clone(), dir.0.clone()),
        ] {
            let ours = fs::copy(&from, &to).await.unwrap_err();
            let std = std::fs::copy(&from, &to).unwrap_err();
            assert_eq!(
                ours.kind(),
                std.kind(),
                "{from:?} -> {to:?}: {ours} / {std}"
            );
            assert_eq!(ours.raw_os_error(), std.raw_os_error(), "{ours} / {std}");
        }
    });
}

#[test]
fn path_calls_create_copy_link_rename_and_remove() {
    each_flavor(|| async {
        let dir = TempDir::new("paths");
        let deep = dir.join("a/b/c");
        fs::create_dir_all(&deep).await.unwrap();
        assert_eq!(
            fs::create_dir(&deep).await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        fs::create_dir(dir.join("a/d")).await.unwrap();
        fs::DirBuilder::new()
            .recursive(true)
            .create(&deep)
            .await
            .unwrap();
        let err = fs::DirBuilder::new().create(&deep).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir.join("a/m"))
                .await
                .unwrap();
            let mode = fs::metadata(dir.join("a/m"))
                .await
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }

        let src = deep.join("src");
        fs::write(&src, b"payload").await.unwrap();
        assert_eq!(fs::copy(&src, dir.join("copy")).await.unwrap(), 7);
        fs::hard_link(&src, dir.join("hard")).await.unwrap();
        fs::symlink(&src, dir.join("soft")).await.unwrap();
        assert_eq!(fs::read_link(dir.join("soft")).await.unwrap(), src);
        assert!(fs::symlink_metadata(dir.join("soft"))
            .await
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(fs::metadata(dir.join("soft")).await.unwrap().is_file());
        assert_eq!(
            fs::canonicalize(dir.join("a/b/../b/c/src")).await.unwrap(),
            std::fs::canonicalize(&src).unwrap()
        );
        assert_eq!(fs::metadata(dir.join("hard")).await.unwrap().len(), 7);

        fs::rename(dir.join("copy"), dir.join("moved"))
            .await
            .unwrap();
        assert_eq!(fs::read(dir.join("moved")).await.unwrap(), b"payload");
        assert!(!fs::try_exists(dir.join("copy")).await.unwrap());

        fs::remove_file(&src).await.unwrap();
        assert!(
            !fs::try_exists(dir.join("soft")).await.unwrap(),
            "a broken link does not exist"
        );
        assert_eq!(fs::read(dir.join("hard")).await.unwrap(), b"payload");
        let err = fs::remove_dir(dir.join("a")).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY), "{err}");
        fs::remove_dir(dir.join("a/d")).await.unwrap();
        fs::remove_dir_all(dir.join("a")).await.unwrap();
        assert!(!Path::new(&dir.join("a")).exists());
    });
}

#[test]
fn a_read_abandoned_while_it_waits_leaves_the_runtime_working() {
    // A read of an empty FIFO waits for data: it is dropped while it
    // waits (its buffer must outlive it), then data comes and the read
    // completes unobserved; the runtime and its drop carry on.
    let dir = TempDir::new("fifo");
    for (i, flavor) in net_support::FLAVORS.into_iter().enumerate() {
        // A FIFO per run: bytes a previous run's read left behind stay in a
        // FIFO while any descriptor of it lives.
        let fifo = dir.join(&format!("fifo{i}"));
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let rt = flavor.build();
        rt.block_on(async {
            // Read and write ends: opening for both never waits.
            let rw = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .unwrap();
            let mut writer = rw.try_clone().unwrap();
            let mut file = File::from_std(rw);
            let mut buf = [0u8; 64];
            let read = file.read(&mut buf);
            assert!(kevent::time::timeout(Duration::from_millis(50), read)
                .await
                .is_err());
            drop(file);
            use std::io::Write;
            writer.write_all(b"late bytes").unwrap();
            let path = dir.join("after");
            fs::write(&path, b"still works").await.unwrap();
            assert_eq!(fs::read(&path).await.unwrap(), b"still works");
        });
        drop(rt);
    }
}

#[test]
fn on_io_uring_file_io_takes_no_blocking_thread() {
    if std::env::var("KEVENT_BACKEND").as_deref() != Ok("uring")
        || std::env::var("KEVENT_FS").as_deref() == Ok("blocking")
    {
        eprintln!("io_uring's file ring only (KEVENT_BACKEND=uring, KEVENT_FS unset)");
        return;
    }
    let dir = TempDir::new("nohop");
    let rt = net_support::Flavor::MultiThread(2).build();
    rt.block_on(async {
        let path = dir.join("f");
        for i in 0..20u8 {
            fs::write(&path, [i; 100]).await.unwrap();
            assert_eq!(fs::read(&path).await.unwrap(), [i; 100]);
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .unwrap();
            f.write_all(b"x").await.unwrap();
            f.sync_data().await.unwrap();
            let mut buf = [0u8; 100];
            f.seek(SeekFrom::Start(0)).await.unwrap();
            f.read_exact(&mut buf).await.unwrap();
            assert!(fs::try_exists(&path).await.unwrap());
            assert_eq!(f.metadata().await.unwrap().len(), 100);
            f.set_len(50).await.unwrap();
            assert_eq!(fs::metadata(&path).await.unwrap().len(), 50);
            assert!(fs::symlink_metadata(&path).await.unwrap().is_file());
            assert_eq!(fs::copy(&path, dir.join("copy")).await.unwrap(), 50);
            let missing = dir.join("missing");
            assert_eq!(
                fs::metadata(&missing).await.unwrap_err().kind(),
                ErrorKind::NotFound
            );
        }
        let threads = kevent::runtime::Handle::current()
            .metrics()
            .blocking_threads;
        assert_eq!(threads, 0, "file I/O went to the blocking pool");
    });
}

#[test]
fn many_tasks_reading_writing_and_syncing_at_once_all_see_their_own_bytes() {
    // More concurrent `fs::read`s than the file ring has direct slots,
    // and fsyncs (completed by the kernel's workers) waiting side by side.
    each_flavor(|| async {
        let dir = std::sync::Arc::new(TempDir::new("concurrent"));
        let mut tasks = Vec::new();
        for t in 0..150u64 {
            let dir = dir.clone();
            tasks.push(kevent::spawn(async move {
                let path = dir.join(&format!("t{t}"));
                let data = pattern(t, 1000 + t as usize * 97);
                fs::write(&path, &data).await.unwrap();
                assert!(fs::read(&path).await.unwrap() == data, "task {t}: fs::read");
                let mut f = OpenOptions::new().append(true).open(&path).await.unwrap();
                f.write_all(b"end").await.unwrap();
                f.sync_data().await.unwrap();
                let mut expect = data;
                expect.extend_from_slice(b"end");
                assert!(
                    fs::read(&path).await.unwrap() == expect,
                    "task {t}: after append"
                );
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn a_runtime_that_did_file_io_closes_all_its_descriptors_when_dropped() {
    // The file ring's registration holds the runtime and the runtime the
    // ring: shutdown must break that, or the runtime (and its rings) leak.
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }
    let dir = TempDir::new("fdleak");
    let path = dir.join("f");
    // Warm-up: descriptors made once per process (none expected, but a
    // first runtime may create process-wide ones).
    for round in 0..3 {
        let before = open_fds();
        for flavor in net_support::FLAVORS {
            let rt = flavor.build();
            rt.block_on(async {
                let mut f = File::create(&path).await.unwrap();
                f.write_all(b"sync me").await.unwrap();
                f.sync_data().await.unwrap();
                drop(f);
                assert_eq!(fs::read(&path).await.unwrap(), b"sync me");
            });
            drop(rt);
        }
        // Closing a ring may finish a moment after the drop returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while round > 0 && open_fds() > before {
            assert!(
                Instant::now() < deadline,
                "descriptors leaked: {} > {before}",
                open_fds()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
