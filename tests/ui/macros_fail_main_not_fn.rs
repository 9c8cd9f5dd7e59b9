#[kevent::main]
struct NotAFunction;

fn main() {}
