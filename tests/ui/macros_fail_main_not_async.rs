#[kevent::main]
fn main() {}
