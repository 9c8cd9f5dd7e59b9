//! An axum 0.8 application served on tokio (the twin of `examples/axum.rs`,
//! for side-by-side comparison): a `Router` with JSON, a path
//! parameter (`/user/{id}`), `/plaintext`, a WebSocket echo (`/ws`) and
//! tower-http's `TimeoutLayer` (`/stuck`), through hyper-util's auto
//! builder (HTTP/1.1 with upgrades, and HTTP/2) and `TowerToHyperService`.
//!
//! `cargo run --release --example axum_tokio [ADDR]` (default 127.0.0.1:8080;
//! workers from `TOKIO_WORKER_THREADS`, else one per CPU). Ctrl-C or SIGTERM stops
//! accepting, lets in-flight requests finish, and exits 0.
//! Only the runtime lines differ from `examples/axum.rs`:
//! `diff examples/axum_tokio.rs examples/axum.rs`.

#[path = "common/axum_app.rs"]
mod app;
#[path = "common/http_service.rs"]
mod service;

use std::io;
use std::pin::pin;

use futures::future::{select, Either};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use hyper_util::rt::{TokioExecutor as Executor, TokioIo, TokioTimer as Timer};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::{spawn, time};

#[tokio::main]
async fn main() -> io::Result<()> {
    let router = app::app("tokio", app::request_timeout());
    let config = service::Config::from_env();
    // Listen for Ctrl-C and SIGTERM before announcing the address, so a
    // signal sent as soon as we are up is never lost.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(service::listen_addr()).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);

    let mut http = auto::Builder::new(Executor::new());
    http.http1()
        .timer(Timer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true)
        .half_close(true)
        .pipeline_flush(true);
    http.http2().timer(Timer::new());

    let limit = service::ConnLimit::new(config.max_connections);
    let graceful = GracefulShutdown::new();
    let mut backoff = service::Backoff::default();
    let mut stop = pin!(async {
        select(pin!(interrupt.recv()), pin!(terminate.recv())).await;
    });
    loop {
        let accept = pin!(async {
            let permit = limit.acquire().await;
            (listener.accept().await, permit)
        });
        let (accepted, permit) = match select(accept, stop.as_mut()).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff.reset();
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let conn = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Err(e) if service::is_resource_exhaustion(&e) => {
                let delay = backoff.next_delay();
                eprintln!("accept: {e}; retrying in {delay:?}");
                time::sleep(delay).await;
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }

    drop(listener);
    eprintln!("shutting down: finishing in-flight requests");
    if time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("grace period over; closing the remaining connections");
    }
    Ok(())
}
