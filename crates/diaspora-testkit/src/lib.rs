//! Test support (not published): the loopback fault-injection server (`tests/http/fault_server.py`) as a
//! value that starts it, knows its two ports, reads its request log and stops it when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The repository root (this crate lives in `crates/diaspora-testkit`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The running loopback server: origin A (`a`) serves everything, origin B (`b`) only `/headers/…`.
pub struct Server {
    child: Child,
    /// Port of the main origin.
    pub a: u16,
    /// Port of the second origin.
    pub b: u16,
}

impl Server {
    /// Starts the server on 127.0.0.1 with OS-chosen ports.
    pub fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(repo().join("tests/http/fault_server.py"))
            .arg("--repo")
            .arg(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the loopback server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line).expect("PORTS line");
        let ports: Vec<u16> = line.split_whitespace().skip(1).filter_map(|p| p.parse().ok()).collect();
        assert_eq!(ports.len(), 2, "server said {line:?}");
        Self { child, a: ports[0], b: ports[1] }
    }

    /// An absolute URL on origin A.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.a)
    }

    /// The recorded requests whose target contains `key` (a plain HTTP/1.0 GET, no client library involved).
    pub fn log(&self, key: &str) -> Vec<serde_json::Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.a)).expect("connect to the loopback server");
        write!(s, "GET /_log?key={key} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end") + 4;
        serde_json::from_slice(&raw[split..]).expect("log is JSON")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
