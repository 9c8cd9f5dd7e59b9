//! trybuild UI tests for `#[kevent::main]` / `#[kevent::test]` (crate `kevent-macros`).
//!
//! Cases live in `tests/ui/`: `macros_pass_*.rs` must compile and run successfully,
//! `macros_fail_*.rs` must fail to compile with exactly the errors in the matching
//! `.stderr` file. After changing a diagnostic (or when rustc's wording changes),
//! regenerate and then review them:
//!
//! ```text
//! TRYBUILD=overwrite cargo test --test macros_ui
//! ```
//!

#[test]
fn macros_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/macros_pass_*.rs");
    t.compile_fail("tests/ui/macros_fail_*.rs");
}
