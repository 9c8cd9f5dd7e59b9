#[kevent::test]
fn not_async() {}

fn main() {}
