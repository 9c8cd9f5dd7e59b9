#![deny(warnings)]
// Every option at once, trailing comma, returning a `Result` with `?`.
use std::error::Error;

async fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

#[kevent::main(flavor = "multi_thread", worker_threads = 2, crate = "kevent",)]
async fn main() -> Result<(), Box<dyn Error>> {
    let n = parse("7").await?;
    assert_eq!(n, 7);
    Ok(())
}
