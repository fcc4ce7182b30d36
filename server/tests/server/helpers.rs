//! `spawn_app`: the real server on port 0 with a temporary data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use server::clock::SystemClock;
use server::config::Config;
use server::store::{EventStore, StoreOptions};
use tokio::sync::oneshot;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), server::ServerError>>>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir, f).await
    }

    pub async fn spawn_in(dir: tempfile::TempDir, f: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::for_data_dir(dir.path());
        f(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(config, listener, async {
            let _ = rx.await;
        }));
        let app = TestApp {
            addr,
            dir,
            client: client(),
            shutdown: Some(tx),
            handle: Some(handle),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("server did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("restic-manager.db")
    }

    pub fn setup_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("setup-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Completes first-run setup; the client is then logged in as the admin.
    pub async fn bootstrap(&self) -> Value {
        let r = self
            .post_json(
                "/api/bootstrap",
                json!({"token": self.setup_token(), "username": ADMIN, "password": ADMIN_PASSWORD}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    pub async fn csrf(&self) -> String {
        let (s, v) = self.get_json("/api/session").await;
        assert_eq!(s, 200, "{v}");
        v["csrf_token"].as_str().unwrap().to_string()
    }

    /// A POST with the CSRF header of the current session.
    pub async fn post_csrf(&self, path: &str, body: Value) -> reqwest::Response {
        let csrf = self.csrf().await;
        self.client
            .post(self.url(path))
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Logs a fresh client in.
    pub async fn login_as(&self, username: &str, password: &str) -> reqwest::Client {
        let c = client();
        let r = c
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        c
    }

    /// Stops the server gracefully and returns the data dir.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        let TestApp { dir, .. } = self;
        dir
    }
}

/// A bare store in a temp dir (no server).
pub fn open_store(dir: &Path) -> EventStore {
    EventStore::open(
        &dir.join("restic-manager.db"),
        Arc::new(SystemClock),
        StoreOptions::default(),
    )
    .unwrap()
}
