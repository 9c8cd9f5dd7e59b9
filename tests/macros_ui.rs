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
//! DISABLED until the two prerequisites land; then delete the `#![cfg(any())]` line:
//! - `trybuild = "1"` in `[dev-dependencies]` of the root `Cargo.toml`;
//! - `kevent` re-exports `kevent_macros::{main, test}` and provides
//!   `kevent::runtime::{Builder, Runtime}` as the macros' expansion expects.
#![cfg(any())]

#[test]
fn macros_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/macros_pass_*.rs");
    t.compile_fail("tests/ui/macros_fail_*.rs");
}
