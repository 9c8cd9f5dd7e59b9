#![deny(warnings)]
// `crate = "..."` for a renamed `kevent`.
use kevent as rt;

#[rt::main(crate = "rt", flavor = "current_thread")]
async fn main() {
    assert!(async { true }.await);
}
