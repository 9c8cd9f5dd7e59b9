#![deny(warnings)]
// `impl Trait` return types are kept as they are.
#[kevent::main(flavor = "current_thread")]
async fn main() -> impl std::process::Termination {
    async { std::process::ExitCode::SUCCESS }.await
}
