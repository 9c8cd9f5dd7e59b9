#[kevent::main(foo = "bar")]
async fn main() {}
