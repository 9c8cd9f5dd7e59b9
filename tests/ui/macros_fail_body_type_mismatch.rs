// Errors in the body point at user code, not at the attribute.
#[kevent::main]
async fn main() -> Result<(), std::io::Error> {
    let n: u32 = "not a number";
    let _ = n;
}
