// A syntax error in the body is reported by rustc where it is, not as a
// misuse of the attribute.
#[kevent::main]
async fn main() {
    let x = ;
}
