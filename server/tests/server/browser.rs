//! The product in a real browser: headless Debian Chromium driven through chromedriver.
//! First-run setup → add a host → the real agent enrols with the token the page shows → the
//! page sees it connect → Run now → the live job page → the snapshot on the host page →
//! the audit log. A second walk goes through a host's Sources, Schedules and Repository tabs.
//! A screenshot of each page lands in `target/screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{Agent, TestApp, ADMIN, ADMIN_PASSWORD};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Client, Driver) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test installs it)"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900"]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (c, driver),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not start");
}

/// Screenshot, after checking the page's scripts raised nothing.
async fn shot(c: &Client, name: &str) {
    let errors = c
        .execute("return window.__rmErrors || [];", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]), "script errors on {name}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits for a CSS selector to match (polling; the page's own JavaScript updates it).
async fn wait_for(c: &Client, css: &str, secs: u64) -> fantoccini::elements::Element {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {css} on {}",
            c.current_url().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn first_run_to_first_snapshot_in_a_real_browser() {
    let app = TestApp::spawn().await;
    let (c, _driver) = browser().await;
    let base = app.base();

    // First-run setup.
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, "form[action='/setup']", 10).await;
    shot(&c, "01-setup").await;
    fill(&c, "#f-token", &app.setup_token()).await;
    fill(&c, "#f-username", ADMIN).await;
    fill(&c, "#f-password", ADMIN_PASSWORD).await;
    c.find(Locator::Css("form[action='/setup'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "section.card.empty", 10).await;
    shot(&c, "02-empty-dashboard").await;

    // Add a host.
    c.find(Locator::Css(".empty a[href='/hosts/new']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#f-hostname", 10).await;
    let repo = app.repo_url("browser-1");
    fill(&c, "#f-hostname", "browser-1").await;
    fill(&c, "#f-repo_url", &repo).await;
    fill(&c, "#f-repo_password", "Browser-Repo-Password-1").await;
    c.find(Locator::Css("form[action='/hosts/new'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let command = wait_for(&c, "#install-command", 10)
        .await
        .text()
        .await
        .unwrap();
    shot(&c, "03-install-command").await;
    let token = command
        .split("token=")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();

    // The real agent enrols with that token; the page notices it connect.
    let mut agent = Agent::new();
    assert_eq!(agent.enroll(&base, &token, None).await.0, 0);
    agent.start();
    let link = wait_for(&c, ".await.connected a", 30).await;
    shot(&c, "04-agent-connected").await;
    link.click().await.unwrap();
    wait_for(&c, "#f-paths", 10).await;
    // Wait for the repository's init job before backing up.
    let host_url = c.current_url().await.unwrap().to_string();
    let host_id = host_url.rsplit('/').next().unwrap().to_string();
    let api = app.login_as(ADMIN, ADMIN_PASSWORD).await;
    crate::helpers::wait_until(60, "the init job", || async {
        let v: serde_json::Value = api
            .get(app.url(&format!("/api/hosts/{host_id}/jobs")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["kind"] == "init" && j["status"] == "succeeded")
        })
    })
    .await;
    c.goto(&host_url).await.unwrap();
    shot(&c, "05-host-page").await;

    // Run now → the live job page → finished. About 3 MiB of incompressible data at
    // 256 KiB/s: long enough to watch it run.
    let src = tempfile::tempdir().unwrap();
    let mut x: u32 = 2463534242;
    for i in 0..12 {
        let data: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        std::fs::write(src.path().join(format!("f{i}")), data).unwrap();
    }
    // The ad-hoc paths form is the overview's "custom backup", folded by default.
    c.find(Locator::Css("#custom-backup summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(&c, "#f-paths", &src.path().display().to_string()).await;
    fill(&c, "#f-limit", "256").await;
    c.find(Locator::Css("#custom-backup form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "#job-log", 10).await;
    assert!(c.current_url().await.unwrap().path().starts_with("/jobs/"));
    // The live part: progress arrives over the stream while restic runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let text = c
            .find(Locator::Css("#job-progress"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap_or_default();
        if text.contains("% ·") && text.contains("files") {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let errors = c
                .execute("return window.__rmErrors || [];", vec![])
                .await
                .unwrap();
            let log = c
                .find(Locator::Css("#job-log"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default();
            let live = c
                .execute(
                    "return document.getElementById('job-log').dataset.live;",
                    vec![],
                )
                .await
                .unwrap();
            panic!(
                "no live progress shown: progress={text:?} errors={errors} live={live} log={log}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shot(&c, "06-job-running").await;
    wait_for(&c, "#job-status .badge.good", 90).await;
    let log = c
        .find(Locator::Css("#job-log"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("summary"), "{log}");
    shot(&c, "07-job-finished").await;

    // The snapshot on the host page, the events in the audit log.
    c.goto(&host_url).await.unwrap();
    crate::helpers::wait_until(20, "the snapshot on the host page", || async {
        c.refresh().await.unwrap();
        c.find(Locator::Css("#snapshots ~ table tbody tr"))
            .await
            .is_ok()
    })
    .await;
    shot(&c, "08-host-with-snapshot").await;
    c.goto(&format!("{base}/audit")).await.unwrap();
    let body = wait_for(&c, "table.audit", 10).await.text().await.unwrap();
    for t in [
        "UserCreated",
        "EnrollmentTokenIssued",
        "HostEnrolled",
        "JobFinished",
        "SnapshotsReported",
    ] {
        assert!(body.contains(t), "{t} missing from the audit page");
    }
    shot(&c, "09-audit").await;
    c.close().await.unwrap();
    agent.kill();
    app.stop().await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn current_path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

#[tokio::test]
async fn sources_schedules_and_repo_tabs_in_a_real_browser() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) = Agent::enrolled(&app, "browser-tabs").await;
    agent.start();
    app.wait_status(&host_id, "online", 20).await;
    crate::helpers::wait_until(60, "the init job", || async {
        let (_, v) = app.get_json(&format!("/api/hosts/{host_id}/jobs")).await;
        v["jobs"].as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["kind"] == "init" && j["status"] == "succeeded")
        })
    })
    .await;
    let (c, _driver) = browser().await;
    let base = app.base();

    // Log in through the form.
    log_in(&c, &base).await;

    // The host's Sources tab, from the overview's tab bar.
    c.goto(&format!("{base}/hosts/{host_id}")).await.unwrap();
    wait_for(&c, "nav.tabs a[aria-current=page]", 10).await;
    click(&c, "nav.tabs a[href$='/sources']").await;
    wait_for(&c, "table.groups tr.row-link", 10).await;
    assert_eq!(current_path(&c).await, format!("/hosts/{host_id}/sources"));
    let header = c
        .find(Locator::Css(".version"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(header.contains("schedule v"), "{header}");
    shot(&c, "10-sources").await;

    // A new group: a bad name first, the message beside it and the paths kept.
    let src = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(src.path().join(format!("f{i}")), vec![i as u8; 64 * 1024]).unwrap();
    }
    let path = src.path().display().to_string();
    click(&c, "a[href$='/sources/new']").await;
    wait_for(&c, "#f-name", 10).await;
    fill(&c, "#f-name", "bad name!").await;
    fill(&c, "#f-includes", &path).await;
    fill(&c, "#f-keep_last", "5").await;
    click(&c, "form.group-form button[type=submit]").await;
    let err = wait_for(&c, "#f-name-error", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(err.contains("snapshot tag"), "{err}");
    let kept = c
        .find(Locator::Css("#f-includes"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(kept.trim(), path);
    shot(&c, "11-group-invalid-name").await;
    fill(&c, "#f-name", "browser-data").await;
    click(&c, "form.group-form button[type=submit]").await;
    wait_for(&c, "tr.row-link[data-group='browser-data']", 10).await;
    assert!(c
        .find(Locator::Css(".notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("created"));
    shot(&c, "12-sources-with-group").await;

    // Schedules tab → a new schedule from a quick-pick chip, with the group's check card.
    click(&c, "nav.tabs a[href$='/schedules']").await;
    wait_for(&c, "a[href$='/schedules/new']", 10).await;
    click(&c, "a[href$='/schedules/new']").await;
    wait_for(&c, "#f-cron", 10).await;
    click(&c, "button.chip[data-cron='0 3 * * *']").await;
    let cron = c
        .find(Locator::Css("#f-cron"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(cron, "0 3 * * *");
    let pressed = c
        .find(Locator::Css("button.chip[aria-pressed=true]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pressed.contains("03:00"), "{pressed}");
    c.find(Locator::XPath(
        "//label[contains(@class,'check-card')][.//strong[text()='browser-data']]",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    shot(&c, "13-schedule-form").await;
    click(&c, "form.schedule-form button[type=submit]").await;
    let table = wait_for(&c, "table.schedules", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(table.contains("every day at 03:00 UTC"), "{table}");
    assert!(table.contains("browser-data"), "{table}");
    shot(&c, "14-schedules").await;

    // The Repository tab renders its panel and forms.
    click(&c, "nav.tabs a[href$='/repo']").await;
    wait_for(&c, "#repo-panel", 10).await;
    wait_for(&c, "form[action$='/repo/maintenance']", 10).await;
    wait_for(&c, "#f-init-confirm", 10).await;
    shot(&c, "15-repo").await;
    c.execute(
        "document.getElementById('maintenance').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    shot(&c, "16-repo-forms").await;

    // Run-now on the group → its job page → succeeded.
    click(&c, "nav.tabs a[href$='/sources']").await;
    wait_for(&c, "tr.row-link[data-group='browser-data']", 10).await;
    click(
        &c,
        "tr.row-link[data-group='browser-data'] form.run button[type=submit]",
    )
    .await;
    wait_for(&c, "#job-log", 10).await;
    assert!(current_path(&c).await.starts_with("/jobs/"));
    wait_for(&c, "#job-status .badge.good", 90).await;
    shot(&c, "17-group-job-finished").await;
    let job_id = current_path(&c)
        .await
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (_, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(job["snapshot_id"].is_string(), "{job}");

    // The overview's vitals show the schedule.
    c.goto(&format!("{base}/hosts/{host_id}")).await.unwrap();
    let next = wait_for(&c, "#next-run", 10).await.text().await.unwrap();
    assert!(next.contains("in "), "{next}");
    shot(&c, "18-overview-with-schedule").await;
    c.goto(&format!("{base}/")).await.unwrap();
    let row = wait_for(&c, "table.hosts tr.row-link", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("next in"), "{row}");
    shot(&c, "19-dashboard-with-schedule").await;
    c.close().await.unwrap();
    agent.kill();
    app.stop().await;
}

/// Expands the wizard's tree down to `path` (each ancestor's ▸, one directory per request)
/// and returns the entry's row.
async fn expand_to(c: &Client, path: &str) {
    let mut at = String::new();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, seg) in segs.iter().enumerate() {
        at.push('/');
        at.push_str(seg);
        let li = format!("#tree li.entry[data-path='{at}']");
        wait_for(c, &li, 30).await;
        if i + 1 < segs.len() {
            click(c, &format!("{li} > .entry-row button.expand")).await;
        }
    }
}

#[tokio::test]
async fn a_deleted_file_is_restored_from_the_wizard_in_a_real_browser() {
    let app = TestApp::spawn().await;
    app.bootstrap().await;
    let (mut agent, host_id) =
        crate::restore::host(&app, "browser-restore", "Browser-Restore-1").await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().display().to_string();
    std::fs::create_dir(src.path().join("docs")).unwrap();
    std::fs::write(src.path().join("docs/report.txt"), b"the quarterly report").unwrap();
    std::fs::write(src.path().join("docs/notes.txt"), b"notes").unwrap();
    let first = crate::restore::backup(&app, &host_id, src.path()).await;
    std::fs::write(src.path().join("docs/added.txt"), b"added later").unwrap();
    let second = crate::restore::backup(&app, &host_id, src.path()).await;
    let (c, _driver) = browser().await;
    let base = app.base();
    log_in(&c, &base).await;

    // The file is lost; the clock runs from here to the file being back.
    let lost = src.path().join("docs/report.txt");
    std::fs::remove_file(&lost).unwrap();
    let started = std::time::Instant::now();

    // Host page → the newest snapshot's Restore link → the wizard's tree.
    c.goto(&format!("{base}/hosts/{host_id}")).await.unwrap();
    click(
        &c,
        &format!("#snapshot-list tr[data-snapshot='{second}'] a"),
    )
    .await;
    wait_for(&c, "#tree", 30).await;
    assert_eq!(current_path(&c).await, format!("/hosts/{host_id}/restore"));
    let file = format!("{root}/docs/report.txt");
    expand_to(&c, &file).await;
    shot(&c, "20-restore-tree").await;

    // Tick the file: the mapping shows it going back where it was.
    click(
        &c,
        &format!("#tree li.entry[data-path='{file}'] input[name=pick]"),
    )
    .await;
    let mapping = wait_for(&c, "#restore-mapping li", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        mapping.contains(&format!("browser-restore:{file}")),
        "{mapping}"
    );
    // Ticking the folder covers the file (shown ticked, not sent twice); unticking gives
    // the file its own tick back.
    let docs_box = format!("#tree li.entry[data-path='{root}/docs'] > .entry-row input[name=pick]");
    click(&c, &docs_box).await;
    let disabled = c
        .find(Locator::Css(&format!(
            "#tree li.entry[data-path='{file}'] input[name=pick]"
        )))
        .await
        .unwrap()
        .prop("disabled")
        .await
        .unwrap();
    assert_eq!(disabled.as_deref(), Some("true"));
    click(&c, &docs_box).await;
    let summary = c
        .find(Locator::Css("#picked-summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.starts_with("1 path"), "{summary}");
    shot(&c, "21-restore-target").await;

    // Review → Start restore → the live job page → succeeded.
    click(&c, "form.restore-form button[value=review]").await;
    let review = wait_for(&c, "table.mapping", 30)
        .await
        .text()
        .await
        .unwrap();
    assert!(review.contains(&file), "{review}");
    shot(&c, "22-restore-review").await;
    // "Change" comes back with the tick kept (with its owner), the mapping recomputed.
    click(&c, "form.restore-confirm button[value=edit]").await;
    wait_for(&c, "#chosen input[name=pick]", 30).await;
    let mapping = wait_for(&c, "#restore-mapping li", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(mapping.contains(&file), "{mapping}");
    click(&c, "form.restore-form button[value=review]").await;
    let review = wait_for(&c, "table.mapping", 30)
        .await
        .text()
        .await
        .unwrap();
    assert!(review.contains(&file), "{review}");
    click(&c, "form.restore-confirm button[value=confirm]").await;
    wait_for(&c, "#job-log", 10).await;
    assert!(current_path(&c).await.starts_with("/jobs/"));
    wait_for(&c, "#job-status .badge.good", 90).await;
    let elapsed = started.elapsed();
    assert_eq!(std::fs::read(&lost).unwrap(), b"the quarterly report");
    assert!(
        elapsed < Duration::from_secs(120),
        "deleted → restored from the UI took {elapsed:?}"
    );
    eprintln!("deleted file restored from the wizard in {elapsed:?}");
    shot(&c, "23-restore-job").await;

    // The comparison on the host page: the two newest snapshots by default.
    c.goto(&format!("{base}/hosts/{host_id}")).await.unwrap();
    let from = c
        .find(Locator::Css("form.compare #f-from"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(from.as_deref(), Some(first.as_str()));
    click(&c, "form.compare button[type=submit]").await;
    let added = wait_for(&c, "#diff-changes tr[data-modifier='+']", 30)
        .await
        .text()
        .await
        .unwrap();
    assert!(added.contains("added.txt"), "{added}");
    shot(&c, "24-snapshot-diff").await;
    c.close().await.unwrap();
    agent.kill();
    app.stop().await;
}

async fn log_in(c: &Client, base: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    wait_for(c, "form[action='/login']", 10).await;
    fill(c, "#f-username", ADMIN).await;
    fill(c, "#f-password", ADMIN_PASSWORD).await;
    click(c, "form[action='/login'] button").await;
    wait_for(c, "table.hosts", 10).await;
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.unwrap().len()
}

/// History's scripts in a real browser: the retention preview asks the what-if before
/// anything is saved, the host page says why forget removed each snapshot, and the audit
/// page's time slider moves the whole UI into the past.
#[tokio::test]
async fn retention_preview_removed_snapshots_and_the_time_slider_in_a_real_browser() {
    use crate::schedules::{groups, host_with, write_files};
    let src = tempfile::tempdir().unwrap();
    let (app, mut agent, host) = host_with(&[src.path().display().to_string()], |_| {}).await;
    let gid = groups(&app, &host).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        write_files(&src.path().join(format!("round{i}")), &["a", "b"]);
        let (s, v) = app
            .send_csrf(
                reqwest::Method::POST,
                &format!("/api/hosts/{host}/source-groups/{gid}/run"),
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(s, 202, "{v}");
        let job = crate::restore::wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    crate::helpers::wait_until(30, "three snapshots in the list", || async {
        let (_, v) = app.get_json(&format!("/api/hosts/{host}/snapshots")).await;
        v["snapshots"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    let (_, head) = app.get_json("/api/events/head").await;
    let before_forget = head["seq"].as_i64().unwrap();
    let (c, _driver) = browser().await;
    let base = app.base();
    log_in(&c, &base).await;

    // The preview: only "keep the last 1" typed, three snapshots → one kept, two removed.
    c.goto(&format!("{base}/hosts/{host}/sources/{gid}"))
        .await
        .unwrap();
    wait_for(&c, "#preview-retention", 10).await;
    for k in [
        "keep_hourly",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
        "keep_within",
    ] {
        c.find(Locator::Css(&format!("#f-{k}")))
            .await
            .unwrap()
            .clear()
            .await
            .unwrap();
    }
    fill(&c, "#f-keep_last", "1").await;
    click(&c, "#preview-retention").await;
    wait_for(&c, "#what-if-result table.what-if-table", 30).await;
    assert_eq!(count(&c, "#what-if-result tr.keep").await, 1);
    assert_eq!(count(&c, "#what-if-result tr.remove").await, 2);
    let said = c
        .find(Locator::Css("#what-if-result p"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(said.contains("1 kept, 2 removed"), "{said}");
    shot(&c, "30-retention-preview").await;
    // Nothing was saved by the preview.
    let g = groups(&app, &host).await[0].clone();
    assert_ne!(
        g["retention_policy"],
        serde_json::json!({"keep_last": 1}),
        "{g}"
    );

    // Save it, run forget: the host page says why each snapshot went, linked to the policy.
    click(&c, "form.group-form button[type=submit]").await;
    wait_for(&c, ".notice", 10).await;
    let (s, v) = app
        .send_csrf(
            reqwest::Method::POST,
            &format!("/api/hosts/{host}/repo/forget"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let job = crate::restore::wait_job(&app, v["job_id"].as_str().unwrap(), 60).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    c.goto(&format!("{base}/hosts/{host}")).await.unwrap();
    wait_for(&c, "#removed-snapshots table.removed", 30).await;
    assert_eq!(count(&c, "#removed-snapshots tbody tr").await, 2);
    let why = c
        .find(Locator::Css("#removed-snapshots tbody tr td.why"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        why.contains("keep the last 1") || why.contains("last 1"),
        "{why}"
    );
    assert!(why.contains("set by user:"), "{why}");
    shot(&c, "31-removed-snapshots").await;
    click(&c, "#removed-snapshots tbody tr a.policy").await;
    let audit = wait_for(&c, "table", 10).await.text().await.unwrap();
    assert!(audit.contains("SourceGroupSaved"), "{audit}");

    // The slider: back to before the forget, the banner, the three snapshots again.
    c.goto(&format!("{base}/audit")).await.unwrap();
    wait_for(&c, "#as-of-seq", 10).await;
    c.execute(
        "var r = document.getElementById('as-of-seq'); r.value = arguments[0]; \
         r.dispatchEvent(new Event('input')); r.dispatchEvent(new Event('change'));",
        vec![serde_json::json!(before_forget.to_string())],
    )
    .await
    .unwrap();
    let banner = wait_for(&c, ".as-of-banner", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(banner.contains(&format!("seq {before_forget}")), "{banner}");
    let url = c.current_url().await.unwrap();
    assert!(
        url.query()
            .is_some_and(|q| q.contains(&format!("as_of={before_forget}"))),
        "{url}"
    );
    shot(&c, "32-audit-in-the-past").await;
    // Links keep the past: the host page as it was, nothing removed yet.
    c.goto(&format!("{base}/hosts/{host}?as_of={before_forget}"))
        .await
        .unwrap();
    let removed = wait_for(&c, "#removed-snapshots", 10)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        removed.contains("Forget has removed no snapshot"),
        "{removed}"
    );
    assert_eq!(count(&c, "#snapshot-list tbody tr").await, 3);
    assert_eq!(count(&c, "form").await, 0, "no actions in the past");
    // The date input does the same by time.
    c.goto(&format!("{base}/audit")).await.unwrap();
    wait_for(&c, "#as-of-time", 10).await;
    c.execute(
        "var t = document.getElementById('as-of-time'); t.value = '2000-01-01T00:00:00'; \
         t.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await
    .unwrap();
    wait_for(&c, ".as-of-banner", 10).await;
    let url = c.current_url().await.unwrap();
    assert!(
        url.query().is_some_and(|q| q.contains("as_of=2000-01-01")),
        "{url}"
    );
    c.close().await.unwrap();
    agent.kill();
    app.stop().await;
}
