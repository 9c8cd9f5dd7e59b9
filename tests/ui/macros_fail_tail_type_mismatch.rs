// A tail expression of the wrong type is reported on that expression.
#[kevent::main(flavor = "current_thread")]
async fn main() -> Result<(), std::io::Error> {
    let answer = async { 42 }.await;
    answer + 1
}
