//! Enrolment and the connection to the server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::protocol::{
    self, AgentMessage, ConfigApplied, Envelope, Heartbeat, Hello, SchedulesApplied,
    SchedulesUpdate, ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;

use crate::browse::Browser;
use crate::config::AgentConfig;
use crate::facts;
use crate::jobs;
use crate::outbox::Outbox;
use crate::scheduler;
use crate::secrets::SecretsFile;
use crate::tls;

const EXIT_REFUSED: u8 = 3;
const EXIT_PROTOCOL: u8 = 4;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `restic-manager-agent enroll`.
pub async fn enroll(
    server: String,
    token: String,
    config_path: PathBuf,
    state_dir: PathBuf,
    cert_pin: Option<String>,
) -> ExitCode {
    match enroll_inner(&server, &token, &config_path, &state_dir, cert_pin).await {
        Ok(host_id) => {
            println!(
                "enrolled as host {host_id}; config written to {}",
                config_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: enrolment failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn enroll_inner(
    server: &str,
    token: &str,
    config_path: &Path,
    state_dir: &Path,
    cert_pin: Option<String>,
) -> Result<String, String> {
    let server = server.trim_end_matches('/').to_string();
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(format!(
            "--server must start with http:// or https://, got {server:?}"
        ));
    }
    let cert_pin = match cert_pin.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(
            tls::normalise_pin(p).ok_or("--cert-pin must be the 64 hex characters of a SHA-256")?,
        ),
        None => None,
    };
    let (tls_config, pin_failure) = tls::client_config(cert_pin.as_deref())?;
    let client = reqwest::Client::builder()
        .use_preconfigured_tls((*tls_config).clone())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let body = serde_json::json!({
        "token": token.trim(),
        "hostname": facts::hostname(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "agent_version": env!("CARGO_PKG_VERSION"),
        "restic_version": facts::restic_version().await,
    });
    let resp = client
        .post(format!("{server}/api/agents/enroll"))
        .json(&body)
        .send()
        .await
        .map_err(|e| match pin_failure.lock().ok().and_then(|f| f.clone()) {
            Some(pin) => pin,
            None => format!("cannot reach {server}: {e}"),
        })?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let msg = answer["error"]["message"].as_str().unwrap_or("no details");
        return Err(format!("the server said {status}: {msg}"));
    }
    let host_id = answer["host_id"]
        .as_str()
        .ok_or("the server's answer has no host_id")?
        .to_string();
    let bearer = answer["bearer"]
        .as_str()
        .ok_or("the server's answer has no bearer")?
        .to_string();
    // Keep the operator's pin; else adopt the one the server reports for its own certificate
    // when we reached it over https (that connection was verified by the web PKI).
    let pin = cert_pin.or_else(|| {
        answer["cert_pin"]
            .as_str()
            .filter(|p| !p.is_empty())
            .and_then(tls::normalise_pin)
    });
    std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700));
    }
    let config = AgentConfig {
        server,
        host_id: host_id.clone(),
        bearer,
        cert_pin: pin,
        secrets_key: SecretsFile::new_key(),
    };
    config.save(config_path).map_err(|e| e.to_string())?;
    Ok(host_id)
}

/// How a session ended.
enum End {
    /// Try again after the backoff.
    Retry(String),
    /// Stop the agent with this exit code.
    Fatal(String, u8),
    /// Asked to stop.
    Stopped,
}

/// Exponential backoff 1 s → 60 s with full jitter in the upper half.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Backoff { next: Self::MIN }
    }

    fn reset(&mut self) {
        self.next = Self::MIN;
    }

    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        base.mul_f64(jitter)
    }
}

/// `restic-manager-agent run`.
pub async fn run(config_path: PathBuf, state_dir: PathBuf) -> ExitCode {
    let config = match AgentConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e} (run `restic-manager-agent enroll` first)");
            return ExitCode::FAILURE;
        }
    };
    // One instance for the connection, the runner and the scheduler: its lock keeps their
    // changes to the file's slots apart.
    let secrets = match SecretsFile::new(&state_dir, &config.host_id, &config.secrets_key) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cached_schedules = match secrets.load() {
        Ok(s) => s.schedules,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outbox = match Outbox::open(&state_dir) {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!(
                "error: cannot open the outbox in {}: {e}",
                state_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<String>(1024);
    let sender = jobs::Sender::new(outbox.clone(), out_tx);
    let ctx = jobs::Ctx::new(state_dir.clone(), secrets.clone(), sender.clone());
    let browser = Browser::new(ctx.restic_bin.clone(), secrets.clone(), sender.clone());
    let jobs = jobs::spawn(ctx);
    // Armed before the first connection attempt: schedules fire whether or not the server
    // is reachable.
    let schedules = scheduler::spawn(cached_schedules, jobs.clone(), sender);
    let mut backoff = Backoff::new();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        let started = Instant::now();
        let end = tokio::select! {
            end = session(&config, &secrets, &outbox, &jobs, &schedules, &browser, &mut out_rx) => end,
            _ = &mut stop => End::Stopped,
        };
        match end {
            End::Stopped => {
                tracing::info!("stopping");
                return ExitCode::SUCCESS;
            }
            End::Fatal(msg, code) => {
                tracing::error!("{msg}");
                eprintln!("error: {msg}");
                return ExitCode::from(code);
            }
            End::Retry(why) => {
                if started.elapsed() > Duration::from_secs(30) {
                    backoff.reset();
                }
                let wait = backoff.wait();
                tracing::warn!("{why}; reconnecting in {:.1} s", wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut stop => return ExitCode::SUCCESS,
                }
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}/api/agents/ws")
}

/// The refusal message in a 401 body.
fn refusal(resp: &tungstenite::http::Response<Option<Vec<u8>>>) -> (String, String) {
    let body = resp.body().as_deref().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    (
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or("no details")
            .to_string(),
    )
}

async fn session(
    config: &AgentConfig,
    secrets_file: &SecretsFile,
    outbox: &Outbox,
    jobs: &mpsc::UnboundedSender<jobs::Command>,
    schedules: &mpsc::UnboundedSender<SchedulesUpdate>,
    browser: &Browser,
    out_rx: &mut mpsc::Receiver<String>,
) -> End {
    let secrets = match secrets_file.load() {
        Ok(s) => s,
        Err(e) => return End::Fatal(e.to_string(), 1),
    };
    let (tls_config, pin_failure) = match tls::client_config(config.cert_pin.as_deref()) {
        Ok(c) => c,
        Err(e) => return End::Fatal(e, 1),
    };
    let mut request = match ws_url(&config.server).into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Fatal(format!("bad server URL {:?}: {e}", config.server), 1),
    };
    match format!("Bearer {}", config.bearer).parse() {
        Ok(v) => {
            request.headers_mut().insert("authorization", v);
        }
        Err(_) => return End::Fatal("the bearer in the config is malformed".into(), 1),
    }
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(protocol::MAX_FRAME_BYTES * 4);
    let connected = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            false,
            Some(Connector::Rustls(tls_config)),
        ),
    )
    .await;
    let mut ws = match connected {
        Err(_) => return End::Retry(format!("connecting to {} timed out", config.server)),
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tungstenite::Error::Http(resp))) if resp.status() == 401 => {
            let (code, message) = refusal(&resp);
            let what = if code == "host_deleted" {
                "this host was deleted"
            } else {
                "this agent's bearer is unknown"
            };
            return End::Fatal(
                format!("the server refused this agent ({what}): {message}"),
                EXIT_REFUSED,
            );
        }
        Ok(Err(tungstenite::Error::Http(resp))) => {
            return End::Retry(format!(
                "the server answered HTTP {} to the WebSocket upgrade",
                resp.status()
            ))
        }
        Ok(Err(e)) => {
            if let Some(pin) = pin_failure.lock().ok().and_then(|f| f.clone()) {
                return End::Fatal(pin, EXIT_REFUSED);
            }
            return End::Retry(format!("cannot connect to {}: {e}", config.server));
        }
    };

    let hello = AgentMessage::Hello(Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: facts::hostname(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        restic_version: facts::restic_version().await,
        config_version: secrets.version,
        uid: facts::effective_uid(),
    });
    let hello_id = new_id();
    if let Err(e) = ws
        .send(Message::text(hello.to_frame(hello_id.clone(), None)))
        .await
    {
        return End::Retry(format!("sending hello failed: {e}"));
    }

    let mut heartbeat_every = Duration::from_secs(protocol::HEARTBEAT_SECS);
    let mut welcomed = false;
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None => return End::Retry("the server closed the connection".into()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return End::Retry(format!("connection lost: {e}")),
                };
                let env: Envelope = match protocol::decode_envelope(&text) {
                    Ok(e) => e,
                    Err(e) => { tracing::warn!("ignoring a bad frame from the server: {e}"); continue; }
                };
                let msg = match ServerMessage::from_envelope(&env) {
                    Ok(m) => m,
                    Err(e) => { tracing::warn!("ignoring a frame from the server: {e}"); continue; }
                };
                match msg {
                    ServerMessage::Welcome(w) => {
                        welcomed = true;
                        tracing::info!(host_id = %w.host_id, server = %w.server_version, "connected");
                        heartbeat_every = Duration::from_secs(w.heartbeat_secs.max(1));
                        heartbeat = tokio::time::interval(heartbeat_every);
                        heartbeat.tick().await;
                        // Deliver whatever is still waiting from earlier connections.
                        match outbox.pending() {
                            Ok(pending) => for p in pending {
                                if let Err(e) = ws.send(Message::text(p.frame)).await {
                                    return End::Retry(format!("sending from the outbox failed: {e}"));
                                }
                            },
                            Err(e) => tracing::error!("cannot read the outbox: {e}"),
                        }
                    }
                    ServerMessage::ConfigUpdate(u) => {
                        let stored = secrets_file.update(|s| {
                            let newer = u.version > s.version;
                            if newer {
                                s.version = u.version;
                                s.repo = Some(u.repo.clone());
                            }
                            newer
                        });
                        let newer = match stored {
                            Ok(n) => n,
                            Err(e) => {
                                tracing::error!("cannot store the credentials: {e}");
                                continue;
                            }
                        };
                        if newer {
                            tracing::info!(version = u.version, "stored new repository credentials");
                            let id = new_id();
                            let frame = AgentMessage::ConfigApplied(ConfigApplied { version: u.version }).to_frame(id.clone(), None);
                            if let Err(e) = outbox.push(&id, &frame) {
                                tracing::error!("cannot write the outbox: {e}");
                                continue;
                            }
                            if let Err(e) = ws.send(Message::text(frame)).await {
                                return End::Retry(format!("connection lost: {e}"));
                            }
                        }
                    }
                    ServerMessage::Ack(_) => {
                        if let Some(re) = env.re.as_deref() {
                            if let Err(e) = outbox.ack(re) {
                                tracing::error!("cannot update the outbox: {e}");
                            }
                        }
                    }
                    ServerMessage::JobRun(j) => { let _ = jobs.send(jobs::Command::Run(j)); }
                    ServerMessage::JobCancel(c) => { let _ = jobs.send(jobs::Command::Cancel(c.job_id)); }
                    ServerMessage::SnapshotsRequest(_) => { let _ = jobs.send(jobs::Command::Snapshots); }
                    ServerMessage::SnapshotLs(m) => browser.ls(m),
                    ServerMessage::SnapshotDiff(m) => browser.diff(m),
                    ServerMessage::SchedulesUpdate(u) => {
                        let frame = match apply_schedules(secrets_file, schedules, u) {
                            Applied::New(version) => {
                                let id = new_id();
                                let frame = AgentMessage::SchedulesApplied(SchedulesApplied { version }).to_frame(id.clone(), None);
                                if let Err(e) = outbox.push(&id, &frame) {
                                    tracing::error!("cannot write the outbox: {e}");
                                }
                                frame
                            }
                            // Said again, not durably: the first `applied` may have been lost
                            // to a crash between storing the set and writing the outbox.
                            Applied::Same(version) => AgentMessage::SchedulesApplied(SchedulesApplied { version }).to_frame(new_id(), None),
                            Applied::NotStored => continue,
                        };
                        if let Err(e) = ws.send(Message::text(frame)).await {
                            return End::Retry(format!("connection lost: {e}"));
                        }
                    }
                    ServerMessage::Error(err) => match err.code.as_str() {
                        "protocol_too_old" | "protocol_too_new" => {
                            return End::Fatal(format!("{} ({})", err.message, err.code), EXIT_PROTOCOL)
                        }
                        "host_deleted" => return End::Fatal(format!("the server refused this agent: {}", err.message), EXIT_REFUSED),
                        _ if !welcomed => return End::Retry(format!("the server refused the connection: {}", err.message)),
                        code => tracing::warn!(code, "the server reported: {}", err.message),
                    },
                }
            }
            frame = out_rx.recv(), if welcomed => {
                if let Some(frame) = frame {
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        return End::Retry(format!("connection lost: {e}"));
                    }
                }
            }
            _ = heartbeat.tick(), if welcomed => {
                let frame = AgentMessage::Heartbeat(Heartbeat {}).to_frame(new_id(), None);
                if let Err(e) = ws.send(Message::text(frame)).await {
                    return End::Retry(format!("connection lost: {e}"));
                }
            }
        }
    }
}

/// What became of a pushed schedule set.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Stored and armed: acknowledge it durably.
    New(u64),
    /// This version is already stored and armed.
    Same(u64),
    /// The secrets file could not be written; the server pushes the set again at the next
    /// hello.
    NotStored,
}

/// Stores a pushed schedule set in the secrets file (its hooks are secrets) and hands it to
/// the scheduler. The server is the authority: any version other than the stored one
/// replaces it (a lower one after the server was restored from a backup).
fn apply_schedules(
    secrets: &SecretsFile,
    scheduler: &mpsc::UnboundedSender<SchedulesUpdate>,
    set: SchedulesUpdate,
) -> Applied {
    let version = set.version;
    let stored = secrets.update(|s| {
        let current = s.schedules.as_ref().map(|x| x.version);
        if current == Some(version) {
            return None;
        }
        s.schedules = Some(set.clone());
        Some(current)
    });
    match stored {
        Err(e) => {
            tracing::error!(version, "cannot store the schedule set: {e}");
            Applied::NotStored
        }
        Ok(None) => Applied::Same(version),
        Ok(Some(previous)) => {
            if previous.is_some_and(|p| p > version) {
                tracing::warn!(
                    version,
                    previous,
                    "the server sent an older schedule set than the one held here; using it"
                );
            }
            tracing::info!(version, "stored a new schedule set");
            let _ = scheduler.send(set);
            Applied::New(version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_sets_are_stored_armed_and_acknowledged_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = SecretsFile::new(dir.path(), "h1", &SecretsFile::new_key()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let set = |version| SchedulesUpdate {
            version,
            schedules: vec![],
            bandwidth: Default::default(),
        };
        assert_eq!(apply_schedules(&f, &tx, set(3)), Applied::New(3));
        assert_eq!(rx.try_recv().unwrap().version, 3);
        assert_eq!(f.load().unwrap().schedules.unwrap().version, 3);
        // Every hello pushes it again: no new arming, no durable message.
        assert_eq!(apply_schedules(&f, &tx, set(3)), Applied::Same(3));
        assert!(rx.try_recv().is_err());
        assert_eq!(apply_schedules(&f, &tx, set(4)), Applied::New(4));
        assert_eq!(rx.try_recv().unwrap().version, 4);
        // The stored credentials are left alone.
        assert_eq!(f.load().unwrap().repo, None);
    }

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<f64> = (0..10).map(|_| b.wait().as_secs_f64()).collect();
        assert!(waits[0] >= 0.5 && waits[0] <= 1.0);
        assert!(waits[1] >= 1.0 && waits[1] <= 2.0);
        assert!(waits[9] >= 30.0 && waits[9] <= 60.0);
        b.reset();
        assert!(b.wait() <= Duration::from_secs(1));
    }

    #[test]
    fn websocket_urls() {
        assert_eq!(ws_url("https://a.b/"), "wss://a.b/api/agents/ws");
        assert_eq!(
            ws_url("http://127.0.0.1:9"),
            "ws://127.0.0.1:9/api/agents/ws"
        );
    }
}
