//! File I/O benchmarks, `kevent::fs` against `tokio::fs`.
//!
//! Run with `cargo bench --bench fs`.
//!
//! Every group holds two functions, `kevent` and `tokio`, expanded from the
//! same source text by [`suite!`] (the synced-write groups a third, `std`);
//! both are multi-thread runtimes with 2 workers (or `BENCH_WORKERS`), and
//! the timed code runs in a spawned task.
//! The files live in a directory under `BENCH_FS_DIR`, else the system's
//! temporary directory (on the real disk here, not `/dev/shm`); the reads
//! run from the page cache (the files are read once before timing), as
//! most reads of small files do.
//!
//! On io_uring kevent submits the opens, reads, writes, closes and fsyncs
//! to its file ring; tokio runs each call on its blocking pool. On mio
//! (`KEVENT_BACKEND=mio`) or with `KEVENT_FS=blocking`, kevent uses its
//! blocking pool too.
//!
//! # Groups
//!
//! * `fs_read_1000_files_4k`: `fs::read` of 1 000 files of 4 KiB, one
//!   after the other.
//! * `fs_read_64mib_in_64k_chunks`: one 64 MiB file read through a `File`
//!   with a 64 KiB buffer.
//! * `fs_write_sync_data_1000_disk` and `fs_write_sync_data_1000_tmpfs`:
//!   1 000 writes of 128 bytes to one `File`, each followed by
//!   `sync_data`, in the benchmark's directory (on the disk) and in
//!   `/dev/shm` (tmpfs, or `BENCH_FS_TMPFS_DIR`; the group is skipped
//!   if it does not exist). Beside `kevent` and `tokio`, `std` runs the
//!   same loop with `std::fs` on the calling thread, no runtime: on the
//!   disk it is the device's floor (an fdatasync waits for the disk, and
//!   no runtime can go under that); on tmpfs an fdatasync costs next to
//!   nothing, so what the runtimes add shows.
//! * `fs_copy_100_files_4k` and `fs_copy_16mib`: `fs::copy` of 100 files
//!   of 4 KiB (each to its own destination, overwritten every iteration),
//!   and of one 16 MiB file. tokio's runs `std::fs::copy`
//!   (`copy_file_range(2)`) on its pool; kevent's reads and writes
//!   through its file ring on io_uring.
//! * `fs_metadata_1000`: `fs::metadata` of the 1 000 small files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};

/// Small files read per iteration.
const SMALL_FILES: usize = 1_000;
/// Size of each small file.
const SMALL_SIZE: usize = 4 * 1024;
/// Size of the large file.
const LARGE_SIZE: usize = 64 * 1024 * 1024;
/// Read size for the large file.
const CHUNK: usize = 64 * 1024;
/// Writes (each followed by `sync_data`) per iteration.
const SYNCED_WRITES: usize = 1_000;
/// Bytes per synced write.
const WRITE_SIZE: usize = 128;
/// Small files copied per iteration.
const COPIES: usize = 100;
/// Size of the file copied whole.
const COPY_SIZE: usize = 16 * 1024 * 1024;

#[path = "common/mod.rs"]
mod common;
use common::workers;

/// The benchmark's files, made once.
struct Fixture {
    /// The directory holding them.
    dir: PathBuf,
    /// The small files.
    small: Arc<Vec<PathBuf>>,
    /// The large file.
    large: PathBuf,
    /// The file copied whole.
    copy_src: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let base = std::env::var_os("BENCH_FS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("kevent-bench-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let small: Vec<PathBuf> = (0..SMALL_FILES)
            .map(|i| {
                let p = dir.join(format!("small{i:04}"));
                std::fs::write(&p, vec![i as u8; SMALL_SIZE]).unwrap();
                p
            })
            .collect();
        let large = dir.join("large");
        std::fs::write(&large, vec![7u8; LARGE_SIZE]).unwrap();
        let copy_src = dir.join("copy-src");
        std::fs::write(&copy_src, vec![9u8; COPY_SIZE]).unwrap();
        // Into the page cache.
        for p in small.iter().chain([&large, &copy_src]) {
            std::fs::read(p).unwrap();
        }
        Fixture {
            dir,
            small: Arc::new(small),
            large,
            copy_src,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Expands the whole suite for one runtime crate, as a module named `$m`.
macro_rules! suite {
    ($m:ident, $krate:ident) => {
        mod $m {
            use super::*;
            use ::$krate as krate;
            use krate::io::{AsyncReadExt, AsyncWriteExt};

            /// The function's name inside each group.
            const NAME: &str = stringify!($krate);

            fn runtime() -> krate::runtime::Runtime {
                krate::runtime::Builder::new_multi_thread()
                    .worker_threads(workers())
                    .enable_all()
                    .build()
                    .expect("build the runtime")
            }

            pub fn read_small_files(
                g: &mut BenchmarkGroup<'_, WallTime>,
                files: &Arc<Vec<PathBuf>>,
            ) {
                let rt = runtime();
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let files = files.clone();
                        rt.block_on(rt.spawn(async move {
                            let mut total = 0;
                            for p in files.iter() {
                                total += krate::fs::read(p).await.unwrap().len();
                            }
                            assert_eq!(total, SMALL_FILES * SMALL_SIZE);
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn read_large_file(g: &mut BenchmarkGroup<'_, WallTime>, path: &Path) {
                let rt = runtime();
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let path = path.to_owned();
                        rt.block_on(rt.spawn(async move {
                            let mut f = krate::fs::File::open(&path).await.unwrap();
                            let mut buf = vec![0u8; CHUNK];
                            let mut total = 0;
                            loop {
                                let n = f.read(&mut buf).await.unwrap();
                                if n == 0 {
                                    break;
                                }
                                total += n;
                            }
                            assert_eq!(total, LARGE_SIZE);
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn copy_small_files(
                g: &mut BenchmarkGroup<'_, WallTime>,
                files: &Arc<Vec<PathBuf>>,
                dir: &Path,
            ) {
                let rt = runtime();
                let dst: Arc<Vec<PathBuf>> = Arc::new(
                    (0..COPIES)
                        .map(|i| dir.join(format!(concat!("copy-", stringify!($krate), "-{}"), i)))
                        .collect(),
                );
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let (files, dst) = (files.clone(), dst.clone());
                        rt.block_on(rt.spawn(async move {
                            for (from, to) in files.iter().zip(dst.iter()) {
                                let n = krate::fs::copy(from, to).await.unwrap();
                                assert_eq!(n, SMALL_SIZE as u64);
                            }
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn copy_large_file(g: &mut BenchmarkGroup<'_, WallTime>, from: &Path) {
                let rt = runtime();
                let to = from.with_file_name(concat!("copy-large-", stringify!($krate)));
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let (from, to) = (from.to_owned(), to.clone());
                        rt.block_on(rt.spawn(async move {
                            let n = krate::fs::copy(&from, &to).await.unwrap();
                            assert_eq!(n, COPY_SIZE as u64);
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn metadata(g: &mut BenchmarkGroup<'_, WallTime>, files: &Arc<Vec<PathBuf>>) {
                let rt = runtime();
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let files = files.clone();
                        rt.block_on(rt.spawn(async move {
                            for p in files.iter() {
                                let len = krate::fs::metadata(p).await.unwrap().len();
                                assert_eq!(len, SMALL_SIZE as u64);
                            }
                        }))
                        .unwrap();
                    })
                });
            }

            pub fn write_sync_data(g: &mut BenchmarkGroup<'_, WallTime>, dir: &Path) {
                let rt = runtime();
                let path = dir.join(concat!("synced-", stringify!($krate)));
                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let path = path.clone();
                        rt.block_on(rt.spawn(async move {
                            let mut f = krate::fs::File::create(&path).await.unwrap();
                            let line = [b'x'; WRITE_SIZE];
                            for _ in 0..SYNCED_WRITES {
                                f.write_all(&line).await.unwrap();
                                f.sync_data().await.unwrap();
                            }
                        }))
                        .unwrap();
                    })
                });
            }
        }
    };
}

suite!(on_kevent, kevent);
suite!(on_tokio, tokio);

/// The synced-write loop with `std::fs` on the calling thread: the floor
/// the file system and the device set.
fn write_sync_data_std(g: &mut BenchmarkGroup<'_, WallTime>, dir: &Path) {
    use std::io::Write;
    let path = dir.join("synced-std");
    g.bench_function("std", |b| {
        b.iter(|| {
            let mut f = std::fs::File::create(&path).unwrap();
            let line = [b'x'; WRITE_SIZE];
            for _ in 0..SYNCED_WRITES {
                f.write_all(&line).unwrap();
                f.sync_data().unwrap();
            }
        })
    });
}

/// A directory on tmpfs for the synced writes: `BENCH_FS_TMPFS_DIR`, else
/// `/dev/shm`; `None` if it does not exist.
fn tmpfs_dir() -> Option<PathBuf> {
    let base = std::env::var_os("BENCH_FS_TMPFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    if !base.is_dir() {
        return None;
    }
    let dir = base.join(format!("kevent-bench-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// Opens a group configured for a noisy 2-core machine; iterations are
/// long, so flat sampling with few samples.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g
}

fn fs(c: &mut Criterion) {
    let fx = Fixture::new();

    let mut g = group(c, "fs_read_1000_files_4k");
    on_kevent::read_small_files(&mut g, &fx.small);
    on_tokio::read_small_files(&mut g, &fx.small);
    g.finish();

    let mut g = group(c, "fs_read_64mib_in_64k_chunks");
    on_kevent::read_large_file(&mut g, &fx.large);
    on_tokio::read_large_file(&mut g, &fx.large);
    g.finish();

    let mut g = group(c, "fs_copy_100_files_4k");
    on_kevent::copy_small_files(&mut g, &fx.small, &fx.dir);
    on_tokio::copy_small_files(&mut g, &fx.small, &fx.dir);
    g.finish();

    let mut g = group(c, "fs_copy_16mib");
    on_kevent::copy_large_file(&mut g, &fx.copy_src);
    on_tokio::copy_large_file(&mut g, &fx.copy_src);
    g.finish();

    let mut g = group(c, "fs_metadata_1000");
    on_kevent::metadata(&mut g, &fx.small);
    on_tokio::metadata(&mut g, &fx.small);
    g.finish();

    let mut g = group(c, "fs_write_sync_data_1000_disk");
    on_kevent::write_sync_data(&mut g, &fx.dir);
    on_tokio::write_sync_data(&mut g, &fx.dir);
    write_sync_data_std(&mut g, &fx.dir);
    g.finish();

    if let Some(dir) = tmpfs_dir() {
        let mut g = group(c, "fs_write_sync_data_1000_tmpfs");
        on_kevent::write_sync_data(&mut g, &dir);
        on_tokio::write_sync_data(&mut g, &dir);
        write_sync_data_std(&mut g, &dir);
        g.finish();
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("no tmpfs directory (/dev/shm or BENCH_FS_TMPFS_DIR): skipping the tmpfs group");
    }
}

criterion_group!(benches, fs);
criterion_main!(benches);
