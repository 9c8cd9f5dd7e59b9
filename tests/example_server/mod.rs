//! An example server (examples/http.rs, examples/axum.rs and their tokio
//! twins) run as a black box for the tests: started on an ephemeral port,
//! asked over raw sockets, stopped with a signal.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// An example server, killed on drop if a test fails.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

pub fn example_path(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps; examples live in ../examples.
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join(name)
}

impl Server {
    pub fn start(example: &str, envs: &[(&str, &str)]) -> Server {
        Server::start_on(example, "127.0.0.1:0", envs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `example` listening on `addr`; `Err` with what it printed
    /// when it did not come up (a port still in use, say).
    pub fn start_on(example: &str, addr: &str, envs: &[(&str, &str)]) -> Result<Server, String> {
        let path = example_path(example);
        assert!(path.exists(), "build the example first: {}", path.display());
        let mut child = Command::new(path)
            .arg(addr)
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            _ => String::from("(nothing)"),
        };
        let Some(addr) = first.strip_prefix("listening on http://") else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            return Err(format!("server did not start ({status}): {first}"));
        };
        let addr = addr.parse().unwrap();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, addr })
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `signo`, then waits for the exit status (at most `within`).
    pub fn signal(mut self, signo: i32, within: Duration) -> ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, signo) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {within:?} of signal {signo}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length bodies only, as the server sends).
pub fn read_response(r: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {line:?}"))
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap();
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}
