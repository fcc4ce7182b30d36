//! Helpers shared by the benchmarks that drive the real release binaries: a server process
//! on a free loopback port with its admin set up, and child processes that die with the
//! benchmark.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A number from the environment, or the default.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `restic-manager serve`, logged in as its admin.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with the admin's session cookie.
    pub http: reqwest::Client,
    /// The session's CSRF token.
    pub csrf: String,
    /// The process.
    pub proc: Killed,
}

/// Starts the release server on `data`, completes first-run setup, logs in.
pub async fn start_server(data: &Path, offline_after: u64) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_restic-manager"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RM_DATA_DIR", data)
        .env("RM_OFFLINE_AFTER", offline_after.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server binary");
    let proc = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..300 {
        if http.get(format!("{base}/readyz")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not start");
    let token = std::fs::read_to_string(data.join("setup-token")).unwrap();
    let r = http
        .post(format!("{base}/api/bootstrap"))
        .json(&json!({"token": token.trim(), "username": "admin", "password": "benchmark password 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let s: Value = http
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = s["csrf_token"].as_str().unwrap().to_string();
    Server {
        base,
        http,
        csrf,
        proc,
    }
}

impl Server {
    /// GET → JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POST with CSRF → JSON (null when the answer has no body).
    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// PUT with CSRF → status.
    pub async fn put(&self, path: &str, body: Value) -> u16 {
        self.http
            .put(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
