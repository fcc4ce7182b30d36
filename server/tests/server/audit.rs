//! `GET /api/audit`, `/api/events` and `/api/events/head`.

use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN, ADMIN_PASSWORD};

#[tokio::test]
async fn audit_filters_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let boot = app.bootstrap().await;
    let admin_id = boot["user"]["id"].as_str().unwrap().to_string();
    for i in 0..5 {
        app.post_csrf(
            "/api/users",
            json!({"username": format!("op{i}"), "password": ADMIN_PASSWORD, "role": "operator"}),
        )
        .await;
    }
    // Page through everything, 3 at a time.
    let mut after = 0;
    let mut seqs = Vec::new();
    loop {
        let (s, page) = app
            .get_json(&format!("/api/audit?limit=3&after={after}"))
            .await;
        assert_eq!(s, 200);
        let evs = page["events"].as_array().unwrap();
        seqs.extend(evs.iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());

    let (_, by_type) = app.get_json("/api/audit?type=UserCreated").await;
    assert_eq!(by_type["events"].as_array().unwrap().len(), 6);
    let (_, by_actor) = app
        .get_json(&format!(
            "/api/audit?actor=user:{admin_id}&type=UserCreated"
        ))
        .await;
    assert_eq!(by_actor["events"].as_array().unwrap().len(), 6);
    let (_, system) = app.get_json("/api/audit?actor=system:setup").await;
    assert_eq!(system["events"][0]["type"], "SetupTokenIssued");

    let first_time = by_type["events"][0]["occurred_at"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, until) = app
        .get_json(&format!("/api/audit?until={first_time}"))
        .await;
    assert!(until["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["occurred_at"].as_str().unwrap() < first_time.as_str()));
    let (_, since) = app
        .get_json(&format!("/api/audit?since={first_time}&type=UserCreated"))
        .await;
    assert_eq!(since["events"].as_array().unwrap().len(), 6);
    let (_, future) = app.get_json("/api/audit?since=2999-01-01T00:00:00Z").await;
    assert!(future["events"].as_array().unwrap().is_empty());

    let (s, bad) = app.get_json("/api/audit?since=last-tuesday").await;
    assert_eq!(s, 400);
    assert_eq!(bad["error"]["field"], "since");
    let (s, _) = app.get_json("/api/audit?limit=-1").await;
    assert_eq!(s, 400);
    let (s, _) = app.get_json("/api/audit?limit=0").await;
    assert_eq!(s, 400);
    let (s, _) = app.get_json("/api/audit?after=abc").await;
    assert_eq!(s, 400);
    app.stop().await;
}

#[tokio::test]
async fn head_and_raw_stream_agree() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (s, head) = app.get_json("/api/events/head").await;
    assert_eq!(s, 200);
    let (_, all) = app.get_json("/api/events?limit=1000").await;
    let last: &Value = all["events"].as_array().unwrap().last().unwrap();
    assert_eq!(head["seq"], last["seq"]);
    assert_eq!(head["hash"].as_str().unwrap().len(), 64);
    let (_, none) = app
        .get_json(&format!("/api/events?after={}", head["seq"]))
        .await;
    assert!(none["events"].as_array().unwrap().is_empty());
    assert!(none["next"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn the_chain_state_is_published_and_a_filtered_range_exports_as_jsonl() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    for i in 0..3 {
        app.post_csrf(
            "/api/users",
            json!({"username": format!("reader{i}"), "password": ADMIN_PASSWORD, "role": "viewer"}),
        )
        .await;
    }
    let head = app.get_json("/api/events/head").await.1;
    crate::helpers::wait_until(20, "the chain verified through the head", || async {
        let (_, c) = app.get_json("/api/events/chain").await;
        c["ok"] == true && c["verified_through"]["seq"] == head["seq"]
    })
    .await;
    let (_, c) = app.get_json("/api/events/chain").await;
    assert_eq!(c["verified_through"]["hash"], head["hash"]);

    let r = app
        .client
        .get(app.url("/api/audit/export?type=UserCreated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let body = r.text().await.unwrap();
    let rows: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{body}");
    assert!(rows
        .iter()
        .all(|r| r["event_type"] == "UserCreated" || r["type"] == "UserCreated"));
    assert!(rows
        .iter()
        .all(|r| r["hash"].as_str().is_some_and(|h| h.len() == 64)));
    let (s, v) = app.get_json("/api/audit/export?since=yesterday").await;
    assert_eq!(s, 400, "{v}");

    // An edit in the middle: the restarted server says where the chain breaks.
    let addr = app.addr;
    let dir = app.stop().await;
    let c = rusqlite::Connection::open(dir.path().join("restic-manager.db")).unwrap();
    c.execute_batch("DROP TRIGGER events_no_update").unwrap();
    c.execute(
        "UPDATE events SET data = replace(data, 'reader1', 'mallory') WHERE seq = 5",
        [],
    )
    .unwrap();
    drop(c);
    let mut app = TestApp::spawn_at(dir, addr, |_| {}).await;
    app.client = app.login_as(ADMIN, ADMIN_PASSWORD).await;
    crate::helpers::wait_until(20, "the break to be found", || async {
        app.get_json("/api/events/chain").await.1["ok"] == false
    })
    .await;
    let (_, c) = app.get_json("/api/events/chain").await;
    assert_eq!(c["broken_at"], 5, "{c}");
    assert_eq!(c["verified_through"]["seq"], 4, "{c}");
}
