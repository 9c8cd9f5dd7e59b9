//! `EMFILE` while opening files: reported as such, and opening works
//! again once descriptors are free. Its own test binary (its own process):
//! it lowers `RLIMIT_NOFILE`.

mod net_support;

use kevent::fs::{self, File};
use net_support::each_flavor;

#[test]
fn opening_files_past_the_descriptor_limit_reports_emfile_and_recovers() {
    let dir = std::env::temp_dir().join(format!("kevent-fs-emfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, b"content").unwrap();

    // Room for the runtimes' own descriptors, not for thousands of files.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_cur.min(256);
    // SAFETY: a valid in-pointer; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);

    each_flavor(|| {
        let path = path.clone();
        async move {
            // The first call makes the runtime's file ring (a descriptor too).
            assert_eq!(fs::read(&path).await.unwrap(), b"content");
            let mut open = Vec::new();
            let err = loop {
                match File::open(&path).await {
                    Ok(f) => open.push(f),
                    Err(e) => break e,
                }
                assert!(open.len() < 300, "the limit of 256 was not applied");
            };
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
            // On io_uring `fs::read` of a small file opens it into the
            // ring's own descriptor table, outside the process's: it may
            // succeed; if not, it fails with EMFILE.
            match fs::read(&path).await {
                Ok(bytes) => assert_eq!(bytes, b"content"),
                Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}"),
            }
            let err = fs::write(dir_file(&path), b"x").await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
            open.truncate(open.len() - 4);
            assert_eq!(fs::read(&path).await.unwrap(), b"content");
            drop(open);
            let mut files = Vec::new();
            for _ in 0..100 {
                files.push(File::open(&path).await.unwrap());
            }
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

fn dir_file(path: &std::path::Path) -> std::path::PathBuf {
    path.with_file_name("other")
}
