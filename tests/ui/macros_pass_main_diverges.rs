#![deny(warnings)]
// A body that never returns compiles without `unreachable_code` warnings.
#[kevent::main]
async fn main() {
    async {}.await;
    std::process::exit(0)
}
