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

/// Text of the first element matching a selector.
fn text_of(html: &str, css: &str) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(css).unwrap();
    doc.select(&sel).next().map(|e| e.text().collect())
}

/// An attribute of the first element matching a selector.
fn attr_of(html: &str, css: &str, attr: &str) -> Option<String> {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(css).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr(attr).map(str::to_string))
}

/// POSTs a form (with the given CSRF token, if any); answers (status, Location, body).
async fn post_form(
    c: &reqwest::Client,
    url: String,
    csrf: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let mut body: Vec<(&str, &str)> = fields.to_vec();
    if let Some(t) = csrf {
        body.push(("csrf_token", t));
    }
    let r = c.post(url).form(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

#[tokio::test]
async fn host_sub_pages_render_and_their_forms_keep_typed_input() {
    use crate::helpers::Agent;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "tabs-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let c = &app.client;
    let get = |path: String| {
        let url = app.url(&path);
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let h = format!("/hosts/{host_id}");
    let (_, v) = app.get_json(&format!("/api{h}/source-groups")).await;
    let default_gid = v["source_groups"][0]["id"].as_str().unwrap().to_string();

    // Every tab renders for an admin, shares the header and marks itself current.
    for (path, current) in [
        (h.clone(), "Overview"),
        (format!("{h}/sources"), "Sources"),
        (format!("{h}/sources/new"), "Sources"),
        (format!("{h}/sources/{default_gid}"), "Sources"),
        (format!("{h}/schedules"), "Schedules"),
        (format!("{h}/schedules/new"), "Schedules"),
        (format!("{h}/repo"), "Repository"),
        (format!("{h}/jobs"), "Jobs"),
    ] {
        let (s, page) = get(path.clone()).await;
        assert_eq!(s, 200, "{path}: {page}");
        assert_eq!(
            text_of(&page, "nav.tabs a[aria-current=page]").as_deref(),
            Some(current),
            "{path}"
        );
        let version = text_of(&page, ".version").unwrap_or_default();
        assert!(version.contains("schedule v"), "{path}: {version}");
    }
    let (_, missing) = get(format!("{h}/sources/no-such-group")).await;
    assert!(missing.contains("no such source group"));
    assert_eq!(get(format!("{h}/sources/no-such-group")).await.0, 404);
    assert_eq!(get("/hosts/nope/schedules".into()).await.0, 404);

    // The Sources list: a row per group linking to its editor, Run-now and Delete beside.
    let (_, sources) = get(format!("{h}/sources")).await;
    assert_eq!(
        attr_of(&sources, "tr.row-link a.row-anchor", "href").unwrap(),
        format!("{h}/sources/{default_gid}")
    );
    assert!(sources.contains("daily 7 · weekly 4 · monthly 6"));
    assert!(sources.contains(&format!("action=\"{h}/sources/{default_gid}/run\"")));
    assert!(
        sources.contains("hooks run as the agent's service user")
            || sources.contains("Hooks run as the agent's service user"),
        "admins see the host-wide hooks with the warning"
    );
    let csrf = hidden_csrf(&sources);

    // Without the CSRF token every form is refused and nothing changes.
    for path in [
        format!("{h}/sources/new"),
        format!("{h}/sources/{default_gid}"),
        format!("{h}/sources/{default_gid}/run"),
        format!("{h}/sources/{default_gid}/delete"),
        format!("{h}/sources/{default_gid}/hooks"),
        format!("{h}/hooks"),
        format!("{h}/schedules/new"),
        format!("{h}/repo/connection"),
        format!("{h}/repo/bandwidth"),
        format!("{h}/repo/maintenance"),
        format!("{h}/repo/run"),
        format!("{h}/repo/init"),
        format!("{h}/repo/admin-credentials"),
    ] {
        let (s, _, _) = post_form(
            c,
            app.url(&path),
            None,
            &[("name", "nocsrf"), ("includes", "/x"), ("op", "check")],
        )
        .await;
        assert_eq!(s, 403, "{path}");
        let (s, _, _) = post_form(c, app.url(&path), Some("forged"), &[("name", "nocsrf")]).await;
        assert_eq!(s, 403, "{path}");
    }
    let (_, v) = app.get_json(&format!("/api{h}/source-groups")).await;
    assert_eq!(v["source_groups"].as_array().unwrap().len(), 1);

    // A new group: a bad name comes back beside the field, everything typed kept.
    let new = app.url(&format!("{h}/sources/new"));
    let (s, _, page) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[
            ("name", "bad name!"),
            ("includes", "/srv/data\n/var/www"),
            ("excludes", "*.tmp"),
            ("keep_daily", "9"),
            ("keep_within", "30d"),
            ("retry_max", "2"),
            ("retry_backoff_seconds", "60"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-name-error")
        .unwrap()
        .contains("snapshot tag"));
    assert_eq!(
        attr_of(&page, "#f-name", "value").as_deref(),
        Some("bad name!")
    );
    assert_eq!(
        text_of(&page, "#f-includes").as_deref(),
        Some("/srv/data\n/var/www")
    );
    assert_eq!(
        attr_of(&page, "#f-keep_daily", "value").as_deref(),
        Some("9")
    );
    assert_eq!(
        attr_of(&page, "#f-keep_within", "value").as_deref(),
        Some("30d")
    );
    // Not a number; a number the domain refuses; a bad duration.
    let (s, _, page) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[
            ("name", "data"),
            ("includes", "/srv"),
            ("keep_weekly", "lots"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-keep_weekly-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-keep_weekly", "value").as_deref(),
        Some("lots")
    );
    let (s, _, page) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[("name", "data"), ("includes", "/srv"), ("keep_daily", "0")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-keep_daily-error")
        .unwrap()
        .contains("between 1 and 100000"));
    let (s, _, page) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[
            ("name", "data"),
            ("includes", "/srv"),
            ("keep_within", "forever"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-keep_within-error").is_some());
    let (s, _, page) = post_form(c, new.clone(), Some(&csrf), &[("name", "data")]).await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-includes-error").is_some());
    let (s, _, page) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[("name", "default"), ("includes", "/srv")],
    )
    .await;
    assert_eq!(s, 400, "names are unique per host");
    assert!(text_of(&page, "#f-name-error").unwrap().contains("already"));
    let (s, loc, _) = post_form(
        c,
        new.clone(),
        Some(&csrf),
        &[
            ("name", "data"),
            ("includes", "/srv/data\n\n/var/www\n"),
            ("keep_daily", "9"),
            ("keep_within", "30d"),
        ],
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(loc, format!("{h}/sources?done=group-created"));
    let (_, v) = app.get_json(&format!("/api{h}/source-groups")).await;
    let data = v["source_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "data")
        .unwrap()
        .clone();
    assert_eq!(
        data["includes"],
        serde_json::json!(["/srv/data", "/var/www"])
    );
    assert_eq!(data["retention_policy"]["keep_daily"], 9);
    let data_gid = data["id"].as_str().unwrap().to_string();
    let (_, page) = get(format!("{h}/sources?done=group-created")).await;
    assert!(text_of(&page, ".notice").unwrap().contains("created"));

    // Editing keeps the id; errors come back on the edit page.
    let edit = app.url(&format!("{h}/sources/{data_gid}"));
    let (s, _, page) = post_form(
        c,
        edit.clone(),
        Some(&csrf),
        &[("name", "data"), ("includes", "/srv"), ("retry_max", "500")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-retry_max-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-retry_max", "value").as_deref(),
        Some("500")
    );
    let (s, loc, _) = post_form(
        c,
        edit.clone(),
        Some(&csrf),
        &[("name", "data"), ("includes", "/srv"), ("retry_max", "5")],
    )
    .await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("{h}/sources?done=group-saved").as_str())
    );

    // Group hooks (admins): saved, shown again with the warning.
    let (s, loc, _) = post_form(
        c,
        app.url(&format!("{h}/sources/{data_gid}/hooks")),
        Some(&csrf),
        &[("pre_hook", "echo before"), ("post_hook", "")],
    )
    .await;
    assert_eq!(s, 303);
    assert!(loc.contains("done=hooks"), "{loc}");
    let (_, page) = get(format!("{h}/sources/{data_gid}")).await;
    assert_eq!(
        text_of(&page, "#f-pre_hook").as_deref(),
        Some("echo before")
    );
    assert!(page.contains("/bin/sh -c"));
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/hooks")),
        Some(&csrf),
        &[("pre_hook", "a\0b"), ("post_hook", "")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-pre_hook-error").is_some());

    // Schedules: a bad expression and no group, each beside its field, typed input kept.
    let snew = app.url(&format!("{h}/schedules/new"));
    let (s, _, page) = post_form(
        c,
        snew.clone(),
        Some(&csrf),
        &[
            ("cron", "61 * * * *"),
            ("source_group_ids", &data_gid),
            ("enabled", "on"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-cron-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-cron", "value").as_deref(),
        Some("61 * * * *")
    );
    assert!(attr_of(&page, &format!("#f-group-{data_gid}"), "checked").is_some());
    assert!(attr_of(&page, &format!("#f-group-{default_gid}"), "checked").is_none());
    let (s, _, page) = post_form(c, snew.clone(), Some(&csrf), &[("cron", "0 3 * * *")]).await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-groups-error")
        .unwrap()
        .contains("at least one"));
    assert!(
        page.contains("every day at 03:00 UTC"),
        "the chips name their times"
    );
    let (s, _, page) = post_form(
        c,
        snew.clone(),
        Some(&csrf),
        &[("cron", "0 3 * * *"), ("source_group_ids", "not-a-group")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-groups-error").is_some());
    let (s, loc, _) = post_form(
        c,
        snew.clone(),
        Some(&csrf),
        &[
            ("cron", "0 3 * * *"),
            ("source_group_ids", &data_gid),
            ("enabled", "on"),
        ],
    )
    .await;
    assert_eq!(
        (s, loc.as_str()),
        (303, format!("{h}/schedules?done=schedule-created").as_str())
    );
    let (_, v) = app.get_json(&format!("/api{h}/schedules")).await;
    let sid = v["schedules"][0]["id"].as_str().unwrap().to_string();
    let (_, list) = get(format!("{h}/schedules")).await;
    assert_eq!(
        attr_of(&list, "tr.row-link a.row-anchor", "href").unwrap(),
        format!("{h}/schedules/{sid}")
    );
    assert!(list.contains("every day at 03:00 UTC"));
    assert!(text_of(&list, "table.schedules").unwrap().contains("data"));
    assert!(
        attr_of(&list, "table.schedules time", "datetime").is_some(),
        "the next run"
    );
    let (_, edit_page) = get(format!("{h}/schedules/{sid}")).await;
    assert_eq!(
        attr_of(&edit_page, "#f-cron", "value").as_deref(),
        Some("0 3 * * *")
    );
    // Pause through the row, and the dashboard and overview show the schedule.
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/schedules/{sid}/toggle")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 303);
    let (_, list) = get(format!("{h}/schedules")).await;
    assert!(text_of(&list, "table.schedules .badge")
        .unwrap()
        .contains("paused"));
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/schedules/{sid}/toggle")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 303);
    let (_, dash) = get("/".into()).await;
    assert!(
        text_of(&dash, "table.hosts").unwrap().contains("next in"),
        "the dashboard shows the next run"
    );
    let (_, overview) = get(h.clone()).await;
    assert!(text_of(&overview, "#next-run").unwrap().contains("in "));

    // Deleting a group a schedule uses is refused, naming the schedule.
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/sources/{data_gid}/delete")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 409);
    let refusal = text_of(&page, "#delete-refusal").unwrap();
    assert!(refusal.contains("used by 1 schedule"), "{refusal}");
    assert!(page.contains(&format!("href=\"{h}/schedules/{sid}\"")));
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/schedules/{sid}/delete")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/sources/{data_gid}/delete")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 303);
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/sources/{default_gid}/delete")),
        Some(&csrf),
        &[],
    )
    .await;
    assert_eq!(s, 409);
    assert!(text_of(&page, "#delete-refusal")
        .unwrap()
        .contains("last group"));

    // The repository page's forms, each independent.
    let (_, repo) = get(format!("{h}/repo")).await;
    assert_eq!(
        attr_of(&repo, "#f-repo_url", "value"),
        Some(app.repo_url("tabs-1"))
    );
    assert!(!repo.contains("Repo-Password-For-Tests"));
    assert!(repo.contains("off, hourly, daily, weekly, monthly"));
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/bandwidth")),
        Some(&csrf),
        &[("up_kbps", "fast"), ("down_kbps", "")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-up_kbps-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-up_kbps", "value").as_deref(),
        Some("fast")
    );
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/bandwidth")),
        Some(&csrf),
        &[("up_kbps", "0"), ("down_kbps", "")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-up_kbps-error")
        .unwrap()
        .contains("between 1"));
    let (s, loc, _) = post_form(
        c,
        app.url(&format!("{h}/repo/bandwidth")),
        Some(&csrf),
        &[("up_kbps", "512"), ("down_kbps", "")],
    )
    .await;
    assert_eq!(s, 303);
    assert!(loc.contains("saved=bandwidth"));
    let (_, bw) = app.get_json(&format!("/api{h}/bandwidth")).await;
    assert_eq!(bw["up_kbps"], 512);
    assert!(bw["down_kbps"].is_null());
    let (_, page) = get(format!("{h}/repo?saved=bandwidth")).await;
    assert_eq!(
        attr_of(&page, "#f-up_kbps", "value").as_deref(),
        Some("512")
    );
    assert!(page.contains("Saved."));

    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/maintenance")),
        Some(&csrf),
        &[
            ("forget_cadence", "fortnightly"),
            ("prune_cadence", "weekly"),
            ("check_cadence", "3d"),
            ("check_subset_pct", "10"),
            ("enabled", "on"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-forget_cadence-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-forget_cadence", "value").as_deref(),
        Some("fortnightly")
    );
    assert_eq!(
        attr_of(&page, "#f-check_cadence", "value").as_deref(),
        Some("3d")
    );
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/maintenance")),
        Some(&csrf),
        &[
            ("forget_cadence", "daily"),
            ("prune_cadence", "weekly"),
            ("check_cadence", "3d"),
            ("check_subset_pct", "300"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-check_subset_pct-error").is_some());
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/repo/maintenance")),
        Some(&csrf),
        &[
            ("forget_cadence", "daily"),
            ("prune_cadence", "off"),
            ("check_cadence", "3d"),
            ("check_subset_pct", "10"),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let (_, m) = app.get_json(&format!("/api{h}/repo-maintenance")).await;
    assert_eq!(m["check_cadence"], "3d");
    assert_eq!(
        m["enabled"], false,
        "the unchecked box turns maintenance off"
    );

    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/connection")),
        Some(&csrf),
        &[
            ("repo_url", ""),
            ("repo_username", "someone"),
            ("repo_password", ""),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-repo_url-error").is_some());
    assert_eq!(
        attr_of(&page, "#f-repo_username", "value").as_deref(),
        Some("someone")
    );
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/admin-credentials")),
        Some(&csrf),
        &[("repo_url", &app.repo_url("tabs-1")), ("repo_password", "")],
    )
    .await;
    assert_eq!(s, 400, "a new full-access credential needs a password");
    assert!(text_of(&page, "#f-admin-repo_password-error").is_some());
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/init")),
        Some(&csrf),
        &[("confirm", "tabs-2")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-init-confirm-error")
        .unwrap()
        .contains("tabs-1"));
    let (s, _, page) = post_form(
        c,
        app.url(&format!("{h}/repo/run")),
        Some(&csrf),
        &[("op", "explode")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(page.contains("Pick forget, prune, check or unlock"));
    let (s, loc, _) = post_form(
        c,
        app.url(&format!("{h}/repo/run")),
        Some(&csrf),
        &[("op", "check")],
    )
    .await;
    assert_eq!(s, 303);
    assert!(loc.starts_with("/jobs/"), "{loc}");

    // Run-now of a group (pointed at a small directory first): a bad limit beside the row,
    // then the job's page.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), b"a").unwrap();
    let (s, _, _) = post_form(
        c,
        app.url(&format!("{h}/sources/{default_gid}")),
        Some(&csrf),
        &[
            ("name", "default"),
            ("includes", &src.path().display().to_string()),
            ("keep_daily", "7"),
        ],
    )
    .await;
    assert_eq!(s, 303);
    let run = app.url(&format!("{h}/sources/{default_gid}/run"));
    let (s, _, page) = post_form(
        c,
        run.clone(),
        Some(&csrf),
        &[("limit_upload_kbps", "lots"), ("limit_download_kbps", "")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "tr.row-error")
        .unwrap()
        .contains("whole number"));
    assert_eq!(
        attr_of(&page, &format!("#f-up-{default_gid}"), "value").as_deref(),
        Some("lots")
    );
    let (s, loc, _) = post_form(
        c,
        run.clone(),
        Some(&csrf),
        &[("limit_upload_kbps", "1024"), ("limit_download_kbps", "")],
    )
    .await;
    assert_eq!(s, 303);
    assert!(loc.starts_with("/jobs/"), "{loc}");
    assert_eq!(get(loc).await.0, 200);

    // An operator: no hooks, no danger zone, no full-access credential form.
    let r = app
        .post_csrf(
            "/api/users",
            serde_json::json!({"username": "op1", "password": "operator password 1", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let op = app.login_as("op1", "operator password 1").await;
    let op_get = |path: String| {
        let op = op.clone();
        let url = app.url(&path);
        async move {
            let r = op.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, page) = op_get(format!("{h}/sources/{default_gid}")).await;
    assert_eq!(s, 200);
    assert!(!page.contains("id=\"f-pre_hook\""));
    let (s, page) = op_get(format!("{h}/sources")).await;
    assert_eq!(s, 200);
    assert!(!page.contains("id=\"f-pre_hook\""));
    let (s, page) = op_get(format!("{h}/repo")).await;
    assert_eq!(s, 200);
    assert!(!page.contains("Re-run init"));
    assert!(!page.contains("f-admin-repo_url"));
    let op_csrf = hidden_csrf(&page);
    let (s, _, page) = post_form(
        &op,
        app.url(&format!("{h}/hooks")),
        Some(&op_csrf),
        &[("pre_hook", "id")],
    )
    .await;
    assert_eq!(s, 403);
    assert!(page.contains("Not allowed"));
    let (s, _, _) = post_form(
        &op,
        app.url(&format!("{h}/repo/init")),
        Some(&op_csrf),
        &[("confirm", "tabs-1")],
    )
    .await;
    assert_eq!(s, 403);
    agent.kill();
    app.stop().await;
}

#[tokio::test]
async fn settings_page_adds_channels_sends_tests_and_is_admin_only() {
    use axum::routing::post;
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
    let (s, alerts) = get("/alerts").await;
    assert_eq!(s, 200, "{alerts}");
    assert!(alerts.contains("No alerts here."));
    assert_eq!(
        text_of(&alerts, "nav[aria-label=Main] a[href='/alerts']").as_deref(),
        Some("Alerts (0)")
    );
    assert_eq!(
        text_of(&alerts, "nav.tabs a[aria-current=page]").as_deref(),
        Some("Open and acknowledged")
    );
    let (s, settings) = get("/settings").await;
    assert_eq!(s, 200, "{settings}");
    assert!(settings.contains("No channels yet"));
    let csrf = hidden_csrf(&settings);

    // Forms without the CSRF token are refused.
    let url = app.url("/settings/channels");
    let fields = [("kind", "webhook"), ("name", "hooky"), ("webhook_url", "x")];
    assert_eq!(post_form(c, url.clone(), None, &fields).await.0, 403);
    assert_eq!(
        post_form(c, url.clone(), Some("forged"), &fields).await.0,
        403
    );
    assert_eq!(
        post_form(c, app.url("/alerts/nope/ack"), None, &[]).await.0,
        403
    );

    // An invalid channel comes back with the message, the name kept, the secret not.
    let (s, _, page) = post_form(
        c,
        url.clone(),
        Some(&csrf),
        &[
            ("kind", "webhook"),
            ("name", "typed-name"),
            ("webhook_url", "ftp://nope"),
            ("secret", "never-echoed-secret"),
        ],
    )
    .await;
    assert_eq!(s, 400, "{page}");
    assert!(text_of(&page, "#f-webhook_url-error")
        .unwrap()
        .contains("http://"));
    assert_eq!(
        attr_of(&page, "#f-name", "value").as_deref(),
        Some("typed-name")
    );
    assert!(!page.contains("never-echoed-secret"));
    let (s, _, page) = post_form(
        c,
        url.clone(),
        Some(&csrf),
        &[("kind", "email"), ("name", "mail"), ("smtp_port", "x")],
    )
    .await;
    assert_eq!(s, 400);
    assert!(text_of(&page, "#f-smtp_port-error").is_some());

    // A webhook channel pointing at a local receiver; "Send test" delivers to it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hook = axum::Router::new().route("/hook", post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(l, hook).await.unwrap() });
    let hook_url = format!("http://{addr}/hook");
    let (s, location, _) = post_form(
        c,
        url.clone(),
        Some(&csrf),
        &[
            ("kind", "webhook"),
            ("name", "hooky"),
            ("webhook_url", hook_url.as_str()),
            ("secret", "s3cret-value"),
            ("alert_kinds", "backup_failed"),
        ],
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(location, "/settings?done=channel-created");
    let (_, settings) = get(&location).await;
    assert!(settings.contains("Channel added."));
    assert!(settings.contains(&hook_url));
    assert!(!settings.contains("s3cret-value"));
    let test_action = attr_of(&settings, "form[action$='/test']", "action").unwrap();
    let (s, location, _) = post_form(c, app.url(&test_action), Some(&csrf), &[]).await;
    assert_eq!(s, 303);
    assert!(
        location.starts_with("/settings?done=test-queued"),
        "{location}"
    );
    let (_, settings) = get(&location).await;
    assert!(settings.contains("Test notification queued"));
    let state = text_of(&settings, "#deliveries .badge.delivery").unwrap();
    assert!(
        ["queued", "retrying", "delivered"].contains(&state.as_str()),
        "{state}"
    );
    assert!(text_of(&settings, "#deliveries tbody")
        .unwrap()
        .contains("hooky"));
    crate::helpers::wait_until(20, "the test delivery", || async {
        let (_, p) = get("/settings").await;
        text_of(&p, "#deliveries .badge.delivery").as_deref() == Some("delivered")
    })
    .await;

    // Delete.
    let delete_action = attr_of(&settings, "form[action$='/delete']", "action").unwrap();
    let (s, location, _) = post_form(c, app.url(&delete_action), Some(&csrf), &[]).await;
    assert_eq!(
        (s, location.as_str()),
        (303, "/settings?done=channel-deleted")
    );
    assert!(get("/settings").await.1.contains("No channels yet"));

    // Operators see alerts but not settings.
    let (s, _) = app
        .send_csrf(
            reqwest::Method::POST,
            "/api/users",
            serde_json::json!({"username": "operator1", "password": "Operator-Password-1", "role": "operator"}),
        )
        .await;
    assert_eq!(s, 201);
    let op = app.login_as("operator1", "Operator-Password-1").await;
    let r = op.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Not allowed"));
    let r = op.get(app.url("/alerts")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(!page.contains("href=\"/settings\""));
    let op_csrf = hidden_csrf(&page);
    let (s, _, _) = post_form(
        &op,
        app.url("/settings/channels"),
        Some(&op_csrf),
        &[
            ("kind", "webhook"),
            ("name", "x"),
            ("webhook_url", "http://a/"),
        ],
    )
    .await;
    assert_eq!(s, 403);
    app.stop().await;
}

#[tokio::test]
async fn an_offline_agent_alert_is_counted_acknowledged_and_resolved_from_the_page() {
    use crate::helpers::{wait_until, Agent};
    let app = TestApp::spawn_with(|c| c.offline_after_secs = 2).await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "alerted-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    agent.kill();
    app.wait_status(&host_id, "offline", 20).await;
    wait_until(20, "an agent_offline alert", || async {
        let (_, v) = app.get_json(&format!("/api/alerts?host={host_id}")).await;
        v["alerts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let c = &app.client;
    let get = |path: String| {
        let url = app.url(&path);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let badge_href = format!("/alerts?state=active&host={host_id}");
    let home = get("/".into()).await;
    assert_eq!(
        attr_of(&home, "tr.row-link a.alert-count", "href").as_deref(),
        Some(badge_href.as_str())
    );
    assert_eq!(
        text_of(&home, "nav[aria-label=Main] a[href='/alerts']").as_deref(),
        Some("Alerts (1)")
    );
    let host_page = get(format!("/hosts/{host_id}/jobs")).await;
    assert!(text_of(&host_page, "header.host-head a.alert-count")
        .unwrap()
        .contains("1 open alert"));

    let list = get(badge_href.clone()).await;
    assert_eq!(
        attr_of(&list, "tr.row-link a.row-anchor", "href"),
        Some(format!("/hosts/{host_id}"))
    );
    assert!(text_of(&list, "tr.row-link")
        .unwrap()
        .contains("agent_offline"));
    let csrf = hidden_csrf(&list);
    let ack = attr_of(&list, "form[action$='/ack']", "action").unwrap();
    let (s, location, _) = post_form(
        c,
        app.url(&ack),
        Some(&csrf),
        &[("state", "active"), ("host", host_id.as_str())],
    )
    .await;
    assert_eq!(s, 303);
    assert!(location.contains("done=acknowledged"), "{location}");
    let list = get(location).await;
    assert!(list.contains("Alert acknowledged"));
    assert!(text_of(&list, "tr.row-link")
        .unwrap()
        .contains("acknowledged"));
    assert!(attr_of(&list, "form[action$='/ack']", "action").is_none());
    let resolve = attr_of(&list, "form[action$='/resolve']", "action").unwrap();
    let (s, location, _) = post_form(c, app.url(&resolve), Some(&csrf), &[]).await;
    assert_eq!(s, 303);
    assert!(location.starts_with("/alerts?state=active"), "{location}");
    let resolved = get("/alerts?state=resolved".into()).await;
    assert!(text_of(&resolved, "tr.row-link")
        .unwrap()
        .contains("resolved"));
    agent.kill();
    app.stop().await;
}

/// The seq of the event log's head.
async fn head_seq(app: &TestApp) -> i64 {
    let v: serde_json::Value = app
        .client
        .get(app.url("/api/events/head"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["seq"].as_i64().unwrap_or_else(|| panic!("{v}"))
}

#[tokio::test]
async fn pages_in_the_past_are_read_only_with_a_banner_and_keep_as_of_on_links() {
    use crate::helpers::Agent;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "past-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let seq = head_seq(&app).await;
    let c = &app.client;
    let get = |path: String| {
        let url = app.url(&path);
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let groups: serde_json::Value = c
        .get(app.url(&format!("/api/hosts/{host_id}/source-groups")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = &groups["source_groups"][0];
    let gid = g["id"]
        .as_str()
        .or(g["group"]["id"].as_str())
        .unwrap_or_else(|| panic!("{groups}"))
        .to_string();

    let pages = [
        "/".to_string(),
        format!("/hosts/{host_id}"),
        format!("/hosts/{host_id}/sources"),
        format!("/hosts/{host_id}/sources/{gid}"),
        format!("/hosts/{host_id}/schedules"),
        format!("/hosts/{host_id}/repo"),
        format!("/hosts/{host_id}/jobs"),
        format!("/hosts/{host_id}/restore"),
        format!("/hosts/{host_id}/diff"),
        "/alerts".to_string(),
        "/audit".to_string(),
        "/settings".to_string(),
    ];
    for path in &pages {
        // Now: the live page has its forms (logout at least) and no banner.
        let (s, live) = get(path.clone()).await;
        assert_eq!(s, 200, "{path}: {live}");
        assert!(live.contains("<form"), "{path} live has forms");
        assert!(!live.contains("as-of-banner"), "{path} live has no banner");

        // In the past: the banner, no form, no action button, as_of kept on links.
        let sep = if path.contains('?') { '&' } else { '?' };
        let (s, past) = get(format!("{path}{sep}as_of={seq}")).await;
        assert_eq!(s, 200, "{path}: {past}");
        let banner = text_of(&past, ".as-of-banner").unwrap_or_else(|| panic!("{path}: {past}"));
        assert!(
            banner.contains("Viewing the fleet as of") && banner.contains(&format!("seq {seq}")),
            "{path}: {banner}"
        );
        assert_eq!(
            attr_of(&past, ".as-of-banner a.back-to-now", "href").as_deref(),
            Some(path.as_str()),
            "back to now is the same page"
        );
        assert!(!past.contains("<form"), "{path} in the past has no form");
        for action in [
            "type=\"submit\"",
            "<button",
            ">Run now",
            ">Delete",
            ">Acknowledge<",
            ">Add host<",
            ">New group<",
            ">New schedule<",
            "data-live=\"1\"",
        ] {
            assert!(
                !past.contains(action),
                "{path} in the past shows {action:?}"
            );
        }
        assert!(
            past.contains(&format!("as_of={seq}\"")) || past.contains(&format!("as_of={seq}#")),
            "{path}: internal links keep as_of"
        );
    }

    // The host page in the past links its tabs with as_of.
    let (_, past) = get(format!("/hosts/{host_id}?as_of={seq}")).await;
    assert!(past.contains(&format!("href=\"/hosts/{host_id}/sources?as_of={seq}\"")));

    // A time works as well as a seq.
    let (s, past) = get("/?as_of=2000-01-01T00:00:00Z".to_string()).await;
    assert_eq!(s, 200);
    assert!(past.contains("as-of-banner"));

    // A bad as_of: a 400 page with the message.
    for path in [
        "/".to_string(),
        format!("/hosts/{host_id}"),
        format!("/hosts/{host_id}/sources"),
        format!("/hosts/{host_id}/repo"),
        "/audit".to_string(),
        "/jobs/nope".to_string(),
    ] {
        let (s, bad) = get(format!("{path}?as_of=last-tuesday")).await;
        assert_eq!(s, 400, "{path}: {bad}");
        assert!(
            bad.contains("neither a seq nor an RFC 3339 time"),
            "{path}: {bad}"
        );
        assert!(bad.contains("<html"), "{path}: an HTML page");
    }
    agent.kill();
    app.stop().await;
}

#[tokio::test]
async fn the_audit_page_shows_the_chain_the_slider_the_export_and_timeline_links() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let c = &app.client;
    let r = c
        .get(app.url("/audit?type=UserCreated"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let chain = text_of(&page, ".chain-banner").unwrap();
    assert!(
        chain.contains("Chain verified through seq") || chain.contains("Chain broken at seq"),
        "{chain}"
    );
    assert!(chain.contains("head"), "{chain}");

    // The export link carries the filters and answers JSON lines.
    let export = attr_of(&page, "a.export", "href").unwrap();
    assert_eq!(export, "/api/audit/export?type=UserCreated");
    assert!(text_of(&page, "a.export")
        .unwrap()
        .contains("Export this range (JSONL)"));
    let r = c.get(app.url(&export)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count(), 1, "{body}");

    // The slider spans the log and navigates from this page.
    let max: i64 = attr_of(&page, "input#as-of-seq[type=range]", "max")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(max, head_seq(&app).await);
    assert_eq!(
        attr_of(&page, "[data-as-of-href]", "data-as-of-href").as_deref(),
        Some("/audit?type=UserCreated")
    );
    assert!(page.contains("type=\"datetime-local\""));

    // Rows link to their actor's timeline.
    let actor = attr_of(&page, "table.audit a.timeline", "href").unwrap();
    assert!(actor.starts_with("/audit?actor="), "{actor}");
    let r = c.get(app.url(&actor)).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // In the past the log ends at the seq, and the slider sits there.
    let (s, past) = {
        let r = c.get(app.url("/audit?as_of=1")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(s, 200);
    let doc = scraper::Html::parse_document(&past);
    let rows = scraper::Selector::parse("table.audit tbody tr").unwrap();
    assert_eq!(doc.select(&rows).count(), 1);
    assert_eq!(
        attr_of(&past, "input#as-of-seq", "value").as_deref(),
        Some("1")
    );
    assert!(past.contains("as-of-banner"));
    app.stop().await;
}

#[tokio::test]
async fn the_group_editor_previews_retention_through_the_what_if_api() {
    use crate::helpers::Agent;
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "preview-1").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    let c = &app.client;
    let groups: serde_json::Value = c
        .get(app.url(&format!("/api/hosts/{host_id}/source-groups")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = &groups["source_groups"][0];
    let gid = g["id"]
        .as_str()
        .or(g["group"]["id"].as_str())
        .unwrap()
        .to_string();
    let page = c
        .get(app.url(&format!("/hosts/{host_id}/sources/{gid}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text_of(&page, "button#preview-retention")
        .unwrap()
        .contains("Preview retention"));
    let url = attr_of(&page, "[data-what-if]", "data-what-if").unwrap();
    assert_eq!(
        url,
        format!("/api/hosts/{host_id}/source-groups/{gid}/what-if")
    );
    let csrf = attr_of(&page, "[data-what-if]", "data-csrf").unwrap();
    // What app.js sends: the typed keep-rules, with the CSRF header.
    let r = c
        .post(app.url(&url))
        .header("x-csrf-token", csrf)
        .json(&serde_json::json!({ "retention_policy": { "keep_last": 3, "keep_daily": 7 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["description"].is_string(), "{v}");
    assert!(
        v["keep_count"].is_number() && v["remove_count"].is_number(),
        "{v}"
    );
    assert!(v["groups"].is_array(), "{v}");

    // The host page lists removed snapshots (none yet).
    let host = c
        .get(app.url(&format!("/hosts/{host_id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text_of(&host, "#removed-snapshots h2")
        .unwrap()
        .contains("Removed snapshots"));
    agent.kill();
    app.stop().await;
}
