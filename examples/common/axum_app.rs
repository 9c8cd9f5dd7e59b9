//! The axum application shared by `examples/axum.rs` (kevent) and
//! `examples/axum_tokio.rs` (tokio): a `Router` with TechEmpower's
//! `/plaintext` and `/json`, and `/user/{id}`, a path parameter answered
//! with JSON. Nothing here names a runtime, so the two servers differ only
//! in their runtime lines.
#![allow(dead_code)]

use axum::extract::Path;
use axum::http::header::SERVER;
use axum::http::HeaderValue;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

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

/// The application; `server` names the runtime in the `Server` header.
pub fn app(server: &'static str) -> Router {
    let server = HeaderValue::from_static(server);
    Router::new()
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/user/{id}", get(user))
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
