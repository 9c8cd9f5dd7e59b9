#![deny(warnings)]
/// Doc comments and attributes on `main` are kept.
#[kevent::main(flavor = "current_thread")]
#[allow(unused_variables)]
async fn main() {
    let unused = 1;
    let v = async { "current_thread" }.await;
    assert_eq!(v.len(), 14);
}
