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
        Self::spawn_at(dir, "127.0.0.1:0".parse().unwrap(), f).await
    }

    /// On a given address (a restart on the same port, so agents find the server again).
    pub async fn spawn_at(
        dir: tempfile::TempDir,
        addr: SocketAddr,
        f: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = Config::for_data_dir(dir.path());
        // The maintenance ticker would start forget/prune/check on every host a minute in;
        // tests that want it turn it on.
        config.maintenance_tick_secs = 0;
        f(&mut config);
        let listener = bind_retrying(addr).await;
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

    /// Any method with the CSRF header; `body` `Null` sends no body.
    pub async fn send_csrf(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let csrf = self.csrf().await;
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", csrf);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
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

async fn bind_retrying(addr: SocketAddr) -> tokio::net::TcpListener {
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("cannot bind {addr}");
}

/// Polls `check` every 50 ms until it is true or `secs` pass (a readiness wait, not a sleep).
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
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

impl TestApp {
    /// Mints an enrolment token as the logged-in user; returns the whole answer.
    pub async fn mint(&self, hostname: &str, repo_password: &str) -> Value {
        let r = self
            .post_csrf(
                "/api/enrollment-tokens",
                json!({"hostname": hostname, "repo_url": self.repo_url(hostname), "repo_password": repo_password}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// A repository path inside this app's temp dir (restic creates it on init).
    pub fn repo_url(&self, hostname: &str) -> String {
        self.data()
            .join("repos")
            .join(hostname)
            .display()
            .to_string()
    }

    pub async fn host(&self, id: &str) -> (u16, Value) {
        self.get_json(&format!("/api/hosts/{id}")).await
    }

    pub async fn wait_status(&self, id: &str, status: &str, secs: u64) {
        wait_until(secs, &format!("host {id} to be {status}"), || async {
            self.host(id).await.1["status"] == status
        })
        .await;
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events of a type, from the raw stream.
    pub async fn events_of(&self, event_type: &str) -> Vec<Value> {
        let (_, v) = self
            .get_json(&format!("/api/audit?type={event_type}&limit=1000"))
            .await;
        v["events"].as_array().cloned().unwrap_or_default()
    }
}

/// The agent binary, built beside the server by `cargo build --workspace --bins`.
pub fn agent_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_restic-manager"))
        .parent()
        .unwrap()
        .join("restic-manager-agent");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// A real agent process with its own config and state dir.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub child: Option<std::process::Child>,
}

impl Agent {
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("etc/agent.toml")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Runs `enroll` (off the async threads: the server under test may share them); returns
    /// (exit code, stdout+stderr).
    pub async fn enroll(&self, server: &str, token: &str, pin: Option<&str>) -> (i32, String) {
        let mut cmd = std::process::Command::new(agent_bin());
        cmd.args(["enroll", "--server", server, "--token", token])
            .arg("--config")
            .arg(self.config())
            .arg("--state-dir")
            .arg(self.state());
        if let Some(p) = pin {
            cmd.args(["--cert-pin", p]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn new() -> Agent {
        Agent {
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    /// Enrols with a fresh token from `app` and returns the agent and its host id.
    pub async fn enrolled(app: &TestApp, hostname: &str) -> (Agent, String) {
        let token = app.mint(hostname, "Repo-Password-For-Tests").await["token"]
            .as_str()
            .unwrap()
            .to_string();
        let a = Agent::new();
        let (code, out) = a.enroll(&app.base(), &token, None).await;
        assert_eq!(code, 0, "{out}");
        let cfg = std::fs::read_to_string(a.config()).unwrap();
        let host_id = cfg
            .lines()
            .find_map(|l| l.strip_prefix("host_id = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        (a, host_id)
    }

    /// Starts `run`.
    pub fn start(&mut self) {
        self.start_with(None);
    }

    /// Starts `run` as another user (root only: through `setpriv`).
    pub fn start_as(&mut self, uid: u32) {
        self.start_with(Some(uid));
    }

    fn start_with(&mut self, uid: Option<u32>) {
        let log = std::fs::File::create(self.dir.path().join("agent.log")).unwrap();
        let mut cmd = match uid {
            None => std::process::Command::new(agent_bin()),
            Some(uid) => {
                let mut c = std::process::Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(agent_bin());
                c
            }
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(self.config())
            .arg("--state-dir")
            .arg(self.state())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; returns its code.
    pub async fn exit_code(&mut self, secs: u64) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(s) = c.try_wait().unwrap() {
                    self.child = None;
                    return s.code().unwrap_or(-1);
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agent did not exit; log:\n{}",
                self.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn outbox_len(&self) -> usize {
        std::fs::read_dir(self.state().join("outbox"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

impl TestApp {
    /// A server with the built-in TLS listener (`cert.pem`, `key.pem` in `certs`), already
    /// set up, with this client logged in as the admin.
    pub async fn spawn_tls(certs: &Path) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_dir(dir.path());
        config.tls_cert = Some(certs.join("cert.pem"));
        config.tls_key = Some(certs.join("key.pem"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(config, listener, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let app = TestApp {
            addr,
            dir,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        let base = format!("https://{addr}");
        wait_until(30, "the TLS server", || async {
            app.client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        let token = app.setup_token();
        let r = app
            .client
            .post(format!("{base}/api/bootstrap"))
            .json(&json!({"token": token, "username": ADMIN, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        app
    }

    pub async fn tls_get(&self, path: &str) -> Value {
        self.client
            .get(format!("https://{}{path}", self.addr))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn tls_mint(&self, hostname: &str) -> String {
        let s = self.tls_get("/api/session").await;
        let v: Value = self
            .client
            .post(format!("https://{}/api/enrollment-tokens", self.addr))
            .header("x-csrf-token", s["csrf_token"].as_str().unwrap())
            .json(
                &json!({"hostname": hostname, "repo_url": self.repo_url(hostname), "repo_password": "Tls-Password-1"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}
