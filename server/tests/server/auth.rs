//! First-run setup, login, logout, sessions, CSRF, rate limits, roles.

use serde_json::json;

use crate::helpers::{client, TestApp, ADMIN, ADMIN_PASSWORD};

#[tokio::test]
async fn setup_token_is_written_private_and_bootstrap_logs_in() {
    let app = TestApp::spawn().await;
    let token_file = app.data().join("setup-token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let token = app.setup_token();
    let r = app
        .post_json(
            "/api/bootstrap",
            json!({"token": token, "username": ADMIN, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http without an https base URL: {cookie}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["user"]["username"], ADMIN);
    assert_eq!(body["user"]["role"], "admin");
    assert!(!token_file.exists(), "the token file goes once it is used");

    let (s, session) = app.get_json("/api/session").await;
    assert_eq!(s, 200);
    assert_eq!(session["user"]["username"], ADMIN);
    assert_eq!(session["csrf_token"].as_str().unwrap().len(), 64);

    // Reused token: setup is done.
    let again = client()
        .post(app.url("/api/bootstrap"))
        .json(&json!({"token": token, "username": "other", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let e: serde_json::Value = again.json().await.unwrap();
    assert_eq!(e["error"]["code"], "already_bootstrapped");
    app.stop().await;
}

#[tokio::test]
async fn wrong_setup_token_and_weak_passwords_are_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/api/bootstrap",
            json!({"token": "0".repeat(64), "username": ADMIN, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = app
        .post_json(
            "/api/bootstrap",
            json!({"token": app.setup_token(), "username": ADMIN, "password": "short"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_input");
    assert_eq!(e["error"]["field"], "password");
    // The token survives a refused attempt.
    app.bootstrap().await;
    app.stop().await;
}

#[tokio::test]
async fn secure_cookie_when_base_url_is_https() {
    let app = TestApp::spawn_with(|c| c.base_url = Some("https://backup.example.org".into())).await;
    let r = app
        .post_json(
            "/api/bootstrap",
            json!({"token": app.setup_token(), "username": ADMIN, "password": ADMIN_PASSWORD}),
        )
        .await;
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    app.stop().await;
}

#[tokio::test]
async fn login_logout_and_their_events() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let c = client();
    let bad = c
        .post(app.url("/api/login"))
        .json(&json!({"username": ADMIN, "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let unknown = c
        .post(app.url("/api/login"))
        .json(&json!({"username": "nobody", "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let ok = c
        .post(app.url("/api/login"))
        .json(&json!({"username": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let session: serde_json::Value = c
        .get(app.url("/api/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = session["csrf_token"].as_str().unwrap();

    // Logout without the CSRF token is refused; with it, it works and the session is gone.
    let no_csrf = c.post(app.url("/api/logout")).send().await.unwrap();
    assert_eq!(no_csrf.status(), 403);
    let wrong = c
        .post(app.url("/api/logout"))
        .header("x-csrf-token", "f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let out = c
        .post(app.url("/api/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(
        c.get(app.url("/api/session"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let (_, audit) = app.get_json("/api/audit?limit=100").await;
    let types: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "SetupTokenIssued",
            "UserCreated",
            "UserLoggedIn",
            "UserLoginFailed",
            "UserLoginFailed",
            "UserLoggedIn",
            "UserLoggedOut"
        ]
    );
    let fails: Vec<&serde_json::Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "UserLoginFailed")
        .collect();
    assert_eq!(fails[0]["data"]["reason"], "bad_password");
    assert_eq!(fails[1]["data"]["reason"], "unknown_user");
    assert_eq!(fails[1]["stream"], "auth");
    app.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_per_user_and_per_address() {
    let app = TestApp::spawn_with(|c| {
        c.login_per_user_per_minute = 3;
        c.login_per_ip_per_minute = 5;
    })
    .await;
    app.bootstrap().await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .post(app.url("/api/login"))
            .json(&json!({"username": ADMIN, "password": "not the password at all"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
            let e: serde_json::Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    // Another name from the same address: the address limit (5) stops it after one more.
    let a = c
        .post(app.url("/api/login"))
        .json(&json!({"username": "someone", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 401);
    let b = c
        .post(app.url("/api/login"))
        .json(&json!({"username": "someone2", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(b.status(), 429);
    app.stop().await;
}

#[tokio::test]
async fn roles_limit_what_users_can_do() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let r = app
        .post_csrf(
            "/api/users",
            json!({"username": "viewer1", "password": "viewer password 1", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let dup = app
        .post_csrf(
            "/api/users",
            json!({"username": "viewer1", "password": "viewer password 1", "role": "viewer"}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let bad_role = app
        .post_csrf(
            "/api/users",
            json!({"username": "x-user", "password": "viewer password 1", "role": "root"}),
        )
        .await;
    assert_eq!(bad_role.status(), 400);

    let viewer = app.login_as("viewer1", "viewer password 1").await;
    assert_eq!(
        viewer
            .get(app.url("/api/events"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        viewer
            .get(app.url("/api/users"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        viewer
            .get(app.url("/api/audit"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (s, _) = app.get_json("/api/events").await;
    assert_eq!(s, 200);
    // Anonymous callers get 401 everywhere that needs a user.
    let anon = client();
    for p in [
        "/api/session",
        "/api/audit",
        "/api/events",
        "/api/events/head",
        "/api/users",
    ] {
        assert_eq!(
            anon.get(app.url(p)).send().await.unwrap().status(),
            401,
            "{p}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_restart_and_health_endpoints_answer() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let c = app.client.clone();
    let dir = app.stop().await;
    let app = TestApp::spawn_in(dir, |_| {}).await;
    let r = c.get(app.url("/api/session")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !app.data().join("setup-token").exists(),
        "no new setup token once set up"
    );
    app.stop().await;
}
