//! The restore wizard and the snapshot comparison as pages, without JavaScript: every step
//! is a plain GET or form POST, against the real agent and restic. The browser test walks
//! the same wizard with its script.

use scraper::{Html, Selector};

use crate::helpers::TestApp;
use crate::restore::{backup, enc, euid, host, wait_job};

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn texts(doc: &Html, css: &str) -> Vec<String> {
    doc.select(&sel(css))
        .map(|e| e.text().collect::<String>())
        .collect()
}

fn attrs(doc: &Html, css: &str, attr: &str) -> Vec<String> {
    doc.select(&sel(css))
        .filter_map(|e| e.value().attr(attr).map(str::to_string))
        .collect()
}

async fn page(app: &TestApp, path: &str) -> (u16, Html) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let s = r.status().as_u16();
    (s, Html::parse_document(&r.text().await.unwrap()))
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, String, Html) {
    let csrf = app.csrf().await;
    let mut fields: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
    fields.extend_from_slice(form);
    let r = app
        .client
        .post(app.url(path))
        .form(&fields)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (s, location, Html::parse_document(&r.text().await.unwrap()))
}

#[tokio::test]
async fn the_restore_wizard_and_the_comparison_work_as_plain_pages() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = host(&app, "wizard-1", "Wizard-Password-1").await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().display().to_string();
    std::fs::create_dir(src.path().join("docs")).unwrap();
    std::fs::write(src.path().join("docs/a.txt"), b"alpha").unwrap();
    std::fs::write(src.path().join("docs/b.txt"), b"bravo").unwrap();
    std::fs::write(src.path().join("top.txt"), b"top v1").unwrap();
    let first = backup(&app, &host_id, src.path()).await;
    std::fs::write(src.path().join("new.txt"), b"new").unwrap();
    std::fs::write(src.path().join("top.txt"), b"top v2, longer").unwrap();
    let second = backup(&app, &host_id, src.path()).await;
    let base = format!("/hosts/{host_id}/restore");

    // Step 1: the snapshots, each with its way in; the host page links there too.
    let (s, doc) = page(&app, &base).await;
    assert_eq!(s, 200);
    let links = attrs(&doc, "#choose-snapshot a.button", "href");
    assert!(
        links.contains(&format!("{base}?snapshot={second}")),
        "{links:?}"
    );
    let (_, overview) = page(&app, &format!("/hosts/{host_id}")).await;
    assert!(
        attrs(&overview, "#snapshot-list a", "href").contains(&format!("{base}?snapshot={first}"))
    );
    assert_eq!(
        attrs(&overview, "form.compare", "action"),
        [format!("/hosts/{host_id}/diff")]
    );
    assert!(attrs(&overview, "nav.tabs a", "href").contains(&base));

    // Step 2: the tree, one directory per page; directories open as pages without script.
    let (s, doc) = page(&app, &format!("{base}?snapshot={second}")).await;
    assert_eq!(s, 200);
    let first_dir = format!(
        "/{}",
        root.trim_start_matches('/').split('/').next().unwrap()
    );
    assert!(
        attrs(&doc, "#tree li.entry", "data-path").contains(&first_dir),
        "{:?}",
        attrs(&doc, "#tree li.entry", "data-path")
    );
    let (s, doc) = page(
        &app,
        &format!("{base}?snapshot={second}&path={}", enc(&root)),
    )
    .await;
    assert_eq!(s, 200);
    let uid = euid();
    let picks = attrs(&doc, "#tree input[name=pick]", "value");
    for name in ["docs", "new.txt", "top.txt"] {
        assert!(
            picks.contains(&format!("{uid}:{root}/{name}")),
            "{name} in {picks:?}"
        );
    }
    assert!(texts(&doc, "nav.breadcrumb strong")
        .concat()
        .contains(root.rsplit('/').next().unwrap()));
    // An unknown snapshot is a 404 page, not a 500.
    let (s, _) = page(&app, &format!("{base}?snapshot=0123456789abcdef")).await;
    assert_eq!(s, 404);

    // Lose a file, then ask for it back into another directory.
    std::fs::remove_file(src.path().join("docs/b.txt")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let out_path = out.path().display().to_string();
    let docs = format!("{uid}:{root}/docs");
    let b = format!("{uid}:{root}/docs/b.txt");

    // A missing directory and an unknown policy: messages next to their fields.
    let (s, _, doc) = post(
        &app,
        &base,
        &[
            ("snapshot_id", &second),
            ("pick", &b),
            ("location", "path"),
            ("target_path", ""),
            ("step", "review"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(texts(&doc, "#f-target_path-error")
        .concat()
        .contains("directory"));
    let (s, _, doc) = post(
        &app,
        &base,
        &[
            ("snapshot_id", &second),
            ("pick", &b),
            ("location", "original"),
            ("overwrite", "sometimes"),
            ("step", "review"),
        ],
    )
    .await;
    assert_eq!(s, 400);
    assert!(!texts(&doc, "#f-overwrite-error").is_empty());
    // The ticks are kept, as ticks with their owners, after a refusal.
    assert_eq!(
        attrs(&doc, "#chosen input[name=pick][checked]", "value"),
        vec![b.clone()]
    );

    // Review: a path inside a picked folder is dropped; each path shows where it lands.
    let form = [
        ("snapshot_id", second.as_str()),
        ("pick", docs.as_str()),
        ("pick", b.as_str()),
        ("location", "path"),
        ("target_path", out_path.as_str()),
        ("overwrite", "always"),
        ("step", "review"),
    ];
    let (s, _, doc) = post(&app, &base, &form).await;
    assert_eq!(s, 200);
    let cells = texts(&doc, "table.mapping td code");
    assert_eq!(
        cells,
        [format!("{root}/docs"), format!("{out_path}{root}/docs")],
        "{cells:?}"
    );
    let carried = attrs(&doc, "form.restore-confirm input[type=hidden]", "name");
    assert!(carried.contains(&"pick".to_string()) && carried.contains(&"target_path".to_string()));

    // "Change" goes back to the wizard with every pick kept.
    let mut edit = form.to_vec();
    edit.retain(|(k, _)| *k != "step");
    edit.push(("step", "edit"));
    let (s, _, doc) = post(&app, &base, &edit).await;
    assert_eq!(s, 200);
    assert_eq!(
        attrs(&doc, "#chosen input[name=pick][checked]", "value"),
        vec![docs.clone(), b.clone()]
    );
    assert_eq!(
        attrs(&doc, "#f-target_path", "value"),
        vec![out_path.clone()]
    );

    // Start it: the job page, then the file where the review said.
    let mut go = form.to_vec();
    go.retain(|(k, _)| *k != "step");
    go.push(("step", "confirm"));
    let (s, location, _) = post(&app, &base, &go).await;
    assert_eq!(s, 303, "{location}");
    let job_id = location
        .strip_prefix("/jobs/")
        .expect("a job page")
        .to_string();
    let job = wait_job(&app, &job_id, 90).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["kind"], "restore");
    let landed = format!("{out_path}{root}/docs/b.txt");
    assert_eq!(std::fs::read(&landed).unwrap(), b"bravo", "{landed}");
    assert!(
        !src.path().join("docs/b.txt").exists(),
        "restored elsewhere, not in place"
    );

    // Root's files: a non-root agent is warned about; a root agent is not.
    let root_pick = format!("0:{root}/top.txt");
    let (s, _, doc) = post(
        &app,
        &base,
        &[
            ("snapshot_id", &second),
            ("pick", &root_pick),
            ("location", "original"),
            ("step", "review"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let warnings = texts(&doc, "#review-warnings li").concat();
    if uid == 0 {
        assert!(!warnings.contains("owned by root"), "{warnings}");
    } else {
        assert!(warnings.contains("owned by root"), "{warnings}");
        assert!(warnings.contains(&format!("uid {uid}")), "{warnings}");
    }
    assert!(warnings.contains("replaced"), "{warnings}");

    // The comparison: new.txt added, top.txt changed.
    let (s, doc) = page(
        &app,
        &format!("/hosts/{host_id}/diff?from={first}&to={second}"),
    )
    .await;
    assert_eq!(s, 200);
    let added = texts(&doc, "#diff-changes tr[data-modifier='+'] code").concat();
    assert!(added.contains("new.txt"), "{added}");
    let changed = texts(&doc, "#diff-changes tr[data-modifier='M'] code").concat();
    assert!(changed.contains("top.txt"), "{changed}");
    assert!(!texts(&doc, "#diff-stats").is_empty());
    let (s, doc) = page(
        &app,
        &format!("/hosts/{host_id}/diff?from={first}&to={first}"),
    )
    .await;
    assert_eq!(s, 400);
    assert!(texts(&doc, "#f-compare-error")
        .concat()
        .contains("different"));

    // The agent gone: starting is refused next to the target host, nothing lost.
    agent.kill();
    crate::helpers::wait_until(30, "the agent's connection to close", || async {
        let (_, info) = app
            .get_json(&format!("/api/hosts/{host_id}/restore-info"))
            .await;
        info["online"] == false
    })
    .await;
    let (s, _, doc) = post(&app, &base, &go).await;
    assert_eq!(s, 409);
    assert!(texts(&doc, "#f-target_host_id-error")
        .concat()
        .contains("offline"));
    assert!(attrs(&doc, "#chosen input[name=pick]", "value").contains(&docs));
    assert!(
        !texts(&doc, "#tree-error").is_empty(),
        "the tree says why it cannot browse"
    );
    app.stop().await;
}
