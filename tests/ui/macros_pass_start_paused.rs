// `start_paused = true`: an hour of sleep ends at once, on the paused clock.
use std::time::Duration;

#[kevent::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let real = std::time::Instant::now();
    let start = kevent::time::Instant::now();
    kevent::time::sleep(Duration::from_secs(3600)).await;
    assert!(start.elapsed() >= Duration::from_secs(3600));
    assert!(real.elapsed() < Duration::from_secs(60));
}
