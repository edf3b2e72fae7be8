//! Ambient proxy variables are ignored (a binary of its own: it changes the process environment).

use diaspora_fetch::http::{HttpClient, HttpSettings, Request};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The loopback server; stopped when dropped (its stdin closes).
#[allow(dead_code)]
struct Server {
    child: Child,
    a: u16,
    b: u16,
}

#[allow(dead_code)]
impl Server {
    fn start() -> Self {
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
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports: Vec<u16> = line.split_whitespace().skip(1).map(|p| p.parse().unwrap()).collect();
        assert_eq!(ports.len(), 2, "server said {line:?}");
        Self { child, a: ports[0], b: ports[1] }
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.a)
    }
    fn log(&self, key: &str) -> Vec<serde_json::Value> {
        let c = HttpClient::new(fast()).unwrap();
        let r = c.fetch(Request::get(self.url(&format!("/_log?key={key}")), "log")).unwrap();
        serde_json::from_slice::<Vec<serde_json::Value>>(&r.bytes).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn fast() -> HttpSettings {
    HttpSettings {
        connect_timeout_ms: 2_000,
        read_timeout_ms: 400,
        total_timeout_ms: 10_000,
        max_body_bytes: 1024 * 1024,
        max_attempts: 3,
        retry_budget: 100,
        backoff_base_ms: 20,
        backoff_max_ms: 200,
        retry_after_cap_ms: 5_000,
        max_redirects: 3,
        per_host: 2,
        proxy: None,
        user_agent: "diaspora-test".into(),
    }
}

const FILE: &str = "data/sample/worldbank/NY.GDP.MKTP.KD.ZG_p3.json";

fn file_bytes() -> Vec<u8> {
    std::fs::read(repo().join(FILE)).unwrap()
}

#[test]
fn ambient_proxy_settings_are_ignored() {
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("HTTP_PROXY", "http://127.0.0.1:9");
        std::env::set_var("http_proxy", "http://127.0.0.1:9");
        std::env::set_var("ALL_PROXY", "http://127.0.0.1:9");
    }
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let r = c.fetch(Request::get(s.url(&format!("/ok/{FILE}")), "direct")).unwrap();
    assert_eq!(r.bytes, file_bytes());
}
