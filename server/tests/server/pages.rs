//! The server-rendered login and setup pages, driven as a browser without JavaScript would.

use crate::helpers::{client, TestApp, ADMIN, ADMIN_PASSWORD};

fn hidden_csrf(html: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse("input[name=csrf_token]").unwrap();
    doc.select(&sel)
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn setup_form_then_login_form() {
    let app = TestApp::spawn().await;
    let c = client();
    let r = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");

    let page = c
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("First-run setup"));
    assert!(
        page.contains("Password rule: at least 12 characters"),
        "the rule is on the form"
    );
    let csrf = hidden_csrf(&page);

    // A weak password: the form comes back with the message beside the field and the
    // username kept.
    let r = c
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", &app.setup_token()),
            ("username", "chief"),
            ("password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    let doc = scraper::Html::parse_document(&page);
    let err = doc
        .select(&scraper::Selector::parse("#f-password-error").unwrap())
        .next()
        .unwrap();
    assert!(err.text().collect::<String>().contains("too short"));
    assert!(page.contains("value=\"chief\""));

    // Without the form's CSRF token: refused, nothing created.
    let r = c
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", "forged"),
            ("token", &app.setup_token()),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let page = c
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);
    let r = c
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", &app.setup_token()),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let home = c.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let home = home.text().await.unwrap();
    assert!(home.contains("Dashboard"));
    let logout_csrf = hidden_csrf(&home);

    // Log out through the form (its CSRF token is the session's).
    let r = c
        .post(app.url("/logout"))
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(app.url("/logout"))
        .form(&[("csrf_token", logout_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // Now the plain login form.
    let page = c
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Log in"));
    assert!(!page.contains("Setup token"));
    let csrf = hidden_csrf(&page);
    let r = c
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", ADMIN),
            ("password", "wrong password here"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(page.contains("wrong username or password"));
    let csrf = hidden_csrf(&page);
    let r = c
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", ADMIN),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    let css = c.get(app.url("/static/style.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css
        .text()
        .await
        .unwrap()
        .contains("prefers-color-scheme: dark"));
    let missing = c.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));
    app.stop().await;
}

#[tokio::test]
async fn add_a_host_from_the_page_and_watch_its_agent_arrive() {
    use crate::helpers::{wait_until, Agent};
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let c = &app.client;
    let form = c
        .get(app.url("/hosts/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&form);
    let repo = app.repo_url("page-1");

    // A bad hostname: the form comes back with the message beside the field, input kept.
    let r = c
        .post(app.url("/hosts/new"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("hostname", "bad name"),
            ("repo_url", repo.as_str()),
            ("repo_password", "Page-Password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    let doc = scraper::Html::parse_document(&page);
    let err = doc
        .select(&scraper::Selector::parse("#f-hostname-error").unwrap())
        .next()
        .unwrap();
    assert!(err.text().collect::<String>().contains("hostname"));
    assert!(page.contains(&format!("value=\"{repo}\"")));
    assert!(
        !page.contains("Page-Password-1"),
        "the password is never echoed"
    );

    let r = c
        .post(app.url("/hosts/new"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("hostname", "page-1"),
            ("repo_url", repo.as_str()),
            ("repo_password", "Page-Password-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let page = r.text().await.unwrap();
    let doc = scraper::Html::parse_document(&page);
    let command = doc
        .select(&scraper::Selector::parse("#install-command").unwrap())
        .next()
        .unwrap()
        .text()
        .collect::<String>();
    assert!(command.starts_with("curl -fsSL '"), "{command}");
    let token = command
        .split("token=")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    let follow = doc
        .select(&scraper::Selector::parse("[data-follow-token]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("data-follow-token")
        .unwrap()
        .to_string();
    assert_eq!(
        doc.select(&scraper::Selector::parse("button[data-copy=install-command]").unwrap())
            .count(),
        1
    );
    let (_, s) = app
        .get_json(&format!("/api/enrollment-tokens/{follow}"))
        .await;
    assert_eq!(s["status"], "pending");

    let mut agent = Agent::new();
    assert_eq!(agent.enroll(&app.base(), &token, None).await.0, 0);
    agent.start();
    wait_until(20, "the page's token to show an online host", || async {
        app.get_json(&format!("/api/enrollment-tokens/{follow}"))
            .await
            .1["host_status"]
            == "online"
    })
    .await;
    let (_, s) = app
        .get_json(&format!("/api/enrollment-tokens/{follow}"))
        .await;
    assert_eq!(s["status"], "enrolled");
    let host_id = s["host_id"].as_str().unwrap();
    let host_page = c
        .get(app.url(&format!("/hosts/{host_id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(host_page.contains("page-1"));
    // Without the form's CSRF token nothing is created.
    let r = c
        .post(app.url("/hosts/new"))
        .form(&[
            ("csrf_token", "nope"),
            ("hostname", "page-2"),
            ("repo_url", repo.as_str()),
            ("repo_password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn run_now_lands_on_the_job_and_deleting_needs_the_typed_name() {
    use crate::helpers::Agent;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "forms-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let c = &app.client;
    let page = c
        .get(app.url(&format!("/hosts/{host_id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden_csrf(&page);

    let r = c
        .post(app.url(&format!("/hosts/{host_id}/run")))
        .form(&[("csrf_token", csrf.as_str()), ("paths", "  \n")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("id=\"f-paths-error\""));
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), b"a").unwrap();
    let paths = format!("{}\n", src.path().display());
    let r = c
        .post(app.url(&format!("/hosts/{host_id}/run")))
        .form(&[("csrf_token", csrf.as_str()), ("paths", paths.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/jobs/"), "{location}");
    let job_page = c.get(app.url(&location)).send().await.unwrap();
    assert_eq!(job_page.status(), 200);

    let r = c
        .post(app.url(&format!("/hosts/{host_id}/delete")))
        .form(&[("csrf_token", csrf.as_str()), ("confirm", "forms-2")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("type forms-1 exactly"));
    assert_eq!(app.host(&host_id).await.0, 200);
    let r = c
        .post(app.url(&format!("/hosts/{host_id}/delete")))
        .form(&[("csrf_token", csrf.as_str()), ("confirm", "forms-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(app.host(&host_id).await.0, 404);
    agent.kill();
    app.stop().await;
}

#[tokio::test]
async fn the_audit_page_filters_pages_and_expands_events() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let c = &app.client;
    let get = |path: &str| {
        let url = app.url(path);
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, all) = get("/audit").await;
    assert_eq!(s, 200);
    let doc = scraper::Html::parse_document(&all);
    let rows = scraper::Selector::parse("table.audit tbody tr").unwrap();
    assert_eq!(
        doc.select(&rows).count(),
        3,
        "setup token, user created, logged in"
    );
    assert!(
        all.contains("<details>") && all.contains("via_setup"),
        "rows expand to their JSON"
    );

    let (_, only) = get("/audit?type=UserCreated").await;
    let doc = scraper::Html::parse_document(&only);
    assert_eq!(doc.select(&rows).count(), 1);
    assert!(
        only.contains("value=\"UserCreated\""),
        "the filter is kept in the form"
    );

    let (s, bad) = get("/audit?since=last-tuesday").await;
    assert_eq!(s, 400);
    assert!(bad.contains("id=\"f-since-error\""));

    let (_, first) = get("/audit?limit=2").await;
    let doc = scraper::Html::parse_document(&first);
    assert_eq!(doc.select(&rows).count(), 2);
    let next = doc
        .select(&scraper::Selector::parse("a.button").unwrap())
        .find(|a| a.text().collect::<String>().contains("Next"))
        .unwrap()
        .value()
        .attr("href")
        .unwrap()
        .to_string();
    assert!(
        next.contains("after=2") && next.contains("limit=2"),
        "{next}"
    );
    let (_, second) = get(&next).await;
    let doc = scraper::Html::parse_document(&second);
    assert_eq!(doc.select(&rows).count(), 1);
    app.stop().await;
}
