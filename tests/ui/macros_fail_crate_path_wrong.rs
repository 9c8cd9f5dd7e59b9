// A wrong `crate = "..."` path is reported on the path.
#[kevent::main(crate = "no_such_crate")]
async fn main() {}
