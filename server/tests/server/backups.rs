//! Backups end to end: the real agent runs the real restic against temp repositories.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{wait_until, Agent, TestApp};

const PASSWORD: &str = "Repo-Password-For-Tests";

/// A tree of `n` files with deterministic pseudo-random content.
fn make_tree(dir: &Path, n: usize, size: usize) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        let mut buf = vec![0u8; size];
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let name = if i % 3 == 0 {
            format!("sub/f{i}")
        } else {
            format!("f{i}")
        };
        std::fs::write(dir.join(name), buf).unwrap();
    }
}

fn restic(repo: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

/// An app with an online, initialised host.
async fn setup(offline_after: u64) -> (TestApp, Agent, String) {
    let app = TestApp::spawn_with(move |c| c.offline_after_secs = offline_after).await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "backup-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let init = wait_for_job_of_kind(&app, &host_id, "init").await;
    assert_eq!(init["status"], "succeeded", "{init}");
    (app, agent, host_id)
}

async fn wait_for_job_of_kind(app: &TestApp, host_id: &str, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
        if let Some(j) = v["jobs"]
            .as_array()
            .and_then(|a| a.iter().find(|j| j["kind"] == kind).cloned())
        {
            if !matches!(j["status"].as_str(), Some("queued" | "running")) {
                return j;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finished {kind} job: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_backup(app: &TestApp, host_id: &str, body: Value) -> String {
    let r = app
        .post_csrf(&format!("/api/hosts/{host_id}/jobs"), body)
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["job_id"].as_str().unwrap().to_string()
}

async fn wait_job(app: &TestApp, job_id: &str, secs: u64, done: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let job = app.get_json(&format!("/api/jobs/{job_id}")).await.1;
        if done.iter().any(|s| job["status"] == *s) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job never reached {done:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn backups_are_listed_with_restics_own_ids_and_counts() {
    let (app, _agent, host_id) = setup(90).await;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), 30, 4096);
    let src_path = src.path().display().to_string();

    let job = start_backup(
        &app,
        &host_id,
        json!({"kind": "backup", "paths": [src_path], "tags": ["manual"]}),
    )
    .await;
    let done = wait_job(
        &app,
        &job,
        60,
        &["succeeded", "failed", "succeeded_with_warnings"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["stats"]["files_new"], 30);
    assert_eq!(done["kind"], "backup");
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());
    let short = done["snapshot_id"].as_str().unwrap().to_string();

    // The snapshot list arrives right after the result.
    let repo = app.repo_url("backup-1");
    wait_until(20, "the snapshot list", || async {
        app.get_json(&format!("/api/hosts/{host_id}/snapshots"))
            .await
            .1["snapshots"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let (_, snaps) = app
        .get_json(&format!("/api/hosts/{host_id}/snapshots"))
        .await;
    let theirs: Value =
        serde_json::from_slice(&restic(&repo, &["snapshots", "--json"]).stdout).unwrap();
    assert_eq!(snaps["snapshots"][0]["id"], theirs[0]["id"]);
    assert!(theirs[0]["id"].as_str().unwrap().starts_with(&short));
    assert_eq!(snaps["snapshots"][0]["tags"], json!(["manual"]));
    assert_eq!(snaps["snapshots"][0]["paths"], json!([src_path]));
    let (_, host) = app.host(&host_id).await;
    assert_eq!(host["snapshot_count"], 1);
    assert!(
        host["repo_size_bytes"].as_i64().unwrap() > 30 * 4096 / 2,
        "{host}"
    );
    assert_eq!(host["last_backup"]["status"], "succeeded");
    let (_, fleet) = app.get_json("/api/fleet/summary").await;
    assert_eq!(fleet["snapshots"], 1);

    // Change two files, add one: the counts follow.
    std::fs::write(src.path().join("f1"), b"changed").unwrap();
    std::fs::write(src.path().join("f2"), b"changed too").unwrap();
    std::fs::write(src.path().join("new"), b"new").unwrap();
    let job2 = start_backup(
        &app,
        &host_id,
        json!({"kind": "backup", "paths": [src_path]}),
    )
    .await;
    let done2 = wait_job(
        &app,
        &job2,
        60,
        &["succeeded", "failed", "succeeded_with_warnings"],
    )
    .await;
    assert_eq!(done2["status"], "succeeded", "{done2}");
    assert_eq!(done2["stats"]["files_changed"], 2);
    assert_eq!(done2["stats"]["files_new"], 1);
    assert_eq!(done2["stats"]["files_unmodified"], 28);
    wait_until(20, "two snapshots", || async {
        app.host(&host_id).await.1["snapshot_count"] == 2
    })
    .await;

    // Jobs newest first; logs stored; the stream of a finished job replays and closes.
    let (_, jobs) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
    let kinds: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backup", "backup", "init"]);
    assert_eq!(jobs["jobs"][0]["id"], job2.as_str());
    let (_, logs) = app.get_json(&format!("/api/jobs/{job}/logs")).await;
    assert!(logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["text"].as_str().unwrap().contains("\"summary\"")));
    let frames = stream_frames(&app, &job).await;
    assert_eq!(frames.first().unwrap()["type"], "job");
    assert!(frames.iter().any(|f| f["type"] == "log"));
    assert_eq!(frames.last().unwrap()["type"], "finished");
    assert_eq!(frames.last().unwrap()["job"]["status"], "succeeded");

    // The same story on the pages: dashboard row → host page → job page.
    let page = |path: String| {
        let c = app.client.clone();
        let url = app.url(&path);
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, dash) = page("/".into()).await;
    assert_eq!(s, 200);
    let doc = scraper::Html::parse_document(&dash);
    let row = scraper::Selector::parse("tr.row-link a.row-anchor").unwrap();
    let hrefs: Vec<&str> = doc
        .select(&row)
        .filter_map(|a| a.value().attr("href"))
        .collect();
    assert_eq!(hrefs, [format!("/hosts/{host_id}")]);
    let (s, host_html) = page(format!("/hosts/{host_id}")).await;
    assert_eq!(s, 200);
    assert!(host_html.contains(&short), "the snapshot is listed");
    assert!(
        host_html.contains(&format!("/jobs/{job2}")),
        "job rows link to their pages"
    );
    let (s, job_html) = page(format!("/jobs/{job}")).await;
    assert_eq!(s, 200);
    assert!(job_html.contains("succeeded"));
    assert!(
        job_html.contains("files new") && job_html.contains("data added"),
        "the summary is shown"
    );
    assert!(
        job_html.contains("data-live=\"0\""),
        "a finished job is not followed"
    );
    assert_eq!(page("/hosts/nope".into()).await.0, 404);
    assert_eq!(page("/jobs/nope".into()).await.0, 404);
    assert_eq!(page("/static/app.js".into()).await.0, 200);
    app.stop().await;
}

/// Every frame of `/api/jobs/{id}/stream` until the server closes it.
async fn stream_frames(app: &TestApp, job_id: &str) -> Vec<Value> {
    let session = session_cookie(app).await;
    let mut req = format!("ws://{}/api/jobs/{job_id}/stream", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("rm_session={session}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut frames = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(120), ws.next()).await {
        match m {
            Message::Text(t) => frames.push(serde_json::from_str(&t).unwrap()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    frames
}

/// The admin's session token (logged in anew, so the test can hand it to a WebSocket).
async fn session_cookie(app: &TestApp) -> String {
    let r = crate::helpers::client()
        .post(app.url("/api/login"))
        .json(
            &json!({"username": crate::helpers::ADMIN, "password": crate::helpers::ADMIN_PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    let token = r
        .cookies()
        .find(|c| c.name() == "rm_session")
        .map(|c| c.value().to_string());
    token.unwrap()
}

#[tokio::test]
async fn offline_hosts_and_bad_requests_are_refused_clearly() {
    let (app, mut agent, host_id) = setup(90).await;
    let r = app
        .post_csrf(
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "backup"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "paths");
    let r = app
        .post_csrf(
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "dance", "paths": ["/x"]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = app
        .post_csrf(
            "/api/hosts/nope/jobs",
            json!({"kind": "backup", "paths": ["/x"]}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(app.get_json("/api/jobs/nope").await.0, 404);
    agent.kill();
    wait_until(20, "the socket to close", || async {
        app.post_csrf(
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "backup", "paths": ["/x"]}),
        )
        .await
        .status()
            == 409
    })
    .await;
    let r = app
        .post_csrf(
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "backup", "paths": ["/x"]}),
        )
        .await;
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "host_offline");
    assert!(e["error"]["message"].as_str().unwrap().contains("offline"));
    app.stop().await;
}

#[tokio::test]
async fn an_unreadable_file_gives_success_with_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let root = unsafe_free_euid() == 0;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "backup-1").await;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), 5, 1000);
    let secret = src.path().join("secret");
    std::fs::write(&secret, b"top secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    if root {
        // root reads everything: run the agent (and so restic) as nobody instead.
        let nobody = 65534;
        std::fs::create_dir_all(app.data().join("repos")).unwrap();
        for p in [
            src.path().to_path_buf(),
            agent.dir.path().to_path_buf(),
            app.data().join("repos"),
        ] {
            chown_tree(&p, nobody);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(app.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
        agent.start_as(nobody);
    } else {
        agent.start();
    }
    app.wait_status(&host_id, "online", 20).await;
    let init = wait_for_job_of_kind(&app, &host_id, "init").await;
    assert_eq!(init["status"], "succeeded", "{init}\n{}", agent.log());
    let job = start_backup(
        &app,
        &host_id,
        json!({"kind": "backup", "paths": [src.path().display().to_string()]}),
    )
    .await;
    let done = wait_job(
        &app,
        &job,
        60,
        &["succeeded", "failed", "succeeded_with_warnings"],
    )
    .await;
    assert_eq!(
        done["status"],
        "succeeded_with_warnings",
        "{done}\n{}",
        agent.log()
    );
    let warnings = done["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("secret")),
        "{warnings:?}"
    );
    assert!(done["snapshot_id"].is_string());
    app.stop().await;
}

/// Lock files restic has finished writing (it writes `<id>-tmp-<n>` first, then renames).
fn real_locks(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())
                })
                .count()
        })
        .unwrap_or(0)
}

fn unsafe_free_euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1000)
}

fn chown_tree(p: &Path, uid: u32) {
    let _ = std::os::unix::fs::chown(p, Some(uid), Some(uid));
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

#[tokio::test]
async fn wrong_password_and_locked_repositories_fail_with_clear_errors() {
    let (app, _agent, host_id) = setup(90).await;
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path(), 3, 1000);
    let paths = json!([src.path().display().to_string()]);
    let repo = app.repo_url("backup-1");

    // Locked: a `restic prune` holds the exclusive lock; freezing it (SIGSTOP) keeps the
    // lock alive and valid for as long as the test needs.
    let locks = PathBuf::from(&repo).join("locks");
    // After init the agent lists snapshots (taking a lock of its own): let it finish.
    wait_until(30, "the post-init snapshot report", || async {
        !app.events_of("SnapshotsReported").await.is_empty()
    })
    .await;
    let mut holder = None;
    for _ in 0..50 {
        // Only prune's own lock counts: wait out the agent's (after init it lists snapshots).
        wait_until(30, "no other lock", || async {
            std::fs::read_dir(&locks)
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        })
        .await;
        let mut p = std::process::Command::new("restic")
            .args(["prune"])
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if real_locks(&locks) > 0 {
                let _ = std::process::Command::new("kill")
                    .args(["-STOP", &p.id().to_string()])
                    .status();
                break;
            }
            if p.try_wait().unwrap().is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if real_locks(&locks) > 0 && p.try_wait().unwrap().is_none() {
            holder = Some(p);
            break;
        }
        let _ = p.kill();
        let _ = p.wait();
    }
    let mut holder = holder.expect("could not catch restic prune holding its lock");
    let job = start_backup(&app, &host_id, json!({"kind": "backup", "paths": paths})).await;
    let done = wait_job(
        &app,
        &job,
        60,
        &["succeeded", "failed", "succeeded_with_warnings"],
    )
    .await;
    let locks_then: Vec<String> = std::fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let _ = holder.kill();
    let _ = holder.wait();
    let (_, log) = app.get_json(&format!("/api/jobs/{job}/logs")).await;
    assert_eq!(
        done["status"], "failed",
        "{done}\nlocks: {locks_then:?}\n{log}"
    );
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .starts_with("the repository is locked"),
        "{done}"
    );
    restic(&repo, &["unlock", "--remove-all"]);

    // Wrong password: change it on the server; the agent gets it at once.
    let csrf = app.csrf().await;
    let r = app
        .client
        .put(app.url(&format!("/api/hosts/{host_id}/repo-credentials")))
        .header("x-csrf-token", csrf)
        .json(&json!({"repo_url": repo, "repo_password": "not-the-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_until(20, "the new credentials to be applied", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 2
    })
    .await;
    let job = start_backup(&app, &host_id, json!({"kind": "backup", "paths": paths})).await;
    let done = wait_job(
        &app,
        &job,
        60,
        &["succeeded", "failed", "succeeded_with_warnings"],
    )
    .await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("wrong repository password"),
        "{done}"
    );
    let (_, host) = app.host(&host_id).await;
    assert_eq!(host["last_backup"]["status"], "failed");
    let (_, fleet) = app.get_json("/api/fleet/summary").await;
    assert_eq!(fleet["failing"], 1);
    app.stop().await;
}

/// A file that takes restic about `secs` seconds to upload at 64 KiB/s.
fn slow_tree(dir: &Path, secs: usize) {
    make_tree(dir, 1, 64 * 1024 * secs);
}

#[tokio::test]
async fn a_long_backup_streams_progress_and_can_be_cancelled_cleanly() {
    let (app, _agent, host_id) = setup(90).await;
    let src = tempfile::tempdir().unwrap();
    slow_tree(src.path(), 60);
    let job = start_backup(
        &app,
        &host_id,
        json!({"kind": "backup", "paths": [src.path().display().to_string()], "limit_upload_kbps": 64}),
    )
    .await;
    // A browser following the job sees it run and make progress.
    let session = session_cookie(&app).await;
    let mut req = format!("ws://{}/api/jobs/{job}/stream", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("rm_session={session}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut saw_progress = false;
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_secs(30), ws.next()).await
    {
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "progress" && v["progress"]["total_bytes"].as_u64().unwrap_or(0) > 0 {
            saw_progress = true;
            break;
        }
    }
    assert!(saw_progress, "no progress frame");
    let r = app
        .post_csrf(&format!("/api/jobs/{job}/cancel"), json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let done = wait_job(&app, &job, 40, &["cancelled", "failed", "succeeded"]).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    // The stream ends with the result, then closes.
    let mut last = Value::Null;
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_secs(20), ws.next()).await
    {
        last = serde_json::from_str(&t).unwrap();
    }
    assert_eq!(last["type"], "finished");
    // restic was interrupted, not killed: it removed its lock.
    let locks = PathBuf::from(app.repo_url("backup-1")).join("locks");
    assert_eq!(
        std::fs::read_dir(&locks).unwrap().count(),
        0,
        "a lock was left behind"
    );
    // Progress entered the log at a bounded rate.
    let progressed = app.events_of("JobProgressed").await;
    let secs = 60.0f64; // generous upper bound of the job's duration
    assert!(
        (progressed.len() as f64) <= secs / 5.0 + 2.0,
        "{} progress events",
        progressed.len()
    );
    let again = app
        .post_csrf(&format!("/api/jobs/{job}/cancel"), json!({}))
        .await;
    assert_eq!(again.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn an_agent_killed_mid_backup_loses_the_job_and_its_late_result_is_recorded_once() {
    let (app, mut agent, host_id) = setup(2).await;
    let src = tempfile::tempdir().unwrap();
    slow_tree(src.path(), 30);
    let job = start_backup(
        &app,
        &host_id,
        json!({"kind": "backup", "paths": [src.path().display().to_string()], "limit_upload_kbps": 64}),
    )
    .await;
    wait_job(&app, &job, 30, &["running"]).await;
    agent.kill();
    let lost = wait_job(&app, &job, 30, &["lost"]).await;
    assert!(
        lost["error"].as_str().unwrap().contains("went away"),
        "{lost}"
    );

    agent.start();
    let done = wait_job(&app, &job, 30, &["failed"]).await;
    assert_eq!(done["late_result"], true, "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("agent stopped"),
        "{done}"
    );
    wait_until(20, "the outbox to drain", || async {
        agent.outbox_len() == 0
    })
    .await;
    let finished: Vec<Value> = app
        .events_of("JobFinished")
        .await
        .into_iter()
        .filter(|e| e["data"]["job_id"] == job.as_str())
        .collect();
    assert_eq!(finished.len(), 1, "{finished:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_stuck_browser_never_slows_the_agent() {
    use crate::agents::{enrol_raw, frame, hello_payload, next_json, raw_socket};
    use futures::SinkExt;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (host_id, bearer) = enrol_raw(&app, "sim-1").await;
    let mut agent = raw_socket(&app, &bearer).await.unwrap();
    agent
        .send(frame(1, "hello", hello_payload()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut agent).await["type"], "hello.ok");
    let job = start_backup(&app, &host_id, json!({"kind": "backup", "paths": ["/sim"]})).await;

    // A browser that subscribes and then never reads.
    let session = session_cookie(&app).await;
    let mut req = format!("ws://{}/api/jobs/{job}/stream", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("cookie", format!("rm_session={session}").parse().unwrap());
    let (_stuck, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    agent
        .send(frame(1, "job.started", json!({"job_id": job})))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // ~5 MiB of log text for the browser: far more than its socket buffers hold.
    let pad = "x".repeat(8000);
    for i in 0..3000u64 {
        let progress = json!({"job_id": job, "progress": {"percent": 1.0, "bytes_done": i, "total_bytes": 3000, "files_done": i, "total_files": 3000}});
        agent
            .send(frame(1, "job.progress", progress))
            .await
            .unwrap();
        if i % 5 == 0 {
            let lines = json!({"job_id": job, "lines": [{"at": "2026-01-01T00:00:00Z", "stream": "stdout", "text": pad}]});
            agent.send(frame(1, "job.log", lines)).await.unwrap();
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    let finished = json!({"v": 1, "id": id, "type": "job.finished", "payload": {"job_id": job, "status": "succeeded"}});
    agent
        .send(Message::text(finished.to_string()))
        .await
        .unwrap();
    // The agent's messages are all read and the result acknowledged, however full the
    // browser's socket is.
    loop {
        let f = next_json(&mut agent).await;
        if f["type"] == "ack" && f["re"] == id.as_str() {
            break;
        }
        assert!(!f.is_null(), "the agent's socket closed");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    let done = wait_job(&app, &job, 10, &["succeeded"]).await;
    assert_eq!(done["status"], "succeeded");
    let (_, logs) = app.get_json(&format!("/api/jobs/{job}/logs")).await;
    assert_eq!(logs["lines"].as_array().unwrap().len(), 600);
    app.stop().await;
}
