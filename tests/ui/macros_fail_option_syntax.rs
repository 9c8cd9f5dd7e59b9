// Options must be `name = "value"` / `name = N`.
#[kevent::test(flavor)]
async fn flavor_without_value() {}

#[kevent::test(flavor = current_thread)]
async fn flavor_not_a_string() {}

#[kevent::test(crate = "not a path")]
async fn crate_not_a_path() {}

fn main() {}
