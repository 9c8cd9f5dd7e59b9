#[kevent::main(worker_threads = "4")]
async fn main() {}

#[kevent::test(flavor = "multi_thread", worker_threads = -1)]
async fn negative() {}
