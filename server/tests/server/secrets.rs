//! No secret used in a run appears in plaintext in the events table or any file of the
//! data dir.

use serde_json::json;

use crate::helpers::{client, TestApp, ADMIN};

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_the_disk_in_plaintext() {
    let admin_password = "Zebra-Quasar-7731-plaintext";
    let user_password = "Walrus-Nebula-4410-plaintext";
    let app = TestApp::spawn().await;
    let setup_token = app.setup_token();
    let r = app
        .post_json(
            "/api/bootstrap",
            json!({"token": setup_token, "username": ADMIN, "password": admin_password}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let session_token = r
        .cookies()
        .find(|c| c.name() == "rm_session")
        .unwrap()
        .value()
        .to_string();
    let csrf = app.csrf().await;
    app.post_csrf(
        "/api/users",
        json!({"username": "second", "password": user_password, "role": "operator"}),
    )
    .await;
    let c = client();
    c.post(app.url("/api/login"))
        .json(&json!({"username": "second", "password": user_password}))
        .send()
        .await
        .unwrap();
    c.post(app.url("/api/login"))
        .json(&json!({"username": "second", "password": admin_password}))
        .send()
        .await
        .unwrap();
    let db = app.db();
    let dir = app.stop().await;

    let secrets = [
        admin_password,
        user_password,
        setup_token.as_str(),
        session_token.as_str(),
        csrf.as_str(),
    ];
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("SELECT data FROM events").unwrap();
    let datas: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(datas.len() >= 6);
    for d in &datas {
        for s in &secrets {
            assert!(!d.contains(s), "a secret is in an event: {d}");
        }
        assert!(
            !d.contains("$argon2"),
            "a password hash is in an event: {d}"
        );
    }
    let files = files_under(dir.path());
    assert!(files.iter().any(|f| f.ends_with("restic-manager.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for s in &secrets {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "{} holds a secret in plaintext",
                f.display()
            );
        }
        assert!(
            !contains(&bytes, b"$argon2id$"),
            "{} holds a password hash in plaintext",
            f.display()
        );
    }
}
