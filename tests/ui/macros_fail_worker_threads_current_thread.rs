// Explicit `current_thread` flavor.
#[kevent::main(flavor = "current_thread", worker_threads = 2)]
async fn main() {}

// `#[kevent::test]` defaults to `current_thread`.
#[kevent::test(worker_threads = 2)]
async fn defaults_to_current_thread() {}
