//! Bad input gets a 4xx with the JSON error body, never a panic or a 5xx.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use server::clock::SystemClock;
use server::config::Config;
use tower::ServiceExt;

use crate::helpers::TestApp;

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn malformed_bodies_get_clear_json_errors() {
    let app = TestApp::spawn().await;
    let c = &app.client;
    let (s, e) = error_of(
        c.post(app.url("/api/login"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (s, e) = error_of(
        c.post(app.url("/api/login"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (s, e) = error_of(
        c.post(app.url("/api/login"))
            .json(&json!({"username": "a", "password": "b", "admin": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("admin"),
        "{e}"
    );
    let (s, e) = error_of(
        c.post(app.url("/api/login"))
            .json(&json!({"username": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let huge = "x".repeat(2 * 1024 * 1024);
    let (s, e) = error_of(
        c.post(app.url("/api/login"))
            .json(&json!({"username": huge, "password": "b"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (s, e) = error_of(c.get(app.url("/api/no/such/thing")).send().await.unwrap()).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) = error_of(c.delete(app.url("/api/login")).send().await.unwrap()).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    app.stop().await;
}

fn routes() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![
        Just(("POST", "/api/login")),
        Just(("POST", "/api/bootstrap")),
        Just(("POST", "/api/logout")),
        Just(("POST", "/api/users")),
        Just(("GET", "/api/audit")),
        Just(("GET", "/api/events")),
        Just(("POST", "/login")),
        Just(("POST", "/setup")),
    ]
}

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("text/plain")),
        Just(Some("application/json; charset=\u{7f}")),
    ]
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        (".{0,40}", ".{0,40}", ".{0,80}").prop_map(|(u, p, t)| {
            json!({"username": u, "password": p, "token": t})
                .to_string()
                .into_bytes()
        }),
        (".{0,40}", ".{0,40}")
            .prop_map(|(u, p)| format!("username={u}&password={p}&csrf_token=x").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Random methods, paths, query strings, content types and bodies against the request
    /// decoders: no 5xx, no panic, and API answers are the JSON error shape.
    #[test]
    fn request_decoders_never_fail_the_server(
        route in routes(),
        query in "[a-z=&%0-9:._-]{0,40}",
        ct in content_types(),
        body in bodies(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let mut config = Config::for_data_dir(dir.path());
            config.login_per_ip_per_minute = 1000;
            let state = server::build_state(config, Arc::new(SystemClock)).await.unwrap();
            let app = server::http::router(state.clone());
            let (method, path) = route;
            let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
            let mut req = Request::builder().method(method).uri(&uri);
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            let req = match req.body(Body::from(body)) {
                Ok(r) => r,
                Err(_) => return Ok(()),
            };
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            state.store.close().await;
            prop_assert!(!status.is_server_error(), "{method} {uri} -> {status}: {}", String::from_utf8_lossy(&bytes));
            if path.starts_with("/api") && status != StatusCode::OK && status != StatusCode::CREATED {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
                prop_assert!(v["error"]["code"].is_string(), "{v}");
                prop_assert!(v["error"]["message"].is_string(), "{v}");
            }
            Ok(())
        })?;
    }
}

/// One logged-in server state shared by the authenticated cases (argon2 per case would be
/// slow): its runtime, data dir, session cookie and CSRF token.
struct Shared {
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    state: server::http::AppState,
    cookie: String,
    csrf: String,
}

fn shared() -> &'static Shared {
    static S: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_data_dir(dir.path());
        let (state, token) = rt.block_on(async {
            let state = server::build_state(config, Arc::new(SystemClock))
                .await
                .unwrap();
            let setup = std::fs::read_to_string(dir.path().join("setup-token")).unwrap();
            let opened = server::accounts::bootstrap(
                &state,
                setup.trim(),
                "admin",
                "correct horse battery staple",
                None,
            )
            .await
            .unwrap();
            (state, opened.token)
        });
        let csrf = state.csrf.token_for(&token);
        Shared {
            _rt: rt,
            _dir: dir,
            state,
            cookie: format!("rm_session={token}"),
            csrf,
        }
    })
}

fn authed_routes() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![
        Just(("POST", "/api/enrollment-tokens")),
        Just(("POST", "/api/agents/enroll")),
        Just(("PUT", "/api/hosts/h1/repo-credentials")),
        Just(("GET", "/api/hosts/h1/repo-credentials")),
        Just(("POST", "/api/hosts/h1/jobs")),
        Just(("GET", "/api/hosts/h1/jobs")),
        Just(("POST", "/api/jobs/j1/cancel")),
        Just(("GET", "/api/jobs/j1/logs")),
        Just(("DELETE", "/api/hosts/h1")),
        Just(("POST", "/api/users")),
        Just(("GET", "/api/audit")),
        Just(("GET", "/install/agent.sh")),
        Just(("GET", "/agent/binary/linux/x86_64")),
    ]
}

fn authed_bodies() -> impl Strategy<Value = Vec<u8>> {
    let s = || ".{0,30}";
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (s(), s(), s()).prop_map(|(h, u, p)| {
            json!({"hostname": h, "repo_url": u, "repo_password": p})
                .to_string()
                .into_bytes()
        }),
        (s(), s(), s(), any::<i64>()).prop_map(|(k, p, t, n)| {
            json!({"kind": k, "paths": [p], "tags": [t], "limit_upload_kbps": n})
                .to_string()
                .into_bytes()
        }),
        (s(), s()).prop_map(|(u, n)| json!({"repo_url": u, "repo_username": n})
            .to_string()
            .into_bytes()),
        (s(), s(), s()).prop_map(|(t, h, o)| json!({"token": t, "hostname": h, "os": o})
            .to_string()
            .into_bytes()),
        Just(b"{\"kind\":\"backup\",\"paths\":[]}".to_vec()),
        Just(b"null".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// The same, logged in with a valid CSRF token, against the endpoints behind a session.
    #[test]
    fn authenticated_decoders_never_fail_the_server(
        route in authed_routes(),
        query in "[a-z=&%0-9:._-]{0,40}",
        json_ct in any::<bool>(),
        body in authed_bodies(),
    ) {
        let shared = shared();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = server::http::router(shared.state.clone());
            let (method, path) = route;
            let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
            let mut req = Request::builder()
                .method(method)
                .uri(&uri)
                .header("cookie", &shared.cookie)
                .header("x-csrf-token", &shared.csrf);
            if json_ct {
                req = req.header("content-type", "application/json");
            }
            let Ok(req) = req.body(Body::from(body)) else { return Ok(()) };
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            prop_assert!(!status.is_server_error(), "{method} {uri} -> {status}: {}", String::from_utf8_lossy(&bytes));
            if path.starts_with("/api") && !status.is_success() {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
                prop_assert!(v["error"]["code"].is_string(), "{v}");
            }
            Ok(())
        })?;
    }
}
