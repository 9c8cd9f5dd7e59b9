//! The axum application shared by `examples/axum.rs` (kevent) and
//! `examples/axum_tokio.rs` (tokio): a `Router` with TechEmpower's
//! `/plaintext` and `/json`, `/user/{id}`, a path parameter answered
//! with JSON, `/ws`, a WebSocket echo, and `/stuck`, a handler that never
//! answers, so tower-http's `TimeoutLayer` answers 408 in its place.
//! Nothing here names a runtime, so the two servers differ only in their
//! runtime lines. (The timeout layer and the WebSocket upgrade call tokio's
//! timer and spawner from inside: on kevent they need feature
//! `tokio-compat`.)
#![allow(dead_code)]

use std::time::Duration;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::Path;
use axum::http::header::SERVER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::timeout::TimeoutLayer;

/// How long a request may take before the server answers 408 instead:
/// `REQUEST_TIMEOUT_MS`, else 10 s.
pub fn request_timeout() -> Duration {
    std::env::var("REQUEST_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// The body of `/json`.
#[derive(Debug, Serialize)]
pub struct Message {
    /// Always "Hello, World!".
    pub message: &'static str,
}

/// The body of `/user/{id}`.
#[derive(Debug, Serialize)]
pub struct User {
    /// The id from the path.
    pub id: u64,
    /// A name made from the id.
    pub name: String,
}

/// The application; `server` names the runtime in the `Server` header;
/// requests taking longer than `timeout` are answered 408.
pub fn app(server: &'static str, timeout: Duration) -> Router {
    let server = HeaderValue::from_static(server);
    Router::new()
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/user/{id}", get(user))
        .route("/ws", get(ws))
        .route("/stuck", get(stuck))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(
            move |mut res: axum::response::Response| {
                let server = server.clone();
                async move {
                    res.headers_mut().insert(SERVER, server);
                    res
                }
            },
        ))
}

/// `GET /plaintext`: TechEmpower's plaintext test.
async fn plaintext() -> &'static str {
    "Hello, World!"
}

/// `GET /json`: TechEmpower's JSON test, serialised per request.
async fn json() -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

/// `GET /user/{id}`: a path parameter, parsed and answered as JSON (a
/// non-numeric id is refused with 400 by the extractor).
async fn user(Path(id): Path<u64>) -> Json<User> {
    Json(User {
        id,
        name: format!("user {id}"),
    })
}

/// `GET /stuck`: never answers, like a handler waiting on a backend that
/// hangs; the timeout layer answers 408 instead.
async fn stuck() -> &'static str {
    std::future::pending::<()>().await;
    unreachable!()
}

/// `GET /ws`: upgrades to a WebSocket that echoes every text and binary
/// message until the client closes. (axum runs the upgraded connection in
/// a task of its own, with `tokio::spawn`.)
async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(echo)
}

/// Echoes `socket`'s data messages back; pings are answered by the library.
async fn echo(mut socket: WebSocket) {
    use axum::extract::ws::Message;
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
