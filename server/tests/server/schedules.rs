//! Source groups, schedules and repository maintenance, end to end: the real agent runs the
//! real restic against temp repositories.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{wait_until, Agent, TestApp};

const PASSWORD: &str = "Repo-Password-For-Tests";

fn restic(repo: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

pub(crate) fn write_files(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, n) in names.iter().enumerate() {
        std::fs::write(
            dir.join(n),
            format!("{n} {i} {}", "x".repeat(2000 * (i + 1))),
        )
        .unwrap();
    }
}

async fn mint_with_paths(app: &TestApp, hostname: &str, paths: &[String]) -> Value {
    let r = app
        .post_csrf(
            "/api/enrollment-tokens",
            json!({"hostname": hostname, "repo_url": app.repo_url(hostname),
                   "repo_password": PASSWORD, "paths": paths}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// An app (with the given config) and an enrolled, running, initialised host whose default
/// group backs up `paths`.
pub(crate) async fn host_with(
    paths: &[String],
    f: impl FnOnce(&mut server::config::Config),
) -> (TestApp, Agent, String) {
    let app = TestApp::spawn_with(f).await;
    app.bootstrap().await;
    let (agent, host_id) = enrol(&app, "sched-1", paths).await;
    (app, agent, host_id)
}

async fn enrol(app: &TestApp, hostname: &str, paths: &[String]) -> (Agent, String) {
    let minted = mint_with_paths(app, hostname, paths).await;
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
    let init = wait_kind(app, &host_id, "init", 60).await;
    assert_eq!(init["status"], "succeeded", "{init}");
    (agent, host_id)
}

fn finished(j: &Value) -> bool {
    !matches!(j["status"].as_str(), Some("queued" | "running") | None)
}

async fn jobs(app: &TestApp, host_id: &str) -> Vec<Value> {
    let (_, v) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
    v["jobs"].as_array().cloned().unwrap_or_default()
}

/// The newest finished job of a kind.
async fn wait_kind(app: &TestApp, host_id: &str, kind: &str, secs: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(j) = jobs(app, host_id)
            .await
            .into_iter()
            .find(|j| j["kind"] == kind && finished(j))
        {
            return j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finished {kind} job within {secs} s: {:?}",
            jobs(app, host_id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_job(app: &TestApp, job_id: &str, secs: u64) -> Value {
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

pub(crate) async fn groups(app: &TestApp, host_id: &str) -> Vec<Value> {
    let (s, v) = app
        .get_json(&format!("/api/hosts/{host_id}/source-groups"))
        .await;
    assert_eq!(s, 200, "{v}");
    v["source_groups"].as_array().cloned().unwrap()
}

async fn settings(app: &TestApp, host_id: &str) -> Value {
    app.get_json(&format!("/api/hosts/{host_id}/repo")).await.1["settings"].clone()
}

async fn wait_in_sync(app: &TestApp, host_id: &str) {
    wait_until(20, "the agent to apply the schedule set", || async {
        let s = settings(app, host_id).await;
        s["schedule_version"] == s["applied_version"]
    })
    .await;
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.send_csrf(Method::POST, path, body).await
}

async fn snapshot_ids(repo: &str) -> Vec<String> {
    let out = restic(repo, &["snapshots", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn groups_and_schedules_are_validated_and_pushed_to_the_agent() {
    let src = tempfile::tempdir().unwrap();
    let (app, _agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;

    // Enrolment seeded one group with the token's paths.
    let gs = groups(&app, &host).await;
    assert_eq!(gs.len(), 1, "{gs:?}");
    assert_eq!(gs[0]["name"], "default");
    assert_eq!(gs[0]["includes"], json!([src.path().display().to_string()]));
    let default_id = gs[0]["id"].as_str().unwrap().to_string();
    wait_in_sync(&app, &host).await;

    // Bad input: named fields, 4xx with the error body.
    let base = format!("/api/hosts/{host}/source-groups");
    for (body, field) in [
        (json!({"name": "has space", "includes": ["/srv"]}), "name"),
        (json!({"name": "db", "includes": []}), "includes"),
        (json!({"name": "default", "includes": ["/srv"]}), "name"),
        (
            json!({"name": "db", "includes": ["/srv"], "retention_policy": {"keep_within": "forever"}}),
            "retention_policy",
        ),
        (
            json!({"name": "db", "includes": ["/srv"], "retry_max": 1000}),
            "retry_max",
        ),
    ] {
        let (s, v) = post(&app, &base, body.clone()).await;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (s, v) = post(
        &app,
        &base,
        json!({"name": "db", "includes": ["/srv"], "bogus": 1}),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    let (s, db) = post(
        &app,
        &base,
        json!({"name": "db", "includes": ["/var/lib/db"], "excludes": ["*.tmp"],
               "retention_policy": {"keep_last": 3}, "retry_max": 2, "retry_backoff_seconds": 60}),
    )
    .await;
    assert_eq!(s, 201, "{db}");
    let db_id = db["id"].as_str().unwrap().to_string();

    // Schedules: cron checked, groups of this host only.
    let sbase = format!("/api/hosts/{host}/schedules");
    for (body, field) in [
        (
            json!({"cron": "every day", "source_group_ids": [db_id]}),
            "cron",
        ),
        (
            json!({"cron": "0 3 * * *", "source_group_ids": []}),
            "source_group_ids",
        ),
        (
            json!({"cron": "0 3 * * *", "source_group_ids": ["nope"]}),
            "source_group_ids",
        ),
    ] {
        let (s, v) = post(&app, &sbase, body.clone()).await;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (s, sched) = post(
        &app,
        &sbase,
        json!({"cron": "0 3 * * *", "enabled": true, "source_group_ids": [db_id, default_id]}),
    )
    .await;
    assert_eq!(s, 201, "{sched}");
    let next = sched["next_run_at"].as_str().unwrap();
    assert!(next.contains("T03:00:00"), "{sched}");
    assert_eq!(sched["description"], "every day at 03:00 UTC");
    let sid = sched["id"].as_str().unwrap().to_string();

    // A group a schedule uses cannot go; the answer names the schedule.
    let (s, v) = app
        .send_csrf(Method::DELETE, &format!("{base}/{db_id}"), Value::Null)
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "group_in_use");
    assert_eq!(v["error"]["schedules"], json!([sid]));

    // Every change bumps the version and the agent acknowledges it.
    let before = settings(&app, &host).await["schedule_version"]
        .as_u64()
        .unwrap();
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("{sbase}/{sid}"),
            json!({"cron": "30 4 * * 1-5", "enabled": false, "source_group_ids": [default_id]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["next_run_at"], Value::Null, "paused: {v}");
    assert!(
        settings(&app, &host).await["schedule_version"]
            .as_u64()
            .unwrap()
            > before
    );
    wait_in_sync(&app, &host).await;

    // Now db is free; the last group is not.
    let (s, _) = app
        .send_csrf(Method::DELETE, &format!("{base}/{db_id}"), Value::Null)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app
        .send_csrf(Method::DELETE, &format!("{sbase}/{sid}"), Value::Null)
        .await;
    assert_eq!(s, 204);
    let (s, v) = app
        .send_csrf(Method::DELETE, &format!("{base}/{default_id}"), Value::Null)
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "last_source_group");

    // Maintenance and bandwidth settings.
    let mpath = format!("/api/hosts/{host}/repo-maintenance");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &mpath,
            json!({"forget_cadence": "sometimes", "prune_cadence": "weekly", "check_cadence": "weekly", "check_subset_pct": 5}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "forget_cadence");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &mpath,
            json!({"forget_cadence": "12h", "prune_cadence": "off", "check_cadence": "daily", "check_subset_pct": 10, "enabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(app.get_json(&mpath).await.1["forget_cadence"], "12h");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{host}/bandwidth"),
            json!({"up_kbps": 0}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{host}/bandwidth"),
            json!({"up_kbps": 4096, "down_kbps": null}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    wait_in_sync(&app, &host).await;

    // Every change is in the audit trail.
    for t in [
        "SourceGroupSaved",
        "SourceGroupDeleted",
        "ScheduleSaved",
        "ScheduleDeleted",
        "ScheduleSetApplied",
        "MaintenanceChanged",
        "BandwidthChanged",
    ] {
        assert!(!app.events_of(t).await.is_empty(), "no {t} event");
    }
}

#[tokio::test]
async fn hooks_are_for_admins_and_run_around_backups_only() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), &["a.txt"]);
    let (app, _agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;
    let gid = groups(&app, &host).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let marker = src.path().join("post-ran");

    // An operator may not see or set hooks.
    let (s, _) = post(
        &app,
        "/api/users",
        json!({"username": "operator1", "password": "Operator-Password-1", "role": "operator"}),
    )
    .await;
    assert_eq!(s, 201);
    let op = app.login_as("operator1", "Operator-Password-1").await;
    let r = op
        .get(app.url(&format!("/api/hosts/{host}/hooks")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A failing pre-hook aborts the backup; the post-hook still runs and sees the status.
    let hooks = format!("/api/hosts/{host}/source-groups/{gid}/hooks");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &hooks,
            json!({"pre_hook": "echo preparing; exit 7",
                   "post_hook": format!("echo \"status=$RM_JOB_STATUS\" > {}", marker.display())}),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (_, v) = app.get_json(&hooks).await;
    assert_eq!(v["pre_hook"], "echo preparing; exit 7");
    // The scripts are not in the event log.
    let (_, all) = app.get_json("/api/events?limit=1000").await;
    assert!(
        !all.to_string().contains("preparing"),
        "a hook script leaked into the events"
    );
    wait_in_sync(&app, &host).await;

    let (s, v) = post(
        &app,
        &format!("/api/hosts/{host}/source-groups/{gid}/run"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "hook_failed", "{job}");
    assert_eq!(job["snapshot_id"], Value::Null);
    let (_, logs) = app
        .get_json(&format!("/api/jobs/{}/logs", job["id"].as_str().unwrap()))
        .await;
    assert!(
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["text"].as_str().unwrap().starts_with("hook: preparing")),
        "{logs}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "status=failed"
    );

    // A passing pre-hook: the backup runs and the post-hook sees success.
    let (s, _) = app
        .send_csrf(
            Method::PUT,
            &hooks,
            json!({"pre_hook": "true", "post_hook": format!("echo \"status=$RM_JOB_STATUS\" > {}", marker.display())}),
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = post(
        &app,
        &format!("/api/hosts/{host}/source-groups/{gid}/run"),
        Value::Null,
    )
    .await;
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["params"]["tags"], json!(["default"]));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "status=succeeded"
    );

    // Hooks never run for other jobs.
    std::fs::remove_file(&marker).unwrap();
    let (s, v) = post(&app, &format!("/api/hosts/{host}/repo/unlock"), Value::Null).await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(!marker.exists(), "a hook ran for an unlock job");
}

#[tokio::test]
async fn forget_follows_restics_policy_prune_frees_space_and_check_finds_damage() {
    let src = tempfile::tempdir().unwrap();
    let (app, _agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;
    let repo = app.repo_url("sched-1");
    let g = groups(&app, &host).await[0].clone();
    let gid = g["id"].as_str().unwrap().to_string();
    let mut body = g.clone();
    for k in ["id", "host_id", "has_pre_hook", "has_post_hook"] {
        body.as_object_mut().unwrap().remove(k);
    }
    body["retention_policy"] = json!({"keep_last": 2});
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{host}/source-groups/{gid}"),
            body,
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // Five backups of changing data, plus one with another tag that forget must not touch.
    for i in 0..5 {
        write_files(&src.path().join(format!("round{i}")), &["a", "b", "c"]);
        let (_, v) = post(
            &app,
            &format!("/api/hosts/{host}/source-groups/{gid}/run"),
            Value::Null,
        )
        .await;
        let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let other = restic(
        &repo,
        &[
            "backup",
            "--tag",
            "other",
            &src.path().display().to_string(),
        ],
    );
    assert!(other.status.success());
    let all = snapshot_ids(&repo).await;
    assert_eq!(all.len(), 6);

    // What restic's own policy says, asked before the job runs.
    let dry = restic(
        &repo,
        &[
            "forget",
            "--no-lock",
            "--dry-run",
            "--json",
            "--tag",
            "default",
            "--group-by",
            "host,tags",
            "--keep-last",
            "2",
        ],
    );
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let mut expect_removed: Vec<String> = dry
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["remove"].as_array().cloned().unwrap_or_default())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    expect_removed.sort();
    assert_eq!(expect_removed.len(), 3);

    // The snapshot list reaches the server after each backup's result: wait for all five.
    wait_until(30, "the server's snapshot list", || async {
        let (_, v) = app.get_json(&format!("/api/hosts/{host}/snapshots")).await;
        v["snapshots"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|s| s["tags"] == json!(["default"])).count() == 5)
    })
    .await;
    // The what-if (restic's algorithm over the snapshot list the server holds) says the same
    // before anything runs: first for a proposed policy, then for the saved one.
    let (s, wi) = post(
        &app,
        &format!("/api/hosts/{host}/source-groups/{gid}/what-if"),
        json!({"retention_policy": {"keep_last": 4}}),
    )
    .await;
    assert_eq!(s, 200, "{wi}");
    assert_eq!(wi["remove_count"], 1, "{wi}");
    let (s, wi) = post(
        &app,
        &format!("/api/hosts/{host}/source-groups/{gid}/what-if"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{wi}");
    let mut predicted: Vec<String> = wi["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["remove"].as_array().cloned().unwrap_or_default())
        .map(|d| d["snapshot_id"].as_str().unwrap().to_string())
        .collect();
    predicted.sort();
    assert_eq!(predicted, expect_removed, "{wi}");

    let (s, v) = post(&app, &format!("/api/hosts/{host}/repo/forget"), Value::Null).await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let mut removed: Vec<String> = serde_json::from_value(job["stats"]["removed"].clone()).unwrap();
    removed.sort();
    assert_eq!(removed, expect_removed);

    // Why was each one deleted? The policy version (set by the admin's PUT) and the job.
    let (_, why) = app
        .get_json(&format!("/api/hosts/{host}/snapshots/removed"))
        .await;
    let why = why["removed"].as_array().unwrap().clone();
    assert_eq!(why.len(), 3, "{why:?}");
    let saved = app.events_of("SourceGroupSaved").await;
    let policy_event = saved
        .iter()
        .rev()
        .find(|e| e["data"]["group"]["retention_policy"] == json!({"keep_last": 2}))
        .unwrap();
    for w in &why {
        assert!(expect_removed.contains(&w["snapshot_id"].as_str().unwrap().to_string()));
        assert_eq!(w["job_id"], job["id"]);
        assert_eq!(w["policy_seq"], policy_event["seq"]);
        assert_eq!(w["policy_actor"], policy_event["actor"]);
        assert!(w["policy_actor"].as_str().unwrap().starts_with("user:"));
        assert_eq!(w["retention"], json!({"keep_last": 2}));
    }
    let left = snapshot_ids(&repo).await;
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|id| !expect_removed.contains(id)));

    // prune frees what forget left behind.
    let size_before = dir_size(Path::new(&repo));
    let (s, v) = post(&app, &format!("/api/hosts/{host}/repo/prune"), Value::Null).await;
    assert_eq!(s, 202, "{v}");
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let freed = job["stats"]["bytes_freed"].as_u64().unwrap();
    assert!(freed > 0, "{job}");
    assert!(dir_size(Path::new(&repo)) < size_before);
    let panel = app.get_json(&format!("/api/hosts/{host}/repo")).await.1;
    assert_eq!(panel["status"]["last_prune_status"], "succeeded", "{panel}");
    assert_eq!(panel["status"]["bytes_freed"], freed);

    // check passes, then finds a corrupted pack.
    let (_, v) = post(
        &app,
        &format!("/api/hosts/{host}/repo/check"),
        json!({"check_subset_pct": 100}),
    )
    .await;
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    corrupt_a_pack(Path::new(&repo));
    let (_, v) = post(
        &app,
        &format!("/api/hosts/{host}/repo/check"),
        json!({"check_subset_pct": 100}),
    )
    .await;
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error_code"], "check_failed", "{job}");
    let panel = app.get_json(&format!("/api/hosts/{host}/repo")).await.1;
    assert_eq!(panel["status"]["last_check_status"], "failed", "{panel}");
    assert_eq!(panel["status"]["last_check_job"], job["id"]);
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn corrupt_a_pack(repo: &Path) {
    fn first_file(p: &Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(p).ok()? {
            let e = e.ok()?;
            if e.file_type().ok()?.is_dir() {
                if let Some(f) = first_file(&e.path()) {
                    return Some(f);
                }
            } else {
                return Some(e.path());
            }
        }
        None
    }
    let pack = first_file(&repo.join("data")).expect("a pack file");
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).unwrap();
    std::fs::write(&pack, bytes).unwrap();
}

/// Waits for the next minute boundary plus `slack` seconds (a cron "* * * * *" fire).
fn secs_to_next_minute() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    60 - now % 60
}

#[tokio::test]
async fn a_schedule_fires_a_real_backup_with_the_groups_paths_excludes_and_tag() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), &["keep.txt", "skip.tmp"]);
    let (app, _agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;
    let g = groups(&app, &host).await[0].clone();
    let gid = g["id"].as_str().unwrap().to_string();
    let mut body = g.clone();
    for k in ["id", "host_id", "has_pre_hook", "has_post_hook"] {
        body.as_object_mut().unwrap().remove(k);
    }
    body["name"] = json!("nightly");
    body["excludes"] = json!(["*.tmp"]);
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{host}/source-groups/{gid}"),
            body,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, sched) = post(
        &app,
        &format!("/api/hosts/{host}/schedules"),
        json!({"cron": "* * * * *", "enabled": true, "source_group_ids": [gid]}),
    )
    .await;
    assert_eq!(s, 201, "{sched}");
    wait_in_sync(&app, &host).await;

    let wait = secs_to_next_minute() + 60;
    let deadline = std::time::Instant::now() + Duration::from_secs(wait);
    let job = loop {
        if let Some(j) = jobs(&app, &host)
            .await
            .into_iter()
            .find(|j| j["trigger"] == "schedule" && finished(j))
        {
            break j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["schedule_id"], sched["id"]);
    assert_eq!(job["source_group_id"], json!(gid));
    assert_eq!(job["params"]["tags"], json!(["nightly"]));
    let snap = job["snapshot_id"].as_str().unwrap();
    let ls = restic(&app.repo_url("sched-1"), &["ls", "--json", snap]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(listing.contains("keep.txt"), "{listing}");
    assert!(
        !listing.contains("skip.tmp"),
        "the exclude was ignored: {listing}"
    );
    let (_, v) = app.get_json(&format!("/api/hosts/{host}/schedules")).await;
    assert_eq!(v["schedules"][0]["last_job_id"], job["id"], "{v}");

    // The story goes on: forget with the group's retention keeps the new snapshot.
    let (s, v) = post(&app, &format!("/api/hosts/{host}/repo/forget"), Value::Null).await;
    assert_eq!(s, 202, "{v}");
    let forget = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(forget["status"], "succeeded", "{forget}");
    assert_eq!(forget["params"]["tags"], json!(["nightly"]));
    let kept: Vec<String> = serde_json::from_value(forget["stats"]["kept"].clone()).unwrap();
    assert!(kept.iter().any(|k| k.starts_with(snap)), "{forget}");

    // And a failure: a group whose path is gone fails, and raises an alert.
    let (s, broken) = post(
        &app,
        &format!("/api/hosts/{host}/source-groups"),
        json!({"name": "broken", "includes": [src.path().join("gone").display().to_string()]}),
    )
    .await;
    assert_eq!(s, 201, "{broken}");
    let (_, v) = post(
        &app,
        &format!(
            "/api/hosts/{host}/source-groups/{}/run",
            broken["id"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    let failed = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    wait_until(20, "the backup_failed alert", || async {
        let (_, v) = app.get_json(&format!("/api/alerts?host={host}")).await;
        v["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["kind"] == "backup_failed" && x["job_id"] == failed["id"])
        })
    })
    .await;

    // `RM_RECORD_FIXTURE=path` records this run as a replay-tests fixture (see
    // docs/replay-tests.md).
    if let Ok(path) = std::env::var("RM_RECORD_FIXTURE") {
        let dir = app.stop().await;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_restic-manager"))
            .args(["events", "export"])
            .env("RM_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(path, out.stdout).unwrap();
    }
}

#[tokio::test]
async fn a_fire_while_the_server_is_down_arrives_once_after_restart() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), &["x.txt"]);
    let (app, mut agent, host) = host_with(&[src.path().display().to_string()], |c| {
        c.offline_after_secs = 300;
    })
    .await;
    let gid = groups(&app, &host).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = post(
        &app,
        &format!("/api/hosts/{host}/schedules"),
        json!({"cron": "* * * * *", "enabled": true, "source_group_ids": [gid]}),
    )
    .await;
    assert_eq!(s, 201);
    wait_in_sync(&app, &host).await;
    // Stop the server well before the next fire; bring it back after the backup is done.
    while secs_to_next_minute() < 8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let addr = app.addr;
    let dir = app.stop().await;
    let repo = dir.path().join("repos/sched-1").display().to_string();
    wait_until(
        secs_to_next_minute() + 60,
        "the local scheduler to make a snapshot",
        || {
            let repo = repo.clone();
            async move { !snapshot_ids(&repo).await.is_empty() }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.outbox_len() >= 2, "the results wait in the outbox");
    // Stop the schedule from firing again while we count: take the agent down after
    // delivery instead (its outbox is what we test).
    let app = relogin(TestApp::spawn_at(dir, addr, |c| c.offline_after_secs = 300).await).await;
    // The agent retries with a backoff that grows to a minute while the server is down, so
    // it can take up to that long to come back.
    wait_until(90, "the outbox to drain", || async {
        agent.outbox_len() == 0
    })
    .await;
    agent.kill();
    let scheduled: Vec<Value> = jobs(&app, &host)
        .await
        .into_iter()
        .filter(|j| j["trigger"] == "schedule")
        .collect();
    assert!(!scheduled.is_empty());
    let first = scheduled.last().unwrap();
    assert_eq!(first["status"], "succeeded", "{first}");
    let snaps = snapshot_ids(&app.repo_url("sched-1")).await;
    assert!(snaps
        .iter()
        .any(|s| s.starts_with(first["snapshot_id"].as_str().unwrap())));
    // Exactly once: one JobQueued and one JobFinished per scheduled job.
    for t in ["JobQueued", "JobFinished"] {
        let evs = app.events_of(t).await;
        for j in &scheduled {
            let n = evs
                .iter()
                .filter(|e| e["data"]["job_id"] == j["id"])
                .count();
            assert_eq!(n, 1, "{t} for {} recorded {n} times", j["id"]);
        }
    }
}

/// A restarted app's client has no session: log in again.
async fn relogin(mut app: TestApp) -> TestApp {
    app.client = app
        .login_as(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    app
}

#[tokio::test]
async fn the_ticker_runs_maintenance_once_per_window_and_pending_runs_drain_on_reconnect() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), &["x.txt"]);
    let tick = |c: &mut server::config::Config| {
        c.maintenance_tick_secs = 1;
        c.offline_after_secs = 3;
    };
    // The ticker is off until the settings are in (enrolment's defaults would run at once).
    let (app, mut agent, host) = host_with(&[src.path().display().to_string()], |c| {
        c.offline_after_secs = 3;
    })
    .await;
    let mpath = format!("/api/hosts/{host}/repo-maintenance");
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &mpath,
            json!({"forget_cadence": "off", "prune_cadence": "off", "check_cadence": "1h", "check_subset_pct": 0}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let addr = app.addr;
    let dir = app.stop().await;
    let app = relogin(TestApp::spawn_at(dir, addr, tick).await).await;
    let check = wait_kind(&app, &host, "check", 30).await;
    assert_eq!(check["status"], "succeeded", "{check}");
    // "pending" when the first tick came before the agent was back from the restart.
    assert!(
        matches!(check["trigger"].as_str(), Some("maintenance" | "pending")),
        "{check}"
    );
    assert!(jobs(&app, &host)
        .await
        .iter()
        .all(|j| j["kind"] != "prune" && j["kind"] != "forget"));

    // Restart the server mid-window: no second check.
    let addr = app.addr;
    let dir = app.stop().await;
    let app = relogin(TestApp::spawn_at(dir, addr, tick).await).await;
    app.wait_status(&host, "online", 20).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let checks = jobs(&app, &host)
        .await
        .into_iter()
        .filter(|j| j["kind"] == "check")
        .count();
    assert_eq!(checks, 1, "the check ran twice in one window");

    // With the agent away, a due run waits as a pending run and drains on reconnect.
    agent.kill();
    app.wait_status(&host, "offline", 20).await;
    let (s, v) = app
        .send_csrf(
            Method::PUT,
            &mpath,
            json!({"forget_cadence": "off", "prune_cadence": "1h", "check_cadence": "1h", "check_subset_pct": 0}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = app
            .get_json(&format!("/api/hosts/{host}/pending-runs"))
            .await;
        if v["pending_runs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p["kind"] == "prune" && p["state"] == "waiting")
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no pending prune: {v}\njobs: {:?}\nhost: {}\nrepo: {}",
            jobs(&app, &host).await,
            app.host(&host).await.1,
            app.get_json(&format!("/api/hosts/{host}/repo")).await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(jobs(&app, &host).await.iter().all(|j| j["kind"] != "prune"));
    agent.start();
    app.wait_status(&host, "online", 20).await;
    let prune = wait_kind(&app, &host, "prune", 60).await;
    assert_eq!(prune["status"], "succeeded", "{prune}");
    assert_eq!(prune["trigger"], "pending");
    wait_until(20, "the pending run to complete", || async {
        let (_, v) = app
            .get_json(&format!("/api/hosts/{host}/pending-runs"))
            .await;
        v["pending_runs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p["kind"] == "prune" && p["state"] == "done")
        })
    })
    .await;
    for t in [
        "PendingRunQueued",
        "PendingRunAttempted",
        "PendingRunCompleted",
    ] {
        // One for the prune; the check after the restart may have waited as one too.
        let n = app.events_of(t).await.len();
        assert!((1..=2).contains(&n), "{t}: {n}");
    }
}

#[tokio::test]
async fn bandwidth_caps_apply_to_every_run_with_a_per_run_override() {
    let src = tempfile::tempdir().unwrap();
    write_files(src.path(), &["x.txt"]);
    let (app, _agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;
    let gid = groups(&app, &host).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app
        .send_csrf(
            Method::PUT,
            &format!("/api/hosts/{host}/bandwidth"),
            json!({"up_kbps": 2048, "down_kbps": 1024}),
        )
        .await;
    assert_eq!(s, 200);
    let run = format!("/api/hosts/{host}/source-groups/{gid}/run");
    let (_, v) = post(&app, &run, Value::Null).await;
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["params"]["limit_upload_kbps"], 2048);
    assert_eq!(job["params"]["limit_download_kbps"], 1024);
    let (_, v) = post(&app, &run, json!({"limit_upload_kbps": 100})).await;
    let job = wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["params"]["limit_upload_kbps"], 100);
    assert_eq!(job["params"]["limit_download_kbps"], 1024);
    let (s, v) = post(&app, &run, json!({"limit_upload_kbps": 0})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "limit_upload_kbps");
}
