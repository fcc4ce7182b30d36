//! The real agent binary against the real server: enrolment, presence, refusals, protocol
//! errors, credential pushes, the outbox, TLS pinning, secrets on disk.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{client, wait_until, Agent, TestApp};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn raw_socket(
    app: &TestApp,
    bearer: &str,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/api/agents/ws", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

pub(crate) async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => return Value::Null,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => return Value::Null,
            Err(_) => panic!("no frame within 10 s"),
        }
    }
}

pub(crate) fn frame(v: u32, msg_type: &str, payload: Value) -> Message {
    Message::text(
        json!({"v": v, "id": uuid::Uuid::now_v7().to_string(), "type": msg_type, "payload": payload}).to_string(),
    )
}

pub(crate) fn hello_payload() -> Value {
    json!({"agent_version": "test", "hostname": "raw", "os": "linux", "arch": "x86_64", "restic_version": ""})
}

/// Enrols through the API (no agent process) and returns (host_id, bearer).
pub(crate) async fn enrol_raw(app: &TestApp, hostname: &str) -> (String, String) {
    let token = app.mint(hostname, "raw-password-123").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client()
        .post(app.url("/api/agents/enroll"))
        .json(&json!({"token": token, "hostname": hostname, "os": "linux", "arch": "x86_64", "agent_version": "t", "restic_version": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["host_id"].as_str().unwrap().into(),
        v["bearer"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn enrol_go_online_survive_a_server_restart_and_go_offline_when_killed() {
    let app = TestApp::spawn_with(|c| c.offline_after_secs = 2).await;
    app.bootstrap().await;
    let minted = app.mint("web-1", "Repo-Password-For-Tests").await;
    assert!(minted["install_command"]
        .as_str()
        .unwrap()
        .contains(&format!("{}/install/agent.sh?token=", app.base())));
    assert!(minted["expires_at"].is_string());
    let (mut agent, host_id) = Agent::enrolled(&app, "web-1").await;
    let (s, host) = app.host(&host_id).await;
    assert_eq!(s, 200);
    assert_eq!(host["status"], "pending");
    assert_eq!(host["hostname"], "web-1");

    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let (_, host) = app.host(&host_id).await;
    assert_eq!(host["os"], std::env::consts::OS);
    assert_eq!(host["agent_version"], env!("CARGO_PKG_VERSION"));
    for k in [
        "id",
        "hostname",
        "status",
        "os",
        "arch",
        "agent_version",
        "restic_version",
        "last_seen_at",
        "last_backup",
        "snapshot_count",
        "repo_size_bytes",
        "open_alerts",
        "tags",
    ] {
        assert!(host.get(k).is_some(), "Host.{k} missing: {host}");
    }
    // The agent received and stored its credentials: it confirmed version 1.
    wait_until(10, "credentials applied", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 1
    })
    .await;
    let (_, summary) = app.get_json("/api/fleet/summary").await;
    assert_eq!(
        (summary["hosts"].as_i64(), summary["online"].as_i64()),
        (Some(1), Some(1))
    );

    // Restart the server on the same port: the agent comes back by itself.
    let addr = app.addr;
    let cookies = app.client.clone();
    let dir = app.stop().await;
    let mut app = TestApp::spawn_at(dir, addr, |c| c.offline_after_secs = 2).await;
    app.client = cookies;
    wait_until(20, "the agent to reconnect", || async {
        agent.log().matches("connected host_id").count() >= 2
    })
    .await;
    let (_, host) = app.host(&host_id).await;
    assert_eq!(host["status"], "online");

    // Killed: offline after the threshold, as one HostWentOffline event. (A loaded machine
    // can take longer than the 2 s threshold to reconnect after the restart above, which is
    // a real offline spell of its own: count only what the kill adds.)
    let before = app.events_of("HostWentOffline").await.len();
    agent.kill();
    app.wait_status(&host_id, "offline", 20).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let offline = app.events_of("HostWentOffline").await;
    assert_eq!(offline.len(), before + 1, "{offline:?}");
    let offline = &offline[before..];
    assert!(offline[0]["data"]["reason"]
        .as_str()
        .unwrap()
        .contains("no contact"));
    let (_, summary) = app.get_json("/api/fleet/summary").await;
    assert_eq!(summary["offline"], 1);
    // Heartbeats are not events: only transitions are.
    let online = app.events_of("HostCameOnline").await;
    assert!(online.len() <= 2 + before, "{online:?}");
    app.stop().await;
}

#[tokio::test]
async fn reused_expired_and_unknown_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let token = app.mint("web-2", "Repo-Password-For-Tests").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let a = Agent::new();
    assert_eq!(a.enroll(&app.base(), &token, None).await.0, 0);
    let b = Agent::new();
    let (code, out) = b.enroll(&app.base(), &token, None).await;
    assert_eq!(code, 1);
    assert!(out.contains("already been used"), "{out}");
    let (code, out) = b.enroll(&app.base(), &"ab".repeat(32), None).await;
    assert_eq!(code, 1);
    assert!(out.contains("unknown enrolment token"), "{out}");

    let expired = app.mint("web-3", "Repo-Password-For-Tests").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    {
        let c = rusqlite::Connection::open(app.db()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute("UPDATE enrollment_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE hostname = 'web-3'", []).unwrap();
    }
    let (code, out) = b.enroll(&app.base(), &expired, None).await;
    assert_eq!(code, 1);
    assert!(out.contains("expired"), "{out}");

    // Concurrent use of one token: exactly one wins.
    let token = app.mint("web-4", "Repo-Password-For-Tests").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let tries = (0..8).map(|_| {
        let url = app.url("/api/agents/enroll");
        let t = token.clone();
        async move {
            client()
                .post(url)
                .json(&json!({"token": t, "hostname": "web-4"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let mut statuses = futures::future::join_all(tries).await;
    statuses.sort();
    assert_eq!(statuses, [201, 401, 401, 401, 401, 401, 401, 401]);
    // Operators and admins mint; anonymous callers cannot.
    let anon = client()
        .post(app.url("/api/enrollment-tokens"))
        .json(&json!({"hostname": "x", "repo_url": "/r", "repo_password": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let bad = app
        .post_csrf(
            "/api/enrollment-tokens",
            json!({"hostname": "bad name", "repo_url": "/r", "repo_password": "p"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e["error"]["field"], "hostname");
    app.stop().await;
}

#[tokio::test]
async fn wrong_bearers_and_deleted_hosts_are_refused_clearly() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let err = raw_socket(&app, &"0".repeat(64)).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        e => panic!("{e}"),
    }

    let (mut agent, host_id) = Agent::enrolled(&app, "doomed").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    wait_until(10, "credentials applied", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 1
    })
    .await;

    let r = client()
        .delete(app.url(&format!("/api/hosts/{host_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "deleting needs a session");
    let csrf = app.csrf().await;
    let r = app
        .client
        .delete(app.url(&format!("/api/hosts/{host_id}")))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The live agent is told and stops for good (exit 3) with a clear message.
    assert_eq!(agent.exit_code(20).await, 3);
    assert!(agent.log().contains("deleted"), "{}", agent.log());
    // Started again, it is refused at the door.
    agent.start();
    assert_eq!(agent.exit_code(20).await, 3);
    assert!(
        agent.log().contains("this host was deleted"),
        "{}",
        agent.log()
    );

    // Hidden from the read models; its history stays.
    assert_eq!(app.host(&host_id).await.0, 404);
    let (_, hosts) = app.get_json("/api/hosts").await;
    assert!(hosts["hosts"].as_array().unwrap().is_empty());
    let (_, history) = app.get_json(&format!("/api/audit?host={host_id}")).await;
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // (the init job that followed the credentials is the host's too)
    let host_types: Vec<&str> = types
        .iter()
        .copied()
        // (whether the agent acknowledged the schedule set before the delete is a race)
        .filter(|t| !t.starts_with("Job") && *t != "ScheduleSetApplied")
        .collect();
    assert_eq!(
        host_types,
        [
            "HostEnrolled",
            "RepoCredentialsChanged",
            "SourceGroupSaved",
            "HostCameOnline",
            "RepoCredentialsApplied",
            "HostDeleted"
        ]
    );
    assert!(types.contains(&"JobQueued"), "{types:?}");
    // Its secrets are gone from the vault.
    let c = rusqlite::Connection::open(app.db()).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM vault WHERE owner = ?1",
            [format!("host-{host_id}")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
    let again = app
        .client
        .delete(app.url(&format!("/api/hosts/{host_id}")))
        .header("x-csrf-token", app.csrf().await)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn protocol_mismatch_and_bad_frames_get_error_frames_not_crashes() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (host_id, bearer) = enrol_raw(&app, "raw-1").await;

    for (v, code) in [(99, "protocol_too_new"), (0, "protocol_too_old")] {
        let mut ws = raw_socket(&app, &bearer).await.unwrap();
        ws.send(frame(v, "hello", json!({"from": "the future"})))
            .await
            .unwrap();
        let e = next_json(&mut ws).await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["payload"]["code"], code);
        assert_eq!(e["payload"]["supported"], json!({"min": 1, "max": 1}));
        assert!(e["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("install a matching agent"));
        assert_eq!(next_json(&mut ws).await, Value::Null, "then a clean close");
    }
    let mut ws = raw_socket(&app, &bearer).await.unwrap();
    ws.send(Message::text("this is not json")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["payload"]["code"], "bad_frame");

    let mut ws = raw_socket(&app, &bearer).await.unwrap();
    ws.send(frame(1, "hello", hello_payload())).await.unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "hello.ok");
    assert_eq!(welcome["payload"]["host_id"], host_id.as_str());
    let update = next_json(&mut ws).await;
    assert_eq!(update["type"], "config.update");
    assert_eq!(update["payload"]["version"], 1);
    assert_eq!(update["payload"]["repo"]["password"], "raw-password-123");
    // Then the schedule set: the default group, no schedules yet.
    let set = next_json(&mut ws).await;
    assert_eq!(set["type"], "schedules.update", "{set}");
    assert_eq!(set["payload"]["version"], 1);
    assert_eq!(set["payload"]["schedules"], json!([]));

    let cases = [
        (Message::text("{{{"), "bad_frame"),
        (frame(1, "dance", json!({})), "unknown_type"),
        (
            frame(1, "config.applied", json!({"version": "one"})),
            "bad_payload",
        ),
        (frame(1, "hello", hello_payload()), "unexpected"),
        (
            Message::text(format!(
                "{{\"v\":1,\"id\":\"x\",\"type\":\"heartbeat\",\"payload\":{{\"pad\":\"{}\"}}}}",
                "x".repeat(300 * 1024)
            )),
            "frame_too_large",
        ),
        (Message::binary(vec![1u8, 2, 3]), "bad_frame"),
    ];
    for (msg, code) in cases {
        ws.send(msg).await.unwrap();
        let e = next_json(&mut ws).await;
        assert_eq!(e["payload"]["code"], code, "{e}");
    }
    // Still alive and serving: a durable message is recorded and acknowledged by id.
    let id = uuid::Uuid::now_v7().to_string();
    let applied =
        json!({"v": 1, "id": id, "type": "config.applied", "payload": {"version": 1}}).to_string();
    ws.send(Message::text(applied.clone())).await.unwrap();
    // The ack, and — the agent now has credentials — the repository's init job.
    let mut seen = [next_json(&mut ws).await, next_json(&mut ws).await];
    seen.sort_by_key(|f| f["type"].as_str().unwrap_or("").to_string());
    assert_eq!(
        (seen[0]["type"].as_str(), seen[0]["re"].as_str()),
        (Some("ack"), Some(id.as_str()))
    );
    assert_eq!(seen[1]["type"], "job.run");
    assert_eq!(seen[1]["payload"]["kind"], "init");
    // The same message again (a resend after a reconnect): acknowledged, not recorded twice,
    // and no second init job.
    ws.send(Message::text(applied)).await.unwrap();
    assert_eq!(next_json(&mut ws).await["re"], id.as_str());
    assert_eq!(app.events_of("RepoCredentialsApplied").await.len(), 1);
    assert_eq!(app.host(&host_id).await.1["status"], "online");
    app.stop().await;
}

#[tokio::test]
async fn credential_changes_are_pushed_live_and_read_back_redacted() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "db-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let path = format!("/api/hosts/{host_id}/repo-credentials");
    let (s, view) = app.get_json(&path).await;
    assert_eq!(s, 200);
    assert_eq!(
        view,
        json!({"repo_url": app.repo_url("db-1"), "repo_username": null, "has_password": true})
    );

    let csrf = app.csrf().await;
    let put = |body: Value| {
        let c = app.client.clone();
        let url = app.url(&path);
        let csrf = csrf.clone();
        async move {
            c.put(url)
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(json!({"repo_url": "rest:http://backup:8000/db-1", "repo_username": "db-1", "repo_password": "Second-Password-99"})).await;
    assert_eq!(r.status(), 200);
    wait_until(10, "the agent to apply version 2", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 2
    })
    .await;
    // Without a password the stored one is kept.
    let r = put(json!({"repo_url": "rest:http://backup:8000/db-1b"})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["has_password"], true);
    wait_until(10, "the agent to apply version 3", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 3
    })
    .await;
    let r = put(json!({"repo_url": "bad\nurl"})).await;
    assert_eq!(r.status(), 400);
    let r = put(json!({"repo_url": "/r", "surprise": 1})).await;
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .put(app.url("/api/hosts/nope/repo-credentials"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"repo_url": "/r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The password shows up in no event.
    let (_, all) = app.get_json("/api/events?limit=1000").await;
    let text = all.to_string();
    assert!(!text.contains("Second-Password-99") && !text.contains("Repo-Password-For-Tests"));
    app.stop().await;
}

#[tokio::test]
async fn the_outbox_survives_a_server_killed_between_record_and_ack_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let server = |drop_acks: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_restic-manager"));
        cmd.args(["serve", "--listen", &listen])
            .env("RM_DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if drop_acks {
            cmd.env("RM_FAULT_DROP_ACKS", "true");
        }
        cmd.spawn().unwrap()
    };
    let mut first = server(true);
    let http = client();
    let base = format!("http://{listen}");
    wait_until(30, "the server", || async {
        http.get(format!("{base}/readyz")).send().await.is_ok()
    })
    .await;
    let token = std::fs::read_to_string(dir.path().join("setup-token")).unwrap();
    let admin = client();
    let r = admin
        .post(format!("{base}/api/bootstrap"))
        .json(&json!({"token": token.trim(), "username": "admin", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let s: Value = admin
        .get(format!("{base}/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let minted: Value = admin
        .post(format!("{base}/api/enrollment-tokens"))
        .header("x-csrf-token", s["csrf_token"].as_str().unwrap())
        .json(&json!({"hostname": "outbox-1", "repo_url": dir.path().join("repo").display().to_string(), "repo_password": "Outbox-Password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut agent = Agent::new();
    let (code, out) = agent
        .enroll(&base, minted["token"].as_str().unwrap(), None)
        .await;
    assert_eq!(code, 0, "{out}");
    agent.start();
    let applied = || async {
        let v: Value = admin
            .get(format!("{base}/api/audit?type=RepoCredentialsApplied"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"].as_array().map(|a| a.len()).unwrap_or(0)
    };
    let count = |t: &'static str| {
        let admin = admin.clone();
        let base = base.clone();
        async move {
            let v: Value = admin
                .get(format!("{base}/api/audit?type={t}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["events"].as_array().map(|a| a.len()).unwrap_or(0)
        }
    };
    // Recorded by the server, never acknowledged: config.applied and the init job's
    // started/finished stay in the agent's outbox.
    wait_until(30, "the init job's result to be recorded", || async {
        applied().await == 1 && count("JobFinished").await == 1
    })
    .await;
    assert!(
        agent.outbox_len() >= 3,
        "outbox holds {}",
        agent.outbox_len()
    );

    // Kill the server hard, start it again without the fault.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = server(false);
    wait_until(30, "the outbox to drain after reconnecting", || async {
        agent.outbox_len() == 0
    })
    .await;
    assert_eq!(applied().await, 1, "delivered again, recorded once");
    assert_eq!(count("JobStarted").await, 1);
    assert_eq!(count("JobFinished").await, 1);
    assert!(agent.log().matches("connected host_id").count() >= 2);
    second.kill().unwrap();
    second.wait().unwrap();
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn the_repository_password_is_in_plaintext_nowhere_on_disk() {
    let secret = "Plaintext-Repo-Password-7F3A";
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let token = app.mint("vault-1", secret).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut agent = Agent::new();
    assert_eq!(agent.enroll(&app.base(), &token, None).await.0, 0);
    let host_id = {
        let cfg = std::fs::read_to_string(agent.config()).unwrap();
        cfg.lines()
            .find_map(|l| l.strip_prefix("host_id = "))
            .unwrap()
            .trim_matches('"')
            .to_string()
    };
    agent.start();
    wait_until(20, "credentials applied", || async {
        app.host(&host_id).await.1["applied_credentials_version"] == 1
    })
    .await;
    agent.kill();
    let data = app.data().to_path_buf();
    let _dir = app.stop().await;
    let mut scanned = 0;
    for f in files_under(&data)
        .into_iter()
        .chain(files_under(agent.dir.path()))
    {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the password",
            f.display()
        );
        scanned += 1;
    }
    assert!(scanned >= 5, "scanned {scanned} files");
    assert!(agent.state().join("secrets.enc").exists());
}

fn self_signed() -> (String, String, String) {
    use sha2::Digest;
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let pin = hex::encode(sha2::Sha256::digest(cert.cert.der()));
    (cert.cert.pem(), cert.signing_key.serialize_pem(), pin)
}

#[tokio::test]
async fn tls_with_the_right_pin_connects_and_a_wrong_pin_is_refused_clearly() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, pin) = self_signed();
    std::fs::write(certs.path().join("cert.pem"), cert).unwrap();
    std::fs::write(certs.path().join("key.pem"), key).unwrap();
    let app = TestApp::spawn_tls(certs.path()).await;
    let base = format!("https://{}", app.addr);
    let token = app.tls_mint("tls-1").await;

    let wrong = Agent::new();
    let (code, out) = wrong.enroll(&base, &token, Some(&"ab".repeat(32))).await;
    assert_eq!(code, 1);
    assert!(out.contains("does not match the pinned one"), "{out}");
    assert!(out.contains(&pin), "names what the server presented: {out}");

    let unpinned = Agent::new();
    let (code, out) = unpinned.enroll(&base, &token, None).await;
    assert_eq!(
        code, 1,
        "a self-signed certificate is not trusted without a pin: {out}"
    );

    let mut good = Agent::new();
    let (code, out) = good.enroll(&base, &token, Some(&pin.to_uppercase())).await;
    assert_eq!(code, 0, "{out}");
    let cfg = std::fs::read_to_string(good.config()).unwrap();
    assert!(cfg.contains(&format!("cert_pin = \"{pin}\"")), "{cfg}");
    good.start();
    wait_until(20, "the agent to connect over wss", || async {
        good.log().contains("connected host_id")
    })
    .await;

    // The server reports its own pin to enrolling agents.
    let answer = app.tls_get("/api/hosts").await;
    assert_eq!(answer["hosts"][0]["status"], "online");
    good.kill();
    app.stop().await;
}
