//! The smallest kevent program: spawn a task, sleep, join.
//!
//! `cargo run --example hello`

use std::time::Duration;

#[kevent::main]
async fn main() {
    let greeter = kevent::spawn(async {
        kevent::time::sleep(Duration::from_millis(10)).await;
        "hello from a kevent task"
    });
    println!("{}", greeter.await.expect("the task panicked"));
    let metrics = kevent::runtime::Handle::current().metrics();
    println!(
        "{} workers on the {} backend",
        metrics.num_workers(),
        metrics.backend
    );
}
