//! The HTTP service shared by `examples/http.rs` (kevent) and
//! `examples/http_tokio.rs` (tokio): TechEmpower's `/plaintext` and `/json`,
//! `/compute` (a handler that computes for 100 µs, as one that renders or
//! serializes a large reply does: where a scheduler that leaves a core idle
//! shows), plus the policies both servers apply (connection limit, accept backoff,
//! header-read timeout). Nothing here names a runtime, so the two servers
//! differ only in their runtime lines.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};
use hyper::{Method, Request, Response, StatusCode};

/// Settings, from the environment so tests can tighten them.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most connections served at once (`HTTP_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Time a client gets to send a request's headers (`HTTP_HEADER_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get at shutdown (`HTTP_SHUTDOWN_GRACE_MS`).
    pub shutdown_grace: Duration,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Config {
    /// Defaults, overridden by the environment.
    pub fn from_env() -> Config {
        Config {
            max_connections: env_num("HTTP_MAX_CONNECTIONS", 16_384) as usize,
            header_read_timeout: Duration::from_millis(env_num("HTTP_HEADER_TIMEOUT_MS", 5_000)),
            shutdown_grace: Duration::from_millis(env_num("HTTP_SHUTDOWN_GRACE_MS", 10_000)),
        }
    }
}

/// The listen address: the first argument, or 127.0.0.1:8080.
pub fn listen_addr() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string())
}

/// TechEmpower's plaintext and JSON tests, and `/compute`.
pub async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/plaintext") => (
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"Hello, World!"),
        ),
        (&Method::GET, "/compute") => (
            StatusCode::OK,
            "text/plain",
            Bytes::from(compute(Duration::from_micros(100)).to_string()),
        ),
        (&Method::GET, "/json") => (
            StatusCode::OK,
            "application/json",
            Bytes::from(json_message("Hello, World!")),
        ),
        (_, "/plaintext" | "/json" | "/compute") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found"),
        ),
    };
    let len = body.len();
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static(server_name()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(DATE, http_date());
    Ok(res)
}

/// The `Server` header: which runtime answers.
fn server_name() -> &'static str {
    SERVER_NAME.get().copied().unwrap_or("hyper")
}

static SERVER_NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the runtime in the `Server` header.
pub fn set_server_name(name: &'static str) {
    let _ = SERVER_NAME.set(name);
}

/// `{"message":"..."}`, serialised per request as TechEmpower requires.
fn json_message(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 14);
    out.extend_from_slice(b"{\"message\":\"");
    for c in message.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.extend_from_slice(b"\"}");
    out
}

thread_local! {
    /// The formatted Date header and the second it is for.
    static DATE_CACHE: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

/// The `Date` header (RFC 9110 IMF-fixdate), formatted once per second.
pub fn http_date() -> HeaderValue {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (
                secs,
                HeaderValue::from_str(&imf_fixdate(secs)).expect("ascii date"),
            );
        }
        c.1.clone()
    })
}

/// Formats seconds since the epoch as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn imf_fixdate(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Accept errors that mean "out of descriptors or memory for now": back
/// off and retry, never exit, never spin.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM)
    )
}

/// Errno values used above, without a libc dependency in the examples.
mod libc_errno {
    pub const EMFILE: i32 = 24;
    pub const ENFILE: i32 = 23;
    pub const ENOBUFS: i32 = 105;
    pub const ENOMEM: i32 = 12;
}

/// Exponential backoff for the accept loop: 10 ms doubling to 1 s.
#[derive(Debug)]
pub struct Backoff {
    /// The next delay.
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(10),
        }
    }
}

impl Backoff {
    /// The delay to sleep now; the following one doubles.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(1));
        d
    }

    /// Success: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(10);
    }
}

/// A runtime-agnostic counting semaphore for the connection limit.
#[derive(Debug, Clone)]
pub struct ConnLimit {
    /// Shared state.
    inner: Arc<LimitInner>,
}

/// The limit's shared state.
#[derive(Debug)]
struct LimitInner {
    /// Connections being served.
    active: AtomicUsize,
    /// The cap.
    max: usize,
    /// Tasks waiting for a slot.
    waiters: Mutex<Vec<Waker>>,
}

/// A connection slot, released on drop.
#[derive(Debug)]
pub struct Permit {
    /// The limit to give the slot back to.
    inner: Arc<LimitInner>,
}

impl ConnLimit {
    /// A limit of `max` concurrent connections.
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            inner: Arc::new(LimitInner {
                active: AtomicUsize::new(0),
                max: max.max(1),
                waiters: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Waits for a free slot.
    pub fn acquire(&self) -> impl Future<Output = Permit> + '_ {
        Acquire { limit: self }
    }

    /// Connections being served.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }
}

/// Future of [`ConnLimit::acquire`].
struct Acquire<'a> {
    /// The limit.
    limit: &'a ConnLimit,
}

impl Future for Acquire<'_> {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let inner = &self.limit.inner;
        let try_take = || {
            let cur = inner.active.load(Ordering::SeqCst);
            cur < inner.max
                && inner
                    .active
                    .compare_exchange(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
        };
        if try_take() {
            return Poll::Ready(Permit {
                inner: inner.clone(),
            });
        }
        // Register, then look again: a release between the two is seen.
        inner.waiters.lock().unwrap().push(cx.waker().clone());
        if try_take() {
            return Poll::Ready(Permit {
                inner: inner.clone(),
            });
        }
        Poll::Pending
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.active.fetch_sub(1, Ordering::SeqCst);
        let waiters = std::mem::take(&mut *self.inner.waiters.lock().unwrap());
        for w in waiters {
            w.wake();
        }
    }
}

/// Computes for `d` without yielding (a hash chain, so it is not optimized
/// away); returns the last value.
fn compute(d: Duration) -> u64 {
    let start = std::time::Instant::now();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while start.elapsed() < d {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    x
}
