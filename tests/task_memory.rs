//! `examples/task_memory.rs` as a black box: with a small task count it
//! prints one row per runtime and kind, each with a plausible size.

use std::process::Command;

#[test]
fn prints_heap_bytes_per_idle_task_for_both_runtimes_and_both_kinds() {
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    if exe.ends_with("deps") {
        exe.pop();
    }
    let exe = exe.join("examples").join("task_memory");
    assert!(exe.exists(), "build the example first: {}", exe.display());
    let out = Command::new(exe).arg("2000").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| `std") || l.starts_with("| a oneshot"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for row in &rows {
        // | kind | runtime | heap | rss | allocations | future size |
        let heap: f64 = row[3].parse().unwrap();
        let future: f64 = row[6].parse().unwrap();
        // A task holds at least its future and some header; a counting
        // allocator that counted nothing, or counted every byte of a whole
        // runtime per task, would fall outside.
        assert!(heap >= future && heap < 4096.0, "{row:?} in\n{text}");
        // One allocation per kevent task: its control block lives in the
        // raw task's header, not in an allocation of its own.
        if row[2] == "kevent" {
            let allocations: f64 = row[5].parse().unwrap();
            assert!(allocations < 1.5, "{row:?} in\n{text}");
        }
    }
    assert_eq!(text.matches("kevent ÷ tokio").count(), 2, "{text}");
}
