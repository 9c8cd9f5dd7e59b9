//! The tokio ecosystem on kevent (feature `tokio-compat`), with the real
//! crates: axum with tower-http's `TimeoutLayer` and a WebSocket echo,
//! reqwest and hyper-util's pooled `Client`, `axum::serve` on a kevent
//! listener, tokio-rustls and futures-rustls over kevent sockets, and
//! `kevent::hyper::Io` serving HTTP over TLS. Servers and clients run in
//! kevent tasks, on loopback.

#[path = "../examples/common/axum_app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use kevent::hyper::{Executor, Io};
use kevent::net::{TcpListener, TcpStream};
use kevent::runtime::{Builder, Runtime};

fn runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

/// Serves `router` on loopback from kevent tasks (hyper-util's auto
/// builder, upgrades on); returns its address and a count of the
/// connections it accepted.
async fn serve(router: axum::Router) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    kevent::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let service = TowerToHyperService::new(router.clone());
            kevent::spawn(async move {
                let _ = auto::Builder::new(Executor::new())
                    .serve_connection_with_upgrades(stream, service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// `GET path` over `io` with hyper's HTTP/1.1 client: status and body.
async fn get<T>(io: T, path: &str) -> (u16, Bytes)
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    kevent::spawn(conn);
    let req = Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[test]
fn timeout_layer_answers_200_in_time_and_408_for_a_stuck_handler() {
    runtime().block_on(async {
        let (addr, _) = serve(app::app("kevent", Duration::from_millis(200))).await;
        let (status, body) = get(TcpStream::connect(addr).await.unwrap(), "/plaintext").await;
        assert_eq!((status, &body[..]), (200, &b"Hello, World!"[..]));
        let start = Instant::now();
        let (status, _) = get(TcpStream::connect(addr).await.unwrap(), "/stuck").await;
        let waited = start.elapsed();
        assert_eq!(status, 408);
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    });
}

#[test]
fn axum_websocket_echoes_text_and_binary() {
    runtime().block_on(async {
        let (addr, _) = serve(app::app("kevent", Duration::from_secs(10))).await;
        // The client is tokio-tungstenite over a kevent socket (tokio's io
        // traits on kevent's `TcpStream`).
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut ws, res) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .unwrap();
        assert_eq!(res.status(), 101);
        use tokio_tungstenite::tungstenite::Message;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        ws.close(None).await.unwrap();
    });
}

#[test]
fn reqwest_fetches_from_a_kevent_server() {
    runtime().block_on(async {
        let (addr, _) = serve(app::app("kevent", Duration::from_secs(10))).await;
        let got = kevent::spawn(async move {
            let client = reqwest::Client::new();
            let mut bodies = Vec::new();
            for path in ["/user/7", "/plaintext"] {
                let res = client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                assert_eq!(res.headers()["server"], "kevent");
                bodies.push(res.text().await.unwrap());
            }
            bodies
        })
        .await
        .unwrap();
        assert_eq!(got, [r#"{"id":7,"name":"user 7"}"#, "Hello, World!"]);
    });
}

#[test]
fn hyper_util_pooled_client_fetches_and_reuses_connections() {
    use hyper_util::client::legacy::Client;
    runtime().block_on(async {
        let (addr, accepted) = serve(app::app("kevent", Duration::from_secs(10))).await;
        let client = Client::builder(Executor::new()).build_http::<Empty<Bytes>>();
        for _ in 0..3 {
            let res = client
                .get(format!("http://{addr}/plaintext").parse().unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"Hello, World!");
            // The connection goes back to the pool when its task sees the
            // body end, just after `collect` returns: give it the time.
            kevent::time::sleep(Duration::from_millis(20)).await;
        }
        let accepted = accepted.load(Ordering::SeqCst);
        assert!(
            accepted < 3,
            "no connection reused: {accepted} for 3 requests"
        );
    });
}

/// kevent's listener for `axum::serve` (axum's `Listener` trait is
/// axum's, the listener kevent's: the wrapper is the user's side).
struct KeventListener(TcpListener);

impl axum::serve::Listener for KeventListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                // Out of descriptors and the like: wait, then retry.
                Err(_) => kevent::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[test]
fn axum_serve_takes_a_kevent_listener() {
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app::app("kevent", Duration::from_secs(10));
        kevent::spawn(async move {
            axum::serve(KeventListener(listener), router).await.unwrap();
        });
        let (status, body) = get(TcpStream::connect(addr).await.unwrap(), "/json").await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"message":"Hello, World!"}"#);
        let (status, _) = get(TcpStream::connect(addr).await.unwrap(), "/nope").await;
        assert_eq!(status, 404);
    });
}

/// A self-signed certificate for "localhost", and rustls configurations
/// for a server presenting it and a client trusting it, both offering
/// `alpn`.
fn tls_configs(alpn: &[&[u8]]) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(server), Arc::new(client))
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

#[test]
fn tokio_rustls_over_kevent_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server_cfg, client_cfg) = tls_configs(&[]);
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = kevent::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(server_cfg)
                .accept(stream)
                .await
                .unwrap();
            let mut buf = [0u8; 9];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client_cfg)
            .connect(localhost(), stream)
            .await
            .unwrap();
        tls.write_all(b"hello tls").await.unwrap();
        let mut back = Vec::new();
        tls.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello tls");
        server.await.unwrap();
    });
}

#[test]
fn futures_rustls_over_kevent_streams_serves_http_through_hyper_io() {
    let (server_cfg, client_cfg) = tls_configs(&[b"http/1.1"]);
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        kevent::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = futures_rustls::TlsAcceptor::from(server_cfg)
                .accept(stream)
                .await
                .unwrap();
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"over TLS"),
                )))
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(Io::new(tls), service)
                .await
                .unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let tls = futures_rustls::TlsConnector::from(client_cfg)
            .connect(localhost(), stream)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (status, body) = get(Io::new(tls), "/").await;
        assert_eq!((status, &body[..]), (200, &b"over TLS"[..]));
    });
}

#[test]
fn futures_rustls_serves_http2_chosen_by_alpn_through_hyper_io() {
    let (server_cfg, client_cfg) = tls_configs(&[b"h2"]);
    runtime().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        kevent::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = futures_rustls::TlsAcceptor::from(server_cfg)
                .accept(stream)
                .await
                .unwrap();
            let service = hyper::service::service_fn(|req: Request<_>| async move {
                let body = format!("{:?}", req.version());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(
                    body,
                ))))
            });
            let _ = auto::Builder::new(Executor::new())
                .serve_connection(Io::new(tls), service)
                .await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let tls = futures_rustls::TlsConnector::from(client_cfg)
            .connect(localhost(), stream)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(Executor::new(), Io::new(tls))
            .await
            .unwrap();
        kevent::spawn(conn);
        let req = Request::get("https://localhost/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        assert_eq!(res.version(), hyper::Version::HTTP_2);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"HTTP/2.0");
    });
}
