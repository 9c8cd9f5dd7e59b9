#![deny(warnings)]
// `main` returning `std::io::Result` with an early `return` and `?`.
use std::io;

async fn check(ok: bool) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other("not ok"))
    }
}

#[kevent::main(worker_threads = 1)]
async fn main() -> io::Result<()> {
    #![allow(unreachable_code)]
    check(true).await?;
    if async { true }.await {
        return Ok(());
    }
    check(false).await
}
