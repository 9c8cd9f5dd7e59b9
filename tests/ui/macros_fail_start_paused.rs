// `#[kevent::main]` defaults to `multi_thread`, whose clock cannot pause.
#[kevent::main(start_paused = true)]
async fn main() {}

#[kevent::test(flavor = "multi_thread", start_paused = true)]
async fn paused_multi_thread() {}

#[kevent::test(start_paused = "yes")]
async fn not_a_bool() {}
