//! HTTPS on kevent: HTTP/1.1 and HTTP/2 (chosen by ALPN) over
//! futures-rustls on kevent's `TcpStream`, served by hyper-util's auto
//! builder through `kevent::hyper::Io`, with no glue of our own. A
//! self-signed certificate for `localhost` is made at start (rcgen) and
//! written next to the system's temporary files, so a client can trust it:
//!
//! ```text
//! cargo run --example tls [ADDR]          # default 127.0.0.1:8443
//! curl --cacert /tmp/kevent-tls-example.pem https://localhost:8443/
//! curl --http2 --cacert /tmp/kevent-tls-example.pem https://localhost:8443/
//! ```
//!
//! Nothing here calls tokio: no feature needed beyond the default `hyper`.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use kevent::hyper::{Executor, Io, Timer};
use kevent::net::TcpListener;

/// Says which protocol the request came over.
async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("Hello over TLS, {:?}\n", req.version());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// A TLS server configuration with a fresh self-signed certificate for
/// `localhost`, offering HTTP/2 then HTTP/1.1 by ALPN; the certificate's
/// PEM is written to `pem_path` for clients to trust.
fn tls_config(pem_path: &std::path::Path) -> io::Result<rustls::ServerConfig> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(io::Error::other)?;
    std::fs::write(pem_path, certified.cert.pem())?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[kevent::main]
async fn main() -> io::Result<()> {
    let pem_path = std::env::temp_dir().join("kevent-tls-example.pem");
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&pem_path)?));
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8443".to_string());
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening on https://{}", listener.local_addr()?);
    eprintln!("certificate: {}", pem_path.display());

    let mut http = auto::Builder::new(Executor::new());
    http.http1().timer(Timer::new());
    http.http2().timer(Timer::new());
    loop {
        let (stream, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let http = http.clone();
        kevent::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(e) => return eprintln!("{peer}: handshake: {e}"),
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = hyper::service::service_fn(hello);
            // ALPN settled the protocol: serve only that one.
            let http = if h2 {
                http.http2_only()
            } else {
                http.http1_only()
            };
            if let Err(e) = http.serve_connection(Io::new(tls), service).await {
                eprintln!("{peer}: {e}");
            }
        });
    }
}
