//! TCP over loopback, run on kevent and on tokio side by side.
//!
//! Run with `cargo bench --bench net`.
//!
//! Every group holds two functions, `kevent` and `tokio`, whose bodies are
//! the same source text: the [`suite!`] macro expands it once per crate, so
//! only the runtime (and its I/O traits: futures' `AsyncReadExt` for kevent,
//! tokio's own for tokio) differs. Both runtimes are multi-thread runtimes
//! with the same number of workers: 2 (the cores of the reference machine),
//! or the value of the `BENCH_WORKERS` environment variable. Every socket,
//! on both sides of every connection, has `TCP_NODELAY` set.
//!
//! Each runtime is built once per group, with its listener, server tasks and
//! (for the echo groups) its client connections, and dropped before the
//! other runtime's function runs, so that the two never compete. All the
//! measured work runs in tasks on the runtime's workers: the bench thread
//! only spawns the client tasks of one iteration and awaits them in
//! `block_on`, so the client end and the server end of each connection share
//! the same workers, as they would in a proxy or a service mesh.
//!
//! # Groups
//!
//! * `tcp_echo_1conn`: one connection; the client writes a 64-byte message
//!   and reads the echo back, [`ROUND_TRIPS`] times per iteration. The server
//!   task echoes whatever it reads. One element is one round trip.
//! * `tcp_echo_64conn`: the same over [`CONNS`] connections at once, each
//!   doing `ROUND_TRIPS / CONNS` round trips per iteration, so an iteration
//!   moves as many messages as in `tcp_echo_1conn`.
//! * `accept_storm`: [`STORM`] client tasks each connect to the listener,
//!   set `TCP_NODELAY` and close (with a reset, see below). The accept loop
//!   spawns a task per accepted connection that reads until end of stream
//!   or error and closes its end; the iteration ends when the last of those
//!   tasks is done. One element is one connection, accepted, served and
//!   closed on both sides.
//!
//! # Listen backlog
//!
//! Both runtimes' `TcpListener::bind` listen with std's backlog of 128
//! (mio's choice). [`STORM`] = 256 connects at once then overflow the accept
//! queue, the kernel drops SYNs, and the clients retransmit them after 1 s:
//! an iteration would time TCP's retransmission timer, not the runtime. So
//! every listener here is made with each runtime's own
//! `TcpSocket::listen(BACKLOG)` (the same API in both).
//!
//! # Clients close with a reset
//!
//! A client that closed with a FIN would leave its end in `TIME_WAIT` for a
//! minute. A run opens tens of thousands of connections, and every later
//! `connect` then searches its ephemeral port among them: `perf record` of
//! the FIN version put 45 % of the process's CPU in the kernel's
//! `__inet_hash_connect`/`__inet_check_established`, whichever runtime ran,
//! and samples swung from 8 to 27 ms with the size of that population. So
//! each client sets `SO_LINGER` to 0 s before it drops its stream (its
//! runtime's `TcpStream::set_linger`): the close sends a reset, nothing waits in
//! `TIME_WAIT`, and the bench times the runtimes' accept, registration and
//! teardown rather than the kernel's port search.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};

/// Round trips per iteration in both echo groups.
const ROUND_TRIPS: usize = 1024;
/// Bytes in one message.
const MSG_LEN: usize = 64;
/// Connections in `tcp_echo_64conn`.
const CONNS: usize = 64;
/// Connections opened and closed per iteration in `accept_storm`.
const STORM: usize = 256;
/// `listen` backlog of every listener: room for a whole storm.
const BACKLOG: u32 = 1024;

#[path = "common/mod.rs"]
mod common;
use common::workers;

/// Expands the whole suite for one runtime crate, as a module named `$m`.
/// Each function builds its runtime, registers one bench function named
/// after the crate in the given group, and drops the runtime.
macro_rules! suite {
    ($m:ident, $krate:ident) => {
        mod $m {
            use super::*;
            use ::$krate as krate;
            use krate::io::{AsyncReadExt, AsyncWriteExt};
            use krate::net::{TcpSocket, TcpStream};

            /// The function's name inside each group.
            const NAME: &str = stringify!($krate);

            fn runtime() -> krate::runtime::Runtime {
                krate::runtime::Builder::new_multi_thread()
                    .worker_threads(workers())
                    .enable_all()
                    .build()
                    .expect("build the runtime")
            }

            /// Listens on a free loopback port with a backlog of [`BACKLOG`]
            /// and spawns an accept loop that runs `serve` on each
            /// connection, in its own task, with `TCP_NODELAY` set. Returns
            /// the listener's address.
            async fn listen<F, Fut>(serve: F) -> std::net::SocketAddr
            where
                F: Fn(TcpStream) -> Fut + Send + 'static,
                Fut: std::future::Future<Output = ()> + Send + 'static,
            {
                let socket = TcpSocket::new_v4().expect("socket");
                socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
                let listener = socket.listen(BACKLOG).expect("listen");
                let addr = listener.local_addr().unwrap();
                krate::spawn(async move {
                    loop {
                        let (stream, _) = listener.accept().await.expect("accept");
                        stream.set_nodelay(true).unwrap();
                        krate::spawn(serve(stream));
                    }
                });
                addr
            }

            /// Echoes everything it reads until the peer closes.
            async fn echo(mut stream: TcpStream) {
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }

            /// Opens `n` client connections to an echo server.
            async fn echo_clients(n: usize) -> Vec<TcpStream> {
                let addr = listen(echo).await;
                let mut clients = Vec::with_capacity(n);
                for _ in 0..n {
                    let stream = TcpStream::connect(addr).await.expect("connect");
                    stream.set_nodelay(true).unwrap();
                    clients.push(stream);
                }
                clients
            }

            /// Sends `rounds` messages on `stream` and reads each echo back
            /// before sending the next; returns the stream for reuse.
            async fn ping_pong(mut stream: TcpStream, rounds: usize) -> TcpStream {
                let msg = [7u8; MSG_LEN];
                let mut buf = [0u8; MSG_LEN];
                for _ in 0..rounds {
                    stream.write_all(&msg).await.unwrap();
                    stream.read_exact(&mut buf).await.unwrap();
                }
                stream
            }

            /// Runs one iteration of an echo group: every client does its
            /// share of [`ROUND_TRIPS`] in its own task.
            fn echo_bench(g: &mut BenchmarkGroup<'_, WallTime>, conns: usize) {
                let rt = runtime();
                let mut clients = rt.block_on(echo_clients(conns));
                let rounds = ROUND_TRIPS / conns;

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        let tasks: Vec<_> = clients
                            .drain(..)
                            .map(|s| rt.spawn(ping_pong(s, rounds)))
                            .collect();
                        rt.block_on(async {
                            for task in tasks {
                                clients.push(task.await.unwrap());
                            }
                        });
                    })
                });

                // Close the clients while their runtime is alive.
                drop(clients);
            }

            pub fn tcp_echo_1conn(g: &mut BenchmarkGroup<'_, WallTime>) {
                echo_bench(g, 1);
            }

            pub fn tcp_echo_64conn(g: &mut BenchmarkGroup<'_, WallTime>) {
                echo_bench(g, CONNS);
            }

            pub fn accept_storm(g: &mut BenchmarkGroup<'_, WallTime>) {
                use futures::channel::mpsc;
                use futures::StreamExt;

                let rt = runtime();
                // Server tasks still to see EOF in this iteration; the one
                // that brings it to zero signals the bench thread.
                let rem = Arc::new(AtomicUsize::new(0));
                let (done_tx, mut done_rx) = mpsc::unbounded::<()>();
                let addr = {
                    let rem = rem.clone();
                    rt.block_on(listen(move |mut stream: TcpStream| {
                        let rem = rem.clone();
                        let done_tx = done_tx.clone();
                        async move {
                            let mut buf = [0u8; 64];
                            while let Ok(n) = stream.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                            drop(stream);
                            if rem.fetch_sub(1, Relaxed) == 1 {
                                done_tx.unbounded_send(()).unwrap();
                            }
                        }
                    }))
                };

                g.bench_function(NAME, |b| {
                    b.iter(|| {
                        rem.store(STORM, Relaxed);
                        for _ in 0..STORM {
                            rt.spawn(async move {
                                let stream = TcpStream::connect(addr).await.expect("connect");
                                stream.set_nodelay(true).unwrap();
                                // Close with a reset (see the module docs).
                                // tokio deprecates `set_linger` because a
                                // nonzero linger blocks the dropping thread;
                                // zero never does.
                                #[allow(deprecated)]
                                stream.set_linger(Some(Duration::ZERO)).unwrap();
                            });
                        }
                        rt.block_on(done_rx.next()).unwrap();
                    })
                });
            }
        }
    };
}

suite!(on_kevent, kevent);
suite!(on_tokio, tokio);

/// One criterion group per workload, configured for a noisy 2-core machine;
/// `$elements` is the throughput of one iteration.
macro_rules! groups {
    ($($bench:ident: $elements:expr),* $(,)?) => {
        $(
            fn $bench(c: &mut Criterion) {
                let mut g = c.benchmark_group(stringify!($bench));
                g.sample_size(20)
                    .measurement_time(Duration::from_secs(3))
                    .warm_up_time(Duration::from_secs(1))
                    // Iterations last milliseconds: 20 samples of equally
                    // many iterations fit the 3 s, 1 + 2 + … + 20 do not.
                    .sampling_mode(SamplingMode::Flat)
                    .throughput(Throughput::Elements($elements as u64));
                on_kevent::$bench(&mut g);
                on_tokio::$bench(&mut g);
                g.finish();
            }
        )*
        criterion_group!(net, $($bench),*);
    };
}

groups!(
    tcp_echo_1conn: ROUND_TRIPS,
    tcp_echo_64conn: ROUND_TRIPS,
    accept_storm: STORM,
);

criterion_main!(net);
