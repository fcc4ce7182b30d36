//! Time travel: every *(as_of)* endpoint answers for a past seq or time exactly what the live
//! API answered at that moment.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{wait_until, Agent, TestApp};

const PASSWORD: &str = "Repo-Password-For-Tests";

/// The endpoints marked *(as_of)* in API.md, for one host.
fn endpoints(host: &str) -> Vec<String> {
    vec![
        "/api/hosts".into(),
        format!("/api/hosts/{host}"),
        "/api/fleet/summary".into(),
        format!("/api/hosts/{host}/jobs"),
        format!("/api/hosts/{host}/snapshots"),
        "/api/alerts".into(),
    ]
}

/// `last_seen_at` comes from heartbeats, which are not events: only the live answer has it.
fn strip_live(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("last_seen_at");
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

async fn head(app: &TestApp) -> i64 {
    app.get_json("/api/events/head").await.1["seq"]
        .as_i64()
        .unwrap()
}

/// The live answers at a quiet moment: the head is the same before and after reading them.
async fn record(app: &TestApp, urls: &[String]) -> (i64, Vec<Value>) {
    loop {
        let before = head(app).await;
        let mut answers = Vec::new();
        for u in urls {
            let (s, v) = app.get_json(u).await;
            assert_eq!(s, 200, "{u}: {v}");
            answers.push(strip_live(v));
        }
        if head(app).await == before {
            return (before, answers);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_job(app: &TestApp, id: &str) -> Value {
    let mut job = Value::Null;
    for _ in 0..600 {
        job = app.get_json(&format!("/api/jobs/{id}")).await.1;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job never finished: {job}");
}

#[tokio::test]
async fn as_of_answers_equal_what_the_live_api_answered_then() {
    let app = TestApp::spawn_with(|c| {
        c.asof_checkpoint_every = 7;
        c.asof_checkpoint_secs = 1;
        c.offline_after_secs = 3;
    })
    .await;
    app.bootstrap().await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), "one").unwrap();
    let r = app
        .post_csrf(
            "/api/enrollment-tokens",
            json!({"hostname": "tt-1", "repo_url": app.repo_url("tt-1"), "repo_password": PASSWORD,
                   "paths": [src.path().display().to_string()]}),
        )
        .await;
    let minted: Value = r.json().await.unwrap();
    let mut agent = Agent::new();
    let (code, out) = agent
        .enroll(&app.base(), minted["token"].as_str().unwrap(), None)
        .await;
    assert_eq!(code, 0, "{out}");
    let host = std::fs::read_to_string(agent.config())
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("host_id = \"")
                .map(|s| s.trim_end_matches('"').to_string())
        })
        .unwrap();
    let urls = endpoints(&host);
    let mut moments = vec![record(&app, &urls).await]; // enrolled, never connected
    agent.start();
    app.wait_status(&host, "online", 20).await;
    wait_until(60, "init", || async {
        let (_, v) = app.get_json(&format!("/api/hosts/{host}/jobs")).await;
        v["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["kind"] == "init" && j["status"] == "succeeded")
        })
    })
    .await;
    let (_, v) = app
        .get_json(&format!("/api/hosts/{host}/source-groups"))
        .await;
    let gid = v["source_groups"][0]["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        std::fs::write(src.path().join(format!("f{i}")), format!("{i}")).unwrap();
        let (s, v) = app
            .send_csrf(
                Method::POST,
                &format!("/api/hosts/{host}/source-groups/{gid}/run"),
                Value::Null,
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let job = wait_job(&app, v["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        wait_until(30, "the snapshot list", || async {
            app.get_json(&format!("/api/hosts/{host}/snapshots"))
                .await
                .1["snapshots"]
                .as_array()
                .is_some_and(|a| a.len() == i + 1)
        })
        .await;
        let mut m = record(&app, &urls).await;
        // The job itself, as it was.
        let (_, j) = app
            .get_json(&format!("/api/jobs/{}", job["id"].as_str().unwrap()))
            .await;
        m.1.push(strip_live(j));
        moments.push(m);
    }
    agent.kill();
    app.wait_status(&host, "offline", 20).await;
    moments.push(record(&app, &urls).await);

    // Checkpoints were taken along the way, so the views start from them.
    wait_until(10, "a time-travel checkpoint", || async {
        std::fs::read_dir(app.data().join("asof"))
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("cp-")
                        && !e.file_name().to_string_lossy().contains("building")
                })
            })
            .unwrap_or(false)
    })
    .await;

    for (seq, answers) in &moments {
        for (i, u) in urls.iter().enumerate() {
            let sep = if u.contains('?') { '&' } else { '?' };
            let r = app
                .client
                .get(app.url(&format!("{u}{sep}as_of={seq}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{u} as_of {seq}");
            assert_eq!(
                r.headers()["x-rm-as-of-seq"].to_str().unwrap(),
                seq.to_string()
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(strip_live(v), answers[i], "{u} as_of={seq}");
        }
    }
    // A time works too: the time of a moment's last event.
    let (seq, answers) = &moments[2];
    let (_, ev) = app
        .get_json(&format!("/api/events?after={}&limit=1", seq - 1))
        .await;
    let t = ev["events"][0]["occurred_at"].as_str().unwrap().to_string();
    let (s, v) = app.get_json(&format!("/api/fleet/summary?as_of={t}")).await;
    assert_eq!(s, 200);
    assert_eq!(v, answers[2]);
    // Bad as_of → 400 with the error body.
    let (s, v) = app.get_json("/api/hosts?as_of=yesterday").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_query");
    let (s, v) = app.get_json(&format!("/api/jobs/nope?as_of={seq}")).await;
    assert_eq!(s, 404, "{v}");
}
