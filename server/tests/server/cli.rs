//! The `restic-manager` binary: `events verify|export|import|rebuild` and a graceful stop.

use std::process::{Command, Stdio};

use rusqlite::Connection;

use crate::helpers::{TestApp, ADMIN_PASSWORD};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_restic-manager"))
}

fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .env("RM_DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn recorded_history() -> tempfile::TempDir {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    for i in 0..3 {
        app.post_csrf(
            "/api/users",
            serde_json::json!({"username": format!("op{i}"), "password": ADMIN_PASSWORD, "role": "operator"}),
        )
        .await;
    }
    app.stop().await
}

#[tokio::test]
async fn verify_names_the_first_bad_seq_and_checks_the_published_head() {
    let dir = recorded_history().await;
    let (code, out, _) = run(dir.path(), &["events", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("6 events"), "{out}");
    let head = out.trim().rsplit(' ').next().unwrap().to_string();
    let (code, _, _) = run(dir.path(), &["events", "verify", "--expect-head", &head]);
    assert_eq!(code, 0);

    // Edit a row in the middle (dropping the guard trigger first, as an attacker would).
    let c = Connection::open(dir.path().join("restic-manager.db")).unwrap();
    c.execute_batch("DROP TRIGGER events_no_update").unwrap();
    c.execute(
        "UPDATE events SET data = replace(data, 'op1', 'evil') WHERE seq = 5",
        [],
    )
    .unwrap();
    let (code, _, err) = run(dir.path(), &["events", "verify"]);
    assert_eq!(code, 1);
    assert!(err.contains("first bad seq: 5"), "{err}");
}

#[tokio::test]
async fn expect_head_catches_a_cut_or_rewritten_tail() {
    let dir = recorded_history().await;
    let (_, out, _) = run(dir.path(), &["events", "verify"]);
    let head = out.trim().rsplit(' ').next().unwrap().to_string();
    // Cut off the last event: the rest of the chain is intact, only the head reveals it.
    let c = Connection::open(dir.path().join("restic-manager.db")).unwrap();
    c.execute_batch("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 6;")
        .unwrap();
    let (code, _, _) = run(dir.path(), &["events", "verify"]);
    assert_eq!(code, 0);
    let (code, _, err) = run(dir.path(), &["events", "verify", "--expect-head", &head]);
    assert_eq!(code, 1);
    assert!(err.contains("first bad seq: 6"), "{err}");
    assert!(err.contains("log ends at seq 5"), "{err}");
    let (code, _, err) = run(
        dir.path(),
        &["events", "verify", "--expect-head", "nonsense"],
    );
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn export_import_rebuild_through_the_binary() {
    let dir = recorded_history().await;
    let (code, all, _) = run(dir.path(), &["events", "export"]);
    assert_eq!(code, 0);
    assert_eq!(all.lines().count(), 6);
    for line in all.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in [
            "seq",
            "event_id",
            "stream",
            "stream_version",
            "type",
            "schema_version",
            "data",
            "actor",
            "occurred_at",
            "prev_hash",
            "hash",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {line}");
        }
    }
    let (_, tail, _) = run(dir.path(), &["events", "export", "--after", "4"]);
    assert_eq!(tail.lines().count(), 2);
    let first_stream: serde_json::Value =
        serde_json::from_str(all.lines().nth(1).unwrap()).unwrap();
    let stream = first_stream["stream"].as_str().unwrap();
    let (_, one, _) = run(dir.path(), &["events", "export", "--stream", stream]);
    assert_eq!(
        one.lines().count(),
        2,
        "UserCreated + UserLoggedIn of the admin"
    );

    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &all).unwrap();
    let target = tempfile::tempdir().unwrap();
    let (code, out, err) = run(target.path(), &["events", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 6 events"));
    let (code, again, _) = run(target.path(), &["events", "export"]);
    assert_eq!(code, 0);
    assert_eq!(again, all);
    let (code, _, err) = run(target.path(), &["events", "import", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");

    let (code, out, _) = run(target.path(), &["events", "rebuild"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(
            "rebuilt users, hosts, jobs, snapshots, config, alerts, history from 6 events"
        ),
        "{out}"
    );
    let a = projections::dump::dump_all(
        &Connection::open(dir.path().join("restic-manager.db")).unwrap(),
    )
    .unwrap();
    let b = projections::dump::dump_all(
        &Connection::open(target.path().join("restic-manager.db")).unwrap(),
    )
    .unwrap();
    assert_eq!(a, b);

    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run(empty.path(), &["events", "verify"]);
    assert_eq!(code, 2);
    assert!(err.contains("no database"), "{err}");
}

#[test]
fn sigterm_stops_the_server_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let child = bin()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RM_DATA_DIR", dir.path())
        .env("RM_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once the setup token has been written.
    let token = dir.path().join("setup-token");
    let started = std::time::Instant::now();
    while !token.exists() {
        assert!(started.elapsed().as_secs() < 30, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    let first = log.lines().next().unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "RM_LOG_FORMAT=json: {first}"
    );
    assert!(log.contains("every queued append is committed"), "{log}");
}

#[tokio::test]
async fn a_part_of_the_log_exports_as_a_fixture_that_imports_on_its_own() {
    let dir = recorded_history().await;
    let (_, all, _) = run(dir.path(), &["events", "export"]);
    let rows: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // From the third event's time on: a cut that does not start at seq 1.
    let since = rows[2]["occurred_at"].as_str().unwrap();
    let kept: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["occurred_at"].as_str().unwrap() >= since)
        .collect();
    assert!(kept.len() < rows.len());
    let (code, part, err) = run(dir.path(), &["events", "export", "--since", since]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(part.lines().count(), kept.len());
    let file = dir.path().join("part.jsonl");
    std::fs::write(&file, &part).unwrap();
    let target = tempfile::tempdir().unwrap();
    let (code, _, err) = run(target.path(), &["events", "import", file.to_str().unwrap()]);
    assert_ne!(code, 0, "a cut of the chain is not a history of its own");
    assert!(!err.is_empty());

    let (code, fixture, err) = run(
        dir.path(),
        &["events", "export", "--since", since, "--fixture"],
    );
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(fixture.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["data"], kept[0]["data"]);
    std::fs::write(&file, &fixture).unwrap();
    let target = tempfile::tempdir().unwrap();
    let (code, out, err) = run(target.path(), &["events", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("imported {} events", kept.len())),
        "{out}"
    );
    let (code, _, _) = run(target.path(), &["events", "verify"]);
    assert_eq!(code, 0);
    let (code, _, err) = run(dir.path(), &["events", "export", "--since", "last tuesday"]);
    assert_eq!(code, 2);
    assert!(err.contains("RFC 3339"), "{err}");
}
