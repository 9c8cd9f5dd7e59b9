//! What every criterion bench here shares (included with `#[path]`: each
//! bench is a crate of its own).

/// Worker threads of both runtimes in a bench: `BENCH_WORKERS`, else 2
/// (this machine's CPU count; set it to compare at another count).
pub fn workers() -> usize {
    std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}
