//! Alerts and notifications end to end: a real failed backup raises an alert that reaches a
//! local webhook receiver (signature checked) and a local SMTP server (aiosmtpd).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{wait_until, Agent, TestApp};

const PASSWORD: &str = "Repo-Password-For-Tests";
const SECRET: &str = "webhook-shared-secret";

/// What a test webhook receiver saw: (headers, body).
type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A local webhook receiver. `fail_first` answers 500 that many times; `delay` holds each
/// answer back (a slow receiver).
async fn receiver(fail_first: usize, delay: Duration) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let failures = Arc::new(Mutex::new(fail_first));
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            let failures = failures.clone();
            async move {
                tokio::time::sleep(delay).await;
                let mut f = failures.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                s.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (addr, seen)
}

fn verify_signature(headers: &HeaderMap, body: &[u8]) {
    let got = headers
        .get("x-rm-signature")
        .expect("a signature header")
        .to_str()
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(got, want, "bad webhook signature");
}

async fn enrol(app: &TestApp, name: &str, paths: &[&str]) -> (Agent, String) {
    let r = app
        .post_csrf(
            "/api/enrollment-tokens",
            json!({"hostname": name, "repo_url": app.repo_url(name), "repo_password": PASSWORD, "paths": paths}),
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
    wait_until(60, "the init job", || async {
        let (_, v) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
        v["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["kind"] == "init" && j["status"] == "succeeded")
        })
    })
    .await;
    (agent, host_id)
}

async fn run_default_group(app: &TestApp, host: &str) -> Value {
    let (_, v) = app
        .get_json(&format!("/api/hosts/{host}/source-groups"))
        .await;
    let gid = v["source_groups"][0]["id"].as_str().unwrap().to_string();
    let (s, v) = app
        .send_csrf(
            Method::POST,
            &format!("/api/hosts/{host}/source-groups/{gid}/run"),
            Value::Null,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = app.get_json(&format!("/api/jobs/{id}")).await.1;
        if !matches!(job["status"].as_str(), Some("queued" | "running")) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn add_channel(app: &TestApp, body: Value) -> String {
    let (s, v) = app
        .send_csrf(Method::POST, "/api/notification-channels", body)
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(!v.to_string().contains(SECRET), "the secret came back: {v}");
    v["id"].as_str().unwrap().to_string()
}

/// A local SMTP server (the Python package aiosmtpd) writing to a maildir.
struct Smtp {
    child: std::process::Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Smtp {
    fn start() -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test installs it)");
        Smtp {
            child,
            port,
            maildir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.path().join("mail").join(sub)) {
                for e in rd.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_failed_backup_alerts_by_webhook_and_email_and_a_success_resolves_it() {
    let smtp = Smtp::start();
    let (hook, seen) = receiver(0, Duration::ZERO).await;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let src = tempfile::tempdir().unwrap();
    let missing = src.path().join("not-there").display().to_string();
    let (_agent, host) = enrol(&app, "alerting-1", &[&missing]).await;

    add_channel(
        &app,
        json!({"kind": "webhook", "name": "ops hook",
               "config": {"url": format!("http://{hook}/hook"), "secret": SECRET},
               "alert_kinds": ["backup_failed"]}),
    )
    .await;
    add_channel(
        &app,
        json!({"kind": "email", "name": "ops mail",
               "config": {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": "none",
                          "from": "restic-manager@example.org", "to": ["ops@example.org"]}}),
    )
    .await;

    let started = std::time::Instant::now();
    let job = run_default_group(&app, &host).await;
    assert_eq!(job["status"], "failed", "{job}");

    wait_until(60, "the webhook delivery", || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    wait_until(60, "the email", || async {
        smtp.messages().iter().any(|m| m.contains("backup_failed"))
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(60));
    let (headers, body) = seen.lock().unwrap()[0].clone();
    verify_signature(&headers, &body);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "alert.raised");
    assert_eq!(v["alert"]["kind"], "backup_failed");
    assert_eq!(v["alert"]["hostname"], "alerting-1");
    assert_eq!(v["alert"]["severity"], "critical");
    let mail = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("backup_failed"))
        .unwrap();
    assert!(mail.contains("alerting-1"), "{mail}");
    assert!(mail.contains("To: ops@example.org"), "{mail}");

    // The alert is listed and counted on the host; an operator acknowledges it.
    let (_, alerts) = app.get_json("/api/alerts?state=open").await;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "backup_failed")
        .cloned()
        .unwrap_or_else(|| panic!("{alerts}"));
    assert_eq!(alert["job_id"], job["id"]);
    assert_eq!(app.host(&host).await.1["open_alerts"], 1);
    let (s, _) = app
        .send_csrf(
            Method::POST,
            &format!("/api/alerts/{}/ack", alert["id"].as_str().unwrap()),
            Value::Null,
        )
        .await;
    assert_eq!(s, 204);
    let (_, one) = app
        .get_json(&format!("/api/alerts/{}", alert["id"].as_str().unwrap()))
        .await;
    assert_eq!(one["state"], "acknowledged");
    let (s, v) = app.get_json("/api/alerts?state=nonsense").await;
    assert_eq!(s, 400, "{v}");

    // Fix the group's path: the next backup succeeds and resolves the alert by itself.
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::write(format!("{missing}/f"), "data").unwrap();
    let job = run_default_group(&app, &host).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    wait_until(20, "the alert to resolve", || async {
        app.get_json(&format!("/api/alerts/{}", alert["id"].as_str().unwrap()))
            .await
            .1["state"]
            == "resolved"
    })
    .await;
    assert_eq!(app.host(&host).await.1["open_alerts"], 0);
    // The webhook only wanted backup_failed raises... and resolves of that kind.
    wait_until(30, "the resolve notification", || async {
        seen.lock().unwrap().len() == 2
    })
    .await;
    let (_, body) = seen.lock().unwrap()[1].clone();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["event"], "alert.resolved");
    // Every attempt is an event.
    assert!(app.events_of("NotificationAttempted").await.len() >= 3);
}

#[tokio::test]
async fn an_offline_agent_raises_an_alert_and_coming_back_resolves_it() {
    let app = TestApp::spawn_with(|c| c.offline_after_secs = 2).await;
    app.bootstrap().await;
    let src = tempfile::tempdir().unwrap();
    let (mut agent, host) = enrol(&app, "offline-1", &[&src.path().display().to_string()]).await;
    agent.kill();
    app.wait_status(&host, "offline", 20).await;
    wait_until(20, "an agent_offline alert", || async {
        let (_, v) = app
            .get_json(&format!("/api/alerts?state=open&host={host}"))
            .await;
        v["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["kind"] == "agent_offline"))
    })
    .await;
    agent.start();
    app.wait_status(&host, "online", 20).await;
    wait_until(20, "the alert to resolve", || async {
        let (_, v) = app.get_json(&format!("/api/alerts?host={host}")).await;
        v["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["kind"] == "agent_offline" && x["state"] == "resolved")
        })
    })
    .await;
}

#[tokio::test]
async fn a_schedule_that_does_not_fire_is_a_missed_run_alert() {
    let app = TestApp::spawn_with(|c| {
        c.offline_after_secs = 2;
        c.alert_grace_secs = 3;
        c.alert_tick_secs = 1;
    })
    .await;
    app.bootstrap().await;
    let src = tempfile::tempdir().unwrap();
    let (mut agent, host) = enrol(&app, "missed-1", &[&src.path().display().to_string()]).await;
    agent.kill();
    let (_, v) = app
        .get_json(&format!("/api/hosts/{host}/source-groups"))
        .await;
    let gid = v["source_groups"][0]["id"].as_str().unwrap().to_string();
    let (s, sched) = app
        .send_csrf(
            Method::POST,
            &format!("/api/hosts/{host}/schedules"),
            json!({"cron": "* * * * *", "enabled": true, "source_group_ids": [gid]}),
        )
        .await;
    assert_eq!(s, 201, "{sched}");
    wait_until(80, "a schedule_missed alert", || async {
        let (_, v) = app
            .get_json(&format!("/api/alerts?state=open&host={host}"))
            .await;
        v["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["kind"] == "schedule_missed" && x["subject"] == sched["id"])
        })
    })
    .await;
}

#[tokio::test]
async fn a_restarted_notifier_sends_each_notification_once() {
    // A slow receiver that fails the first attempt: the server stops while the second
    // attempt is in flight and comes back.
    let (hook, seen) = receiver(1, Duration::from_secs(2)).await;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let cid = add_channel(
        &app,
        json!({"kind": "webhook", "name": "slow", "config": {"url": format!("http://{hook}/hook"), "secret": SECRET}}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (s, v) = app
            .send_csrf(
                Method::POST,
                &format!("/api/notification-channels/{cid}/test"),
                Value::Null,
            )
            .await;
        assert_eq!(s, 202, "{v}");
        ids.push(v["notification_id"].as_str().unwrap().to_string());
    }
    // First attempt fails (500), the retry is due after 5 s; stop in the middle of it.
    wait_until(30, "a failed first attempt", || async {
        !app.events_of("NotificationAttempted").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let addr = app.addr;
    let dir = app.stop().await;
    let mut app = TestApp::spawn_at(dir, addr, |_| {}).await;
    app.client = app
        .login_as(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    wait_until(60, "every notification delivered", || async {
        let got: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h["x-rm-notification-id"].to_str().unwrap().to_string())
            .collect();
        ids.iter().all(|i| got.contains(i))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, b)| {
            verify_signature(h, b);
            h["x-rm-notification-id"].to_str().unwrap().to_string()
        })
        .collect();
    for i in &ids {
        assert_eq!(
            got.iter().filter(|g| *g == i).count(),
            1,
            "{i} delivered {got:?}"
        );
    }
    let (_, v) = app.get_json("/api/notifications").await;
    assert!(
        v["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["what"] == "test")
            .all(|n| n["state"] == "delivered"),
        "{v}"
    );
}

#[tokio::test]
async fn channels_are_validated_and_admin_only() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    for (body, field) in [
        (json!({"kind": "pager", "name": "x", "config": {}}), "kind"),
        (
            json!({"kind": "webhook", "name": "", "config": {"url": "http://x/y"}}),
            "name",
        ),
        (
            json!({"kind": "webhook", "name": "x", "config": {"url": "file:///etc/passwd"}}),
            "config",
        ),
        (
            json!({"kind": "email", "name": "x", "config": {"smtp_host": "m", "from": "nope", "to": ["a@b.c"]}}),
            "config",
        ),
        (
            json!({"kind": "ntfy", "name": "x", "config": {"url": "https://ntfy.sh/t"}, "alert_kinds": ["everything"]}),
            "alert_kinds",
        ),
    ] {
        let (s, v) = app
            .send_csrf(Method::POST, "/api/notification-channels", body.clone())
            .await;
        assert_eq!(s, 400, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (s, _) = app
        .send_csrf(
            Method::POST,
            "/api/users",
            json!({"username": "operator1", "password": "Operator-Password-1", "role": "operator"}),
        )
        .await;
    assert_eq!(s, 201);
    let op = app.login_as("operator1", "Operator-Password-1").await;
    let r = op
        .get(app.url("/api/notification-channels"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (s, _) = app
        .send_csrf(
            Method::POST,
            "/api/notification-channels/nope/test",
            Value::Null,
        )
        .await;
    assert_eq!(s, 404);
}
