#[kevent::main(flavor = "x")]
async fn main() {}
