//! `ToSocketAddrs`: what `bind`, `connect` and `send_to` accept, and its
//! resolution off the workers.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Values that name one or more socket addresses: the inputs tokio's
/// `ToSocketAddrs` takes — [`SocketAddr`] (and its V4/V6 forms),
/// `(IpAddr, u16)` (and the V4/V6 forms), `&str`, [`String`],
/// `(&str, u16)`, `(String, u16)`, `&[SocketAddr]`, and references to any
/// of these.
///
/// Literal addresses (`"127.0.0.1:8080"`, `("::1", 80)`) are parsed in
/// place. A host name (`"localhost:8080"`) is looked up with the system
/// resolver, which blocks, so the lookup runs on the blocking pool
/// ([`spawn_blocking`](crate::task::spawn_blocking)) and never holds up a
/// worker.
///
/// The trait is sealed: its method is an implementation detail.
pub trait ToSocketAddrs: sealed::ToSocketAddrsPriv {}

/// Keeps [`ToSocketAddrs`] implementable only here.
pub(crate) mod sealed {
    use std::net::SocketAddr;

    /// What an address value turns into before any lookup.
    #[derive(Debug)]
    pub enum Parsed {
        /// Addresses known without a lookup.
        Done(Vec<SocketAddr>),
        /// A `host:port` string to look up.
        Lookup(String),
        /// A host and port to look up.
        LookupPair(String, u16),
    }

    /// The hidden half of [`super::ToSocketAddrs`].
    pub trait ToSocketAddrsPriv {
        /// Parses literal addresses, or says what to look up.
        fn parse_addrs(&self) -> std::io::Result<Parsed>;
    }
}

use sealed::{Parsed, ToSocketAddrsPriv};

/// Resolves `addr` to its socket addresses; a host name is looked up on
/// the blocking pool, a literal address is not.
pub(crate) async fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    match addr.parse_addrs()? {
        Parsed::Done(addrs) => Ok(addrs),
        lookup => crate::task::spawn_blocking(move || look_up(lookup))
            .await
            .map_err(|e| io::Error::other(format!("address lookup task failed: {e}")))?,
    }
}

/// Asks the system resolver (blocking).
fn look_up(parsed: Parsed) -> io::Result<Vec<SocketAddr>> {
    Ok(match parsed {
        Parsed::Done(addrs) => addrs,
        Parsed::Lookup(host) => std::net::ToSocketAddrs::to_socket_addrs(&host)?.collect(),
        Parsed::LookupPair(host, port) => {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))?.collect()
        }
    })
}

/// Resolves `addr` and runs `f` on each address in turn until one
/// succeeds; otherwise returns the last error.
pub(crate) async fn each_addr<A, T, F, Fut>(addr: A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last = None;
    for a in resolve(addr).await? {
        match f(a).await {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}

/// The socket addresses `host` names (tokio's `lookup_host`): a literal
/// address as is, a host name (`"localhost:80"`, `("localhost", 80)`)
/// through the system resolver on the blocking pool.
///
/// ```
/// # kevent_runtime::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let addrs: Vec<_> = kevent_runtime::net::lookup_host("127.0.0.1:80").await?.collect();
/// assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// Outside a kevent runtime, for a name that needs a lookup.
pub async fn lookup_host<T: ToSocketAddrs>(
    host: T,
) -> io::Result<impl Iterator<Item = SocketAddr>> {
    Ok(resolve(host).await?.into_iter())
}

/// Resolves `addr` to its first address (`send_to`'s rule).
pub(crate) async fn first_addr<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddr> {
    resolve(addr)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))
}

/// Implements the traits for types that are one literal address.
macro_rules! literal {
    ($($t:ty),*) => {$(
        impl ToSocketAddrs for $t {}
        impl ToSocketAddrsPriv for $t {
            fn parse_addrs(&self) -> io::Result<Parsed> {
                Ok(Parsed::Done(vec![SocketAddr::from(*self)]))
            }
        }
    )*};
}

literal!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for [SocketAddr] {}
impl ToSocketAddrsPriv for [SocketAddr] {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        Ok(Parsed::Done(self.to_vec()))
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}
impl<const N: usize> ToSocketAddrsPriv for [SocketAddr; N] {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        Ok(Parsed::Done(self.to_vec()))
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {}
impl ToSocketAddrsPriv for Vec<SocketAddr> {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        Ok(Parsed::Done(self.clone()))
    }
}

impl ToSocketAddrs for str {}
impl ToSocketAddrsPriv for str {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        Ok(match self.parse::<SocketAddr>() {
            Ok(a) => Parsed::Done(vec![a]),
            Err(_) => Parsed::Lookup(self.to_owned()),
        })
    }
}

impl ToSocketAddrs for String {}
impl ToSocketAddrsPriv for String {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        self.as_str().parse_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl ToSocketAddrsPriv for (&str, u16) {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        let (host, port) = *self;
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => Parsed::Done(vec![SocketAddr::new(ip, port)]),
            Err(_) => Parsed::LookupPair(host.to_owned(), port),
        })
    }
}

impl ToSocketAddrs for (String, u16) {}
impl ToSocketAddrsPriv for (String, u16) {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        (self.0.as_str(), self.1).parse_addrs()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrsPriv + ?Sized> ToSocketAddrsPriv for &T {
    fn parse_addrs(&self) -> io::Result<Parsed> {
        (**self).parse_addrs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(p: Parsed) -> Vec<SocketAddr> {
        match p {
            Parsed::Done(a) => a,
            other => panic!("expected literal addresses, got {other:?}"),
        }
    }

    #[test]
    fn literal_strings_parse_without_lookup() {
        let a: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(done("127.0.0.1:80".parse_addrs().unwrap()), vec![a]);
        assert_eq!(done(("127.0.0.1", 80).parse_addrs().unwrap()), vec![a]);
        assert_eq!(
            done(("::1".to_string(), 80).parse_addrs().unwrap()),
            vec!["[::1]:80".parse().unwrap()]
        );
    }

    #[test]
    fn host_names_ask_for_a_lookup() {
        assert!(matches!(
            "localhost:80".parse_addrs().unwrap(),
            Parsed::Lookup(h) if h == "localhost:80"
        ));
        assert!(matches!(
            ("localhost", 80).parse_addrs().unwrap(),
            Parsed::LookupPair(h, 80) if h == "localhost"
        ));
    }
}
