#![deny(warnings)]
// `#[kevent::test]` accepts the same options and keeps other attributes.
// (In this non-test build the `#[test]` functions are compiled out; they are
// exercised for real by the crate's own tests.)
#[kevent::test]
async fn default_flavor() {
    assert_eq!(async { 1 + 1 }.await, 2);
}

#[kevent::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_thread() -> Result<(), String> {
    Ok(())
}

#[kevent::test(flavor = "current_thread", crate = "::kevent")]
#[should_panic(expected = "boom")]
async fn panics() {
    panic!("boom");
}

#[kevent::test]
#[ignore]
async fn ignored() {}

#[kevent::main(flavor = "current_thread")]
async fn main() {}
