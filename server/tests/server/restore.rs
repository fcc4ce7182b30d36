//! Restore end to end: browsing snapshots, diffs, restores in place, elsewhere and across
//! hosts — the real agent runs the real restic against temp repositories.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{wait_until, Agent, TestApp, ADMIN, ADMIN_PASSWORD};

/// The test process's effective uid (the agents run as the same user).
pub(crate) fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Enrols a host with its own repository and password, starts its agent and waits for the
/// repository's init.
pub(crate) async fn host(app: &TestApp, hostname: &str, password: &str) -> (Agent, String) {
    let r = app
        .post_csrf(
            "/api/enrollment-tokens",
            json!({"hostname": hostname, "repo_url": app.repo_url(hostname), "repo_password": password}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let minted: Value = r.json().await.unwrap();
    let mut agent = Agent::new();
    let (code, out) = agent
        .enroll(&app.base(), minted["token"].as_str().unwrap(), None)
        .await;
    assert_eq!(code, 0, "{out}");
    let cfg = std::fs::read_to_string(agent.config()).unwrap();
    let host_id = cfg
        .lines()
        .find_map(|l| l.strip_prefix("host_id = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let init = wait_kind(app, &host_id, "init").await;
    assert_eq!(init["status"], "succeeded", "{init}");
    (agent, host_id)
}

fn finished(j: &Value) -> bool {
    !matches!(j["status"].as_str(), Some("queued" | "running") | None)
}

async fn wait_kind(app: &TestApp, host_id: &str, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
        if let Some(j) = v["jobs"]
            .as_array()
            .and_then(|a| a.iter().find(|j| j["kind"] == kind && finished(j)).cloned())
        {
            return j;
        }
        assert!(std::time::Instant::now() < deadline, "no {kind} job: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn wait_job(app: &TestApp, job_id: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let job = app.get_json(&format!("/api/jobs/{job_id}")).await.1;
        if finished(&job) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Backs `path` up and returns the new snapshot's full id once the list shows it.
pub(crate) async fn backup(app: &TestApp, host_id: &str, path: &Path) -> String {
    let before = snapshots(app, host_id).await.len();
    let (s, v) = app
        .send_csrf(
            Method::POST,
            &format!("/api/hosts/{host_id}/jobs"),
            json!({"kind": "backup", "paths": [path.display().to_string()]}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let short = job["snapshot_id"].as_str().unwrap().to_string();
    wait_until(20, "the new snapshot in the list", || async {
        snapshots(app, host_id).await.len() > before
    })
    .await;
    snapshots(app, host_id)
        .await
        .into_iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .find(|id| id.starts_with(&short))
        .unwrap()
}

async fn snapshots(app: &TestApp, host_id: &str) -> Vec<Value> {
    let (_, v) = app
        .get_json(&format!("/api/hosts/{host_id}/snapshots"))
        .await;
    v["snapshots"].as_array().cloned().unwrap_or_default()
}

async fn restore(app: &TestApp, host_id: &str, body: Value) -> (u16, Value) {
    app.send_csrf(
        Method::POST,
        &format!("/api/hosts/{host_id}/restores"),
        body,
    )
    .await
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn tree(app: &TestApp, host_id: &str, sid: &str, query: &str) -> (u16, Value) {
    app.get_json(&format!(
        "/api/hosts/{host_id}/snapshots/{sid}/tree?{query}"
    ))
    .await
}

fn names(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn snapshots_are_browsed_a_page_at_a_time_and_compared() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (_agent, h) = host(&app, "browse-1", "Browse-Password-1").await;
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    for i in 0..25 {
        std::fs::write(d.join(format!("f{i:02}")), format!("file {i}")).unwrap();
    }
    std::fs::write(d.join("keep.txt"), "keep").unwrap();
    for n in ["x", "y", "z"] {
        std::fs::write(d.join("sub").join(n), n).unwrap();
    }
    let a = backup(&app, &h, d).await;
    std::fs::remove_file(d.join("f00")).unwrap();
    std::fs::write(d.join("f01"), "changed content").unwrap();
    std::fs::write(d.join("new.txt"), "new").unwrap();
    let b = backup(&app, &h, d).await;
    let dir = d.display().to_string();

    // The root of the snapshot: the first component of the temp dir.
    let (s, root) = tree(&app, &h, &a, "path=/").await;
    assert_eq!(s, 200, "{root}");
    let top = dir.split('/').nth(1).unwrap();
    assert_eq!(names(&root), [top]);
    assert_eq!(root["total"], 1);
    assert_eq!(root["entries"][0]["type"], "dir");
    assert_eq!(root["entries"][0]["path"], format!("/{top}"));
    assert_eq!(root["agent_uid"], euid());
    // The default path is the root.
    assert_eq!(tree(&app, &h, &a, "").await.1["entries"], root["entries"]);

    // The backed-up directory, page by page: 25 files, keep.txt and sub.
    let q = |offset: u32, limit: u32| format!("path={}&offset={offset}&limit={limit}", enc(&dir));
    let (s, p1) = tree(&app, &h, &a, &q(0, 10)).await;
    assert_eq!(s, 200, "{p1}");
    assert_eq!(p1["total"], 27);
    assert_eq!(
        (p1["offset"].as_u64(), p1["limit"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(p1["path"], dir);
    assert_eq!(
        names(&p1),
        (0..10).map(|i| format!("f{i:02}")).collect::<Vec<_>>()
    );
    let f03 = &p1["entries"][3];
    assert_eq!(f03["type"], "file");
    assert_eq!(f03["size"], 6);
    assert_eq!(f03["path"], format!("{dir}/f03"));
    assert_eq!(f03["uid"], euid());
    assert!(f03["mtime"].as_str().unwrap().starts_with("20"));
    assert_eq!(f03["mode"].as_u64().unwrap() & 0o777, 0o644);
    let (_, p3) = tree(&app, &h, &a, &q(20, 10)).await;
    assert_eq!(p3["total"], 27);
    assert_eq!(
        names(&p3),
        ["f20", "f21", "f22", "f23", "f24", "keep.txt", "sub"]
    );
    assert_eq!(p3["entries"][6]["type"], "dir");
    let (_, past) = tree(&app, &h, &a, &q(100, 10)).await;
    assert_eq!((past["total"].as_u64(), names(&past).len()), (Some(27), 0));
    // A subdirectory (a trailing slash is fine), by the short id too.
    let (s, sub) = tree(&app, &h, &a[..8], &format!("path={}/sub/", enc(&dir))).await;
    assert_eq!(s, 200, "{sub}");
    assert_eq!(names(&sub), ["x", "y", "z"]);
    assert_eq!(sub["path"], format!("{dir}/sub"));
    // The second snapshot has the changes.
    let (_, pb) = tree(&app, &h, &b, &q(0, 3)).await;
    assert_eq!(pb["total"], 27);
    assert_eq!(names(&pb), ["f01", "f02", "f03"]);

    // Bad requests are refused before the agent is asked; unknown things by the agent.
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();
    for query in [
        "path=relative/dir".to_string(),
        format!("path={}/../etc", enc(&dir)),
        "path=/a%00b".into(),
        format!("path=/{}", "a".repeat(4100)),
        "limit=0".into(),
        "limit=5000".into(),
        "offset=-1".into(),
        "colour=blue".into(),
    ] {
        let (s, v) = tree(&app, &h, &a, &query).await;
        assert_eq!(s, 400, "{query}: {v}");
        assert!(!code(&v).is_empty(), "{v}");
    }
    for sid in ["xyz", "latest", "abc", "--json--"] {
        let (s, v) = tree(&app, &h, sid, "path=/").await;
        assert_eq!(s, 400, "{sid}: {v}");
        assert_eq!(v["error"]["field"], "snapshot_id");
    }
    let (s, v) = tree(&app, &h, "deadbeefdeadbeef", "path=/").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(code(&v), "snapshot_not_found");
    let (s, v) = tree(&app, &h, &a, "path=/no/such/dir").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(code(&v), "path_not_found");
    let (s, v) = tree(&app, &h, &a, &format!("path={}/keep.txt", enc(&dir))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(code(&v), "not_a_directory");
    let (s, _) = tree(&app, "no-such-host", &a, "path=/").await;
    assert_eq!(s, 404);

    // The diff: one removed, one changed, one added.
    let (s, diff) = app
        .get_json(&format!("/api/hosts/{h}/snapshots/diff?from={a}&to={b}"))
        .await;
    assert_eq!(s, 200, "{diff}");
    let mut changes: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["modifier"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("+".to_string(), format!("{dir}/new.txt")),
            ("-".to_string(), format!("{dir}/f00")),
            ("M".to_string(), format!("{dir}/f01")),
        ]
    );
    assert_eq!(diff["truncated"], false);
    assert!(diff["stats"].is_object(), "{diff}");
    let (s, v) = app
        .get_json(&format!("/api/hosts/{h}/snapshots/diff?from={a}"))
        .await;
    assert_eq!((s, v["error"]["field"].as_str()), (400, Some("to")));
    let (s, v) = app
        .get_json(&format!(
            "/api/hosts/{h}/snapshots/diff?from={a}&to=nothex!"
        ))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = app
        .get_json(&format!(
            "/api/hosts/{h}/snapshots/diff?from={a}&to=deadbeefdeadbeef"
        ))
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(code(&v), "snapshot_not_found");

    // What the wizard learns about the host.
    let (s, info) = app.get_json(&format!("/api/hosts/{h}/restore-info")).await;
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["agent_uid"], euid());
    assert_eq!(info["agent_is_root"], euid() == 0);
    assert_eq!(info["online"], true);
    // This machine's restic 0.14 restores with "always" only, and reports no progress.
    if info["restic_version"].as_str().unwrap().starts_with("0.14") {
        assert_eq!(info["overwrite_policies"], json!(["always"]));
        assert_eq!(info["restic_reports_progress"], false);
    }
}

#[tokio::test]
async fn a_deleted_file_is_restored_in_place_or_elsewhere() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (_agent, h) = host(&app, "restore-1", "Restore-Password-1").await;
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    std::fs::create_dir_all(d.join("docs/deep")).unwrap();
    let precious: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(d.join("docs/precious.bin"), &precious).unwrap();
    std::fs::write(d.join("docs/deep/note.txt"), "a note").unwrap();
    std::fs::write(d.join("other.txt"), "other").unwrap();
    let snap = backup(&app, &h, d).await;
    let dir = d.display().to_string();

    // Lost, then restored where it was, through the API (by the short id).
    std::fs::remove_file(d.join("docs/precious.bin")).unwrap();
    let (s, v) = restore(
        &app,
        &h,
        json!({"snapshot_id": &snap[..8], "paths": [format!("{dir}/docs/precious.bin")]}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "restore");
    assert_eq!(job["host_id"], h.as_str());
    assert_eq!(
        std::fs::read(d.join("docs/precious.bin")).unwrap(),
        precious
    );
    assert_eq!(job["stats"]["files_restored"], 1, "{job}");
    assert_eq!(job["stats"]["bytes_restored"], 50_000);
    assert_eq!(job["stats"]["target"], "/");
    assert_eq!(job["params"]["snapshot_id"], snap.as_str());
    assert_eq!(job["params"]["target"], "/");
    assert_eq!(job["params"]["overwrite"], "always");
    assert!(job["params"].get("source_host_id").is_none());
    // Nothing else was touched or added.
    assert_eq!(
        std::fs::read_to_string(d.join("other.txt")).unwrap(),
        "other"
    );
    let (_, logs) = app
        .get_json(&format!("/api/jobs/{}/logs", v["job_id"].as_str().unwrap()))
        .await;
    assert!(
        logs["lines"].as_array().unwrap().iter().any(|l| l["text"]
            .as_str()
            .unwrap()
            .starts_with("restoring snapshot")),
        "{logs}"
    );

    // A changed file is overwritten (restic 0.14: always).
    std::fs::write(d.join("docs/deep/note.txt"), "scribbled over").unwrap();
    // A directory, into another place: it lands under target + its path.
    let out = tempfile::tempdir().unwrap();
    let (s, v) = restore(
        &app,
        &h,
        json!({"snapshot_id": snap, "paths": [format!("{dir}/docs")],
               "target_path": out.path().display().to_string(), "overwrite": "always"}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let landed = out.path().join(dir.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(landed.join("docs/precious.bin")).unwrap(),
        precious
    );
    assert_eq!(
        std::fs::read_to_string(landed.join("docs/deep/note.txt")).unwrap(),
        "a note"
    );
    assert!(!landed.join("other.txt").exists());
    assert_eq!(job["stats"]["files_restored"], 2);
    assert_eq!(job["stats"]["bytes_restored"], 50_006);
    // The original location was left alone by that one.
    assert_eq!(
        std::fs::read_to_string(d.join("docs/deep/note.txt")).unwrap(),
        "scribbled over"
    );
    // In place, the changed file is replaced.
    let (s, v) = restore(
        &app,
        &h,
        json!({"snapshot_id": snap, "paths": [format!("{dir}/docs/deep")]}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(
        std::fs::read_to_string(d.join("docs/deep/note.txt")).unwrap(),
        "a note"
    );

    // Refusals.
    let bad = [
        json!({"snapshot_id": snap, "paths": ["relative/path"]}),
        json!({"snapshot_id": snap, "paths": [format!("{dir}/../etc")]}),
        json!({"snapshot_id": snap, "paths": ["/x"], "target_path": "relative"}),
        json!({"snapshot_id": snap, "paths": ["/x"], "overwrite": "sometimes"}),
        json!({"snapshot_id": "latest", "paths": ["/x"]}),
        json!({"snapshot_id": snap, "paths": ["/x"], "target_host_id": "no-such-host"}),
        json!({"snapshot_id": snap, "paths": ["/x"], "surprise": true}),
        json!({"paths": ["/x"]}),
    ];
    for body in bad {
        let (s, v) = restore(&app, &h, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let (s, v) = restore(
        &app,
        &h,
        json!({"snapshot_id": "deadbeefdeadbeef", "paths": ["/x"]}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, _) = restore(
        &app,
        "no-such-host",
        json!({"snapshot_id": snap, "paths": ["/x"]}),
    )
    .await;
    assert_eq!(s, 404);
    let (_, info) = app.get_json(&format!("/api/hosts/{h}/restore-info")).await;
    if info["overwrite_policies"] == json!(["always"]) {
        let (s, v) = restore(
            &app,
            &h,
            json!({"snapshot_id": snap, "paths": ["/x"], "overwrite": "never"}),
        )
        .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (400, Some("overwrite")),
            "{v}"
        );
    }
    // Viewers may browse but not restore.
    let csrf = app.csrf().await;
    let r = app
        .client
        .post(app.url("/api/users"))
        .header("x-csrf-token", csrf)
        .json(&json!({"username": "viewer", "password": "viewer password 123", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let viewer = app.login_as("viewer", "viewer password 123").await;
    let session: Value = viewer
        .get(app.url("/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = viewer
        .post(app.url(&format!("/api/hosts/{h}/restores")))
        .header("x-csrf-token", session["csrf_token"].as_str().unwrap())
        .json(&json!({"snapshot_id": snap, "paths": ["/x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Every byte of every file under `dir`.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if m.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn vault_rows(db: &Path, like: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c.prepare("SELECT id FROM vault WHERE id LIKE ?1").unwrap();
    let rows = stmt
        .query_map([like], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

const SOURCE_PASSWORD: &str = "Source-Repo-Secret-7391";

#[tokio::test]
async fn a_cross_host_restore_gets_a_credential_for_the_job_only() {
    let app = TestApp::spawn_with(|c| c.offline_after_secs = 3).await;
    app.bootstrap().await;
    let (_source_agent, src_host) = host(&app, "cross-src", SOURCE_PASSWORD).await;
    let (mut target_agent, dst_host) = host(&app, "cross-dst", "Target-Repo-Password-2").await;
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("www")).unwrap();
    std::fs::write(data.path().join("www/index.html"), "<h1>source host</h1>").unwrap();
    std::fs::write(data.path().join("www/other.html"), "not asked for").unwrap();
    let snap = backup(&app, &src_host, data.path()).await;
    let dir = data.path().display().to_string();

    let out = tempfile::tempdir().unwrap();
    let (s, v) = restore(
        &app,
        &src_host,
        json!({"snapshot_id": snap, "paths": [format!("{dir}/www/index.html")],
               "target_host_id": dst_host, "target_path": out.path().display().to_string()}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    let job = wait_job(&app, &job_id, 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // It ran on the target host, reading the source's repository.
    assert_eq!(job["host_id"], dst_host.as_str());
    assert_eq!(job["params"]["source_host_id"], src_host.as_str());
    let landed = out.path().join(dir.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(landed.join("www/index.html")).unwrap(),
        "<h1>source host</h1>"
    );
    assert!(!landed.join("www/other.html").exists());
    // The target's own repository is untouched: still no snapshot there.
    assert!(snapshots(&app, &dst_host).await.is_empty());

    // The grant is gone with the job, and both ends are in the audit log.
    wait_until(10, "the revocation", || async {
        !app.events_of("RestoreCredentialRevoked").await.is_empty()
    })
    .await;
    assert!(vault_rows(&app.db(), "restore-cred-%").is_empty());
    let granted = app.events_of("RestoreCredentialGranted").await;
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["data"]["job_id"], job_id.as_str());
    assert_eq!(granted[0]["data"]["source_host_id"], src_host.as_str());
    assert_eq!(granted[0]["data"]["target_host_id"], dst_host.as_str());
    assert_eq!(granted[0]["stream"], format!("job-{job_id}"));
    let revoked = app.events_of("RestoreCredentialRevoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["data"]["job_id"], job_id.as_str());
    assert_eq!(revoked[0]["data"]["reason"], "job_finished");
    assert!(granted[0]["seq"].as_i64() < revoked[0]["seq"].as_i64());

    // The source password never reached the target agent's disk (config, state dir,
    // secrets file, outbox, log) — nor the event log.
    let files = files_under(target_agent.dir.path());
    assert!(files.iter().any(|(p, _)| p.ends_with("secrets.enc")));
    assert!(files.iter().any(|(p, _)| p.ends_with("agent.toml")));
    for (p, bytes) in &files {
        assert!(
            !contains(bytes, SOURCE_PASSWORD),
            "{} holds it",
            p.display()
        );
    }
    let (_, events) = app.get_json("/api/events?limit=1000").await;
    assert!(!events.to_string().contains(SOURCE_PASSWORD));

    // A same-host restore grants nothing.
    let (s, v) = restore(
        &app,
        &src_host,
        json!({"snapshot_id": snap, "paths": [format!("{dir}/www/other.html")],
               "target_path": out.path().display().to_string()}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(app.events_of("RestoreCredentialGranted").await.len(), 1);

    // An offline target: refused, and nothing is granted.
    target_agent.kill();
    wait_until(20, "the target to be refused as offline", || async {
        restore(
            &app,
            &src_host,
            json!({"snapshot_id": snap, "paths": [format!("{dir}/www")], "target_host_id": dst_host}),
        )
        .await
        .0 == 409
    })
    .await;
    let (s, v) = restore(
        &app,
        &src_host,
        json!({"snapshot_id": snap, "paths": [format!("{dir}/www")], "target_host_id": dst_host}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("host_offline")),
        "{v}"
    );
    assert!(vault_rows(&app.db(), "restore-cred-%").is_empty());
    assert_eq!(app.events_of("RestoreCredentialGranted").await.len(), 1);
    // Browsing an offline host is refused the same way.
    let (s, v) = tree(&app, &dst_host, &snap, "path=/").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("host_offline")),
        "{v}"
    );
}

/// The grant lives in the vault, so it outlives a restart: a restore that ends after the
/// server came back is revoked then, and a grant whose job ended while the server was down
/// (or before it could revoke) goes at start-up.
#[tokio::test]
async fn grants_survive_a_restart_and_are_revoked_when_their_job_ends() {
    let app = TestApp::spawn_with(|c| c.offline_after_secs = 30).await;
    app.bootstrap().await;
    let (_src_agent, src_host) = host(&app, "restart-src", SOURCE_PASSWORD).await;
    let (_dst_agent, dst_host) = host(&app, "restart-dst", "Target-Repo-Password-3").await;
    let data = tempfile::tempdir().unwrap();
    let mut blob = vec![0u8; 2_000_000];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for b in blob.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(data.path().join("big.bin"), &blob).unwrap();
    let snap = backup(&app, &src_host, data.path()).await;
    // Slow restores on the target: 2 MB at 100 KiB/s.
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{dst_host}/bandwidth"),
            json!({"up_kbps": null, "down_kbps": 100}),
        )
        .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    let out = tempfile::tempdir().unwrap();
    let (s, v) = restore(
        &app,
        &src_host,
        json!({"snapshot_id": snap, "target_host_id": dst_host,
               "target_path": out.path().display().to_string()}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job_id = v["job_id"].as_str().unwrap().to_string();
    wait_until(30, "the restore to run", || async {
        app.get_json(&format!("/api/jobs/{job_id}")).await.1["status"] == "running"
    })
    .await;
    assert_eq!(vault_rows(&app.db(), "restore-cred-%").len(), 1);

    // Restart while it runs.
    let addr = app.addr;
    let dir = app.stop().await;
    let mut app = TestApp::spawn_at(dir, addr, |c| c.offline_after_secs = 30).await;
    app.client = app.login_as(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(vault_rows(&app.db(), "restore-cred-%").len(), 1);
    let job = wait_job(&app, &job_id, 90).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let landed = out
        .path()
        .join(data.path().display().to_string().trim_start_matches('/'));
    assert_eq!(std::fs::read(landed.join("big.bin")).unwrap(), blob);
    // restic 0.14 prints no progress: the agent's own (from the target) has the totals.
    assert_eq!(job["stats"]["bytes_restored"], 2_000_000, "{job}");
    // (Progress enters the log at most every 5 s; a loaded machine may finish first.)
    if !job["progress"].is_null() {
        assert_eq!(job["progress"]["total_bytes"], 2_000_000, "{job}");
        assert_eq!(job["progress"]["total_files"], 1, "{job}");
    }
    wait_until(10, "the revocation after the restart", || async {
        vault_rows(&app.db(), "restore-cred-%").is_empty()
    })
    .await;
    let revoked = app.events_of("RestoreCredentialRevoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["data"]["reason"], "job_finished");

    // A grant left behind for a job that is already over goes at the next start.
    let addr = app.addr;
    let dir = app.stop().await;
    {
        let c = rusqlite::Connection::open(dir.path().join("restic-manager.db")).unwrap();
        c.execute(
            "INSERT INTO vault (id, owner, kind, nonce, ciphertext, created_at)
             VALUES (?1, ?2, 'repo_credentials', x'000000000000000000000000', x'00', '2026-01-01T00:00:00Z')",
            [format!("restore-cred-{job_id}"), format!("job-{job_id}")],
        )
        .unwrap();
    }
    let mut app = TestApp::spawn_at(dir, addr, |c| c.offline_after_secs = 30).await;
    app.client = app.login_as(ADMIN, ADMIN_PASSWORD).await;
    assert!(vault_rows(&app.db(), "restore-cred-%").is_empty());
    let revoked = app.events_of("RestoreCredentialRevoked").await;
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert_eq!(revoked[1]["data"]["reason"], "job_over_at_startup");
}
