//! Backup figures, against the real release binaries and the real restic:
//!
//! 1. wall time of a backup of the same ~1 GiB generated tree through agent + server versus
//!    bare restic, in the same run, alternating, each into a fresh repository;
//! 2. progress latency agent → browser: a simulated agent sends `job.progress` frames and a
//!    browser follows `/api/jobs/{id}/stream`; p50 and p99 of send → receive.
//!
//! Run: `cargo build --release --bins && cargo bench -p server --bench backup`
//! (`RM_BENCH_TREE_MIB`, default 1024; `RM_BENCH_ROUNDS`, default 3).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{env_num, start_server, Killed, Server};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "bench-repo-password";

/// ~`mib` MiB of incompressible data in files of 64 KiB to 4 MiB.
fn make_tree(dir: &Path, mib: u64) {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut left = mib * 1024 * 1024;
    let mut i = 0u64;
    while left > 0 {
        let size = ((64 * 1024u64) << (i % 7)).min(left);
        let mut buf = vec![0u8; size as usize];
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let sub = dir.join(format!("d{}", i % 16));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), buf).unwrap();
        left -= size;
        i += 1;
    }
}

fn restic(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_PROGRESS_FPS", "1")
        .output()
        .unwrap()
}

impl Server {
    async fn wait_job(&self, id: &str) -> Value {
        loop {
            let j = self.get(&format!("/api/jobs/{id}")).await;
            if !matches!(j["status"].as_str(), Some("queued" | "running")) {
                return j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn wall_time(mib: u64, rounds: u64) {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let t = Instant::now();
    make_tree(&tree, mib);
    println!("generated {mib} MiB in {:.1} s", t.elapsed().as_secs_f64());
    let agent_bin = Path::new(env!("CARGO_BIN_EXE_restic-manager"))
        .parent()
        .unwrap()
        .join("restic-manager-agent");
    assert!(
        agent_bin.exists(),
        "build the release binaries first: cargo build --release --bins"
    );
    let server = start_server(&work.path().join("data"), 90).await;
    let first_repo = work.path().join("repo-agent-0");
    let minted = server
        .post("/api/enrollment-tokens", json!({"hostname": "bench", "repo_url": first_repo.display().to_string(), "repo_password": PASSWORD}))
        .await;
    let cfg = work.path().join("agent.toml");
    let state = work.path().join("state");
    assert!(Command::new(&agent_bin)
        .args([
            "enroll",
            "--server",
            &server.base,
            "--token",
            minted["token"].as_str().unwrap()
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success());
    let _agent = Killed(
        Command::new(&agent_bin)
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&state)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let host_id = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("host_id = ")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap();
    // Wait for the auto-init job.
    loop {
        let jobs = server.get(&format!("/api/hosts/{host_id}/jobs")).await;
        if jobs["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["kind"] == "init" && j["status"] == "succeeded")
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reports = async || -> usize {
        server
            .get("/api/audit?type=SnapshotsReported&limit=1000")
            .await["events"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    };
    // The agent lists snapshots after init: let it finish so nothing else runs alongside.
    while reports().await == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut agent_times = Vec::new();
    let mut bare_times = Vec::new();
    for round in 0..rounds {
        // Agent + server, into a fresh repository.
        let repo: PathBuf = if round == 0 {
            first_repo.clone()
        } else {
            work.path().join(format!("repo-agent-{round}"))
        };
        if round > 0 {
            assert!(restic(&repo, &["init"]).status.success());
            let version = server.get(&format!("/api/hosts/{host_id}")).await["credentials_version"]
                .as_i64()
                .unwrap();
            assert_eq!(
                server
                    .put(
                        &format!("/api/hosts/{host_id}/repo-credentials"),
                        json!({"repo_url": repo.display().to_string(), "repo_password": PASSWORD})
                    )
                    .await,
                200
            );
            while server.get(&format!("/api/hosts/{host_id}")).await["applied_credentials_version"]
                .as_i64()
                .unwrap()
                <= version
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let before = reports().await;
        let t = Instant::now();
        let job = server
            .post(
                &format!("/api/hosts/{host_id}/jobs"),
                json!({"kind": "backup", "paths": [tree.display().to_string()]}),
            )
            .await;
        let done = server.wait_job(job["job_id"].as_str().unwrap()).await;
        let agent_secs = t.elapsed().as_secs_f64();
        assert_eq!(done["status"], "succeeded", "{done}");
        agent_times.push(agent_secs);
        // After a backup the agent lists snapshots: wait, so bare restic runs alone.
        while reports().await <= before {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_dir_all(&repo);

        // Bare restic, same tree, fresh repository, same flags.
        let bare = work.path().join(format!("repo-bare-{round}"));
        assert!(restic(&bare, &["init"]).status.success());
        let t = Instant::now();
        let out = restic(
            &bare,
            &[
                "backup",
                "--json",
                "--host",
                "bench",
                "--",
                &tree.display().to_string(),
            ],
        );
        let bare_secs = t.elapsed().as_secs_f64();
        assert!(out.status.success());
        bare_times.push(bare_secs);
        let _ = std::fs::remove_dir_all(&bare);
        println!(
            "round {}: agent+server {agent_secs:.2} s (queued {}, started {}, finished {}; restic's own total_duration {:.2} s), bare restic {bare_secs:.2} s",
            round + 1,
            done["queued_at"], done["started_at"], done["finished_at"],
            done["stats"]["total_duration"].as_f64().unwrap_or(0.0)
        );
    }
    let sum_a: f64 = agent_times.iter().sum();
    let sum_b: f64 = bare_times.iter().sum();
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!(
        "| backup of {mib} MiB, agent+server (mean of {rounds}) | {:.2} s | |",
        sum_a / rounds as f64
    );
    println!(
        "| backup of {mib} MiB, bare restic (mean of {rounds}) | {:.2} s | |",
        sum_b / rounds as f64
    );
    println!(
        "| ratio agent+server / bare | {:.3} | <= 1.05 |",
        sum_a / sum_b
    );
}

async fn progress_latency() {
    let work = tempfile::tempdir().unwrap();
    let server = start_server(&work.path().join("data"), 90).await;
    let minted = server
        .post(
            "/api/enrollment-tokens",
            json!({"hostname": "sim", "repo_url": "/nonexistent/simulated", "repo_password": "x"}),
        )
        .await;
    let enrolled: Value = reqwest::Client::new()
        .post(format!("{}/api/agents/enroll", server.base))
        .json(&json!({"token": minted["token"], "hostname": "sim"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let host_id = enrolled["host_id"].as_str().unwrap().to_string();
    let ws_base = server.base.replace("http://", "ws://");
    let mut req = format!("{ws_base}/api/agents/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", enrolled["bearer"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    let (mut agent, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    agent
        .send(Message::text(json!({"v":1,"id":"h","type":"hello","payload":{"agent_version":"sim","hostname":"sim","os":"linux","arch":"x86_64"}}).to_string()))
        .await
        .unwrap();
    // Wait for hello.ok, then create a job and answer it.
    loop {
        if let Some(Ok(Message::Text(t))) = agent.next().await {
            if t.contains("hello.ok") {
                break;
            }
        }
    }
    let job = server
        .post(
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "backup", "paths": ["/sim"]}),
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    agent
        .send(Message::text(
            json!({"v":1,"id":"s1","type":"job.started","payload":{"job_id": job_id}}).to_string(),
        ))
        .await
        .unwrap();

    // The browser.
    let cookies = server
        .http
        .get(format!("{}/api/session", server.base))
        .send()
        .await
        .unwrap();
    drop(cookies);
    let login = reqwest::Client::new()
        .post(format!("{}/api/login", server.base))
        .json(&json!({"username": "admin", "password": "benchmark password 1"}))
        .send()
        .await
        .unwrap();
    let session = login
        .cookies()
        .find(|c| c.name() == "rm_session")
        .map(|c| c.value().to_string())
        .unwrap();
    let mut req = format!("{ws_base}/api/jobs/{job_id}/stream")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("rm_session={session}").parse().unwrap());
    let (browser, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (_, mut browser_rx) = browser.split();

    let n = 300u64;
    let sent: std::sync::Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        std::sync::Arc::new(std::sync::Mutex::new(vec![None; n as usize + 1]));
    let s2 = sent.clone();
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::new();
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_secs(10), browser_rx.next()).await
        {
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap_or_default();
                if v["type"] == "progress" {
                    let seq = v["progress"]["files_done"].as_u64().unwrap_or(0) as usize;
                    if let Some(Some(at)) = s2.lock().unwrap().get(seq) {
                        lat.push(at.elapsed());
                    }
                    if seq as u64 == n {
                        break;
                    }
                }
            }
        }
        lat
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for seq in 1..=n {
        tick.tick().await;
        let frame = json!({"v":1,"id":format!("p{seq}"),"type":"job.progress","payload":{"job_id": job_id, "progress": {
            "percent": seq as f64 / n as f64 * 100.0, "bytes_done": seq * 1000, "total_bytes": n * 1000, "files_done": seq, "total_files": n}}});
        sent.lock().unwrap()[seq as usize] = Some(Instant::now());
        agent.send(Message::text(frame.to_string())).await.unwrap();
    }
    let mut lat = receiver.await.unwrap();
    lat.sort();
    let pct = |p: f64| {
        lat[((lat.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(lat.len() - 1)]
    };
    println!();
    println!("| progress latency agent → browser ({} of {n} frames received, 20 per second) | value | target |", lat.len());
    println!("|---|---|---|");
    println!("| p50 | {:.2} ms | |", pct(0.50).as_secs_f64() * 1000.0);
    println!(
        "| p99 | {:.2} ms | < 250 ms |",
        pct(0.99).as_secs_f64() * 1000.0
    );
    println!(
        "| max | {:.2} ms | |",
        lat.last().unwrap().as_secs_f64() * 1000.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mib = env_num("RM_BENCH_TREE_MIB", 1024);
    let rounds = env_num("RM_BENCH_ROUNDS", 3);
    rt.block_on(async {
        progress_latency().await;
        wall_time(mib, rounds).await;
    });
}
