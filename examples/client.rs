//! An HTTP client on kevent: reqwest (built on hyper-util's pooled
//! `Client` and `HttpConnector`, which call tokio's runtime from inside)
//! fetching a URL `N` times from `N` kevent tasks over its connection
//! pool. Needs feature `tokio-compat`:
//!
//! ```text
//! cargo run --release --features tokio-compat --example axum &
//! cargo run --release --features tokio-compat --example client -- http://127.0.0.1:8080/json 100
//! ```

use std::time::Instant;

#[kevent::main]
async fn main() -> Result<(), reqwest::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/plaintext".to_string());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    // One client, cloned into every task: they share its pool.
    let client = reqwest::Client::new();
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            kevent::spawn(async move {
                let res = client.get(&url).send().await?;
                let status = res.status();
                let body = res.bytes().await?;
                Ok::<_, reqwest::Error>((status, body.len()))
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, len) = task.await.expect("request task panicked")?;
        if status.is_success() {
            ok += 1;
        }
        if ok == 1 && status.is_success() {
            println!("{url}: {status}, {len} bytes");
        }
    }
    println!("{ok}/{n} succeeded in {:?}", start.elapsed());
    Ok(())
}
