//! Agent-side figures, against the real release binaries:
//!
//! 1. the resident memory of an idle, connected `restic-manager-agent`;
//! 2. a load generator: N simulated agents (real WebSocket clients speaking the protocol:
//!    hello, then heartbeats at the interval the server asks for) against one server
//!    process — the server's memory per connected agent and the heartbeats missed (hosts the
//!    server marked offline while their agent was heartbeating).
//!
//! Run: `cargo build --release --bins && cargo bench -p server --bench agents`
//! (`RM_BENCH_AGENTS`, default 2000; `RM_BENCH_SECONDS`, default 60).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{env_num, start_server, Killed, Server};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_for(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

impl Server {
    async fn enrol(&self, hostname: &str) -> (String, String) {
        let minted: Value = self
            .http
            .post(format!("{}/api/enrollment-tokens", self.base))
            .header("x-csrf-token", &self.csrf)
            .json(&json!({"hostname": hostname, "repo_url": "/nonexistent/simulated-agents-run-no-restic", "repo_password": "bench-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let enrolled: Value = self
            .http
            .post(format!("{}/api/agents/enroll", self.base))
            .json(&json!({"token": minted["token"], "hostname": hostname, "os": "linux", "arch": "x86_64"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match (enrolled["host_id"].as_str(), enrolled["bearer"].as_str()) {
            (Some(h), Some(b)) => (h.to_string(), b.to_string()),
            _ => panic!("enrolment of {hostname} failed: {minted} / {enrolled}"),
        }
    }

    async fn summary(&self) -> Value {
        self.http
            .get(format!("{}/api/fleet/summary", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn offline_events(&self) -> usize {
        let v: Value = self
            .http
            .get(format!(
                "{}/api/audit?type=HostWentOffline&limit=1000",
                self.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"].as_array().map(|a| a.len()).unwrap_or(0)
    }
}

fn release_agent() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_restic-manager"))
        .parent()
        .unwrap()
        .join("restic-manager-agent")
}

async fn idle_agent_rss() {
    let agent = release_agent();
    if !agent.exists() {
        println!(
            "idle agent RSS: skipped ({} missing: cargo build --release --bins)",
            agent.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), 90).await;
    let minted: Value = server
        .http
        .post(format!("{}/api/enrollment-tokens", server.base))
        .header("x-csrf-token", &server.csrf)
        .json(&json!({"hostname": "idle", "repo_url": dir.path().join("repo").display().to_string(), "repo_password": "idle-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cfg = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    let st = Command::new(&agent)
        .args([
            "enroll",
            "--server",
            &server.base,
            "--token",
            minted["token"].as_str().unwrap(),
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let child = Command::new(&agent)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent_proc = Killed(child);
    wait_for("the agent to connect", 30, async || {
        server.summary().await["online"] == 1
    })
    .await;
    let mut samples = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(agent_proc.0.id()));
    }
    let max = samples.iter().copied().max().unwrap_or(0);
    println!(
        "idle agent RSS: {:.1} MiB (max of 10 samples over 10 s, connected, restic {}) — target <= 15 MiB",
        max as f64 / 1024.0,
        if which_restic() { "present" } else { "absent" }
    );
    drop(agent_proc);
    drop(server.proc);
}

fn which_restic() -> bool {
    Command::new("restic")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn load(n: usize, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let offline_after = 12;
    let server = Arc::new(start_server(&dir.path().join("data"), offline_after).await);
    let t0 = Instant::now();
    let mut bearers = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let futs = chunk.iter().map(|i| server.enrol_named(*i));
        bearers.extend(futures::future::join_all(futs).await);
    }
    println!("enrolled {n} hosts in {:.1} s", t0.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.proc.0.id();
    let before = rss_kib(pid);

    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let ws_base = server.base.replace("http://", "ws://");
    let mut tasks = Vec::with_capacity(n);
    let t1 = Instant::now();
    for (i, (_, bearer)) in bearers.into_iter().enumerate() {
        let (sent, failed, connected) = (sent.clone(), failed.clone(), connected.clone());
        let url = format!("{ws_base}/api/agents/ws");
        tasks.push(tokio::spawn(async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("authorization", format!("Bearer {bearer}").parse().unwrap());
            let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
                Ok(x) => x,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let hello = json!({"v": 1, "id": format!("h{i}"), "type": "hello", "payload": {
                "agent_version": "loadgen", "hostname": format!("sim-{i}"), "os": "linux", "arch": "x86_64", "restic_version": "0.14.0"}});
            if ws.send(Message::text(hello.to_string())).await.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let mut every = Duration::from_secs(15);
            // hello.ok tells the interval; config.update follows.
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "hello.ok" {
                        every = Duration::from_secs(v["payload"]["heartbeat_secs"].as_u64().unwrap_or(15));
                        connected.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            // Spread heartbeats over the interval, like real agents started at random times.
            tokio::time::sleep(every.mul_f64((i % 100) as f64 / 100.0)).await;
            let mut tick = tokio::time::interval(every);
            let (mut sink, mut stream) = ws.split();
            let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            let mut k = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                k += 1;
                let hb = json!({"v": 1, "id": format!("{i}-{k}"), "type": "heartbeat", "payload": {}});
                if sink.send(Message::text(hb.to_string())).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            let _ = sink.close().await;
            drain.abort();
        }));
        if i % 100 == 99 {
            tokio::task::yield_now().await;
        }
    }
    wait_for("every agent to connect", 120, async || {
        connected.load(Ordering::Relaxed) as usize >= n
    })
    .await;
    println!(
        "{n} agents connected in {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    let mut peak = 0;
    let mut online_min = usize::MAX;
    while Instant::now() + Duration::from_secs(2) < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        peak = peak.max(rss_kib(pid));
        let online = server.summary().await["online"].as_u64().unwrap_or(0) as usize;
        online_min = online_min.min(online);
    }
    let after = rss_kib(pid);
    for t in tasks {
        let _ = t.await;
    }
    let offline = server.offline_events().await;
    let per_agent = (peak.max(after) as f64 - before as f64) / n as f64;
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!("| simulated agents | {n} over {seconds} s, heartbeat every {} s, offline after {offline_after} s | |", (offline_after / 3).clamp(1, 15));
    println!(
        "| server RSS before connecting | {:.1} MiB | |",
        before as f64 / 1024.0
    );
    println!(
        "| server RSS with all connected (peak) | {:.1} MiB | |",
        peak.max(after) as f64 / 1024.0
    );
    println!("| server memory per connected agent | {per_agent:.1} KiB | <= 100 KiB |");
    println!("| heartbeats sent | {} | |", sent.load(Ordering::Relaxed));
    println!(
        "| failed sends / connections | {} | 0 |",
        failed.load(Ordering::Relaxed)
    );
    println!("| hosts marked offline while heartbeating (missed heartbeats) | {offline} | 0 |");
    println!("| lowest online count seen during the run | {online_min} of {n} | {n} |");
}

impl Server {
    async fn enrol_named(&self, i: usize) -> (String, String) {
        self.enrol(&format!("sim-{i}")).await
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = env_num("RM_BENCH_AGENTS", 2000) as usize;
    let seconds = env_num("RM_BENCH_SECONDS", 60);
    rt.block_on(async {
        idle_agent_rss().await;
        load(n, seconds).await;
    });
}
