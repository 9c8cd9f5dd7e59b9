#![deny(warnings)]
// `#[kevent::main]` with no options: multi_thread flavor, `()` return.
#[kevent::main]
async fn main() {
    let v = async { 21 * 2 }.await;
    assert_eq!(v, 42);
}
