//! The fleet pages: the dashboard and a host's page. They show read models only; the
//! server hands in the current time so that "5 min ago" needs no clock here.

use std::collections::HashMap;

use domain::Timestamp;
use maud::{html, Markup};
use projections::config::{GroupView, HostSettings};
use projections::hosts::{FleetSummary, Host};
use projections::jobs::{Job, SnapshotView};

use crate::host::{chrome, jobs_table, relative, short_time, HostChrome, HostTab};
use crate::{layout, Viewer};

/// Bytes in binary units: `0 B`, `12.3 KiB`, `1.5 GiB`.
pub fn bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0) as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", n.max(0))
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// "just now", "5 min ago", "3 h ago", "2 days ago"; the time itself when unparsable.
pub fn ago(now: Timestamp, at: &str) -> String {
    let Ok(t) = at.parse::<Timestamp>() else {
        return at.to_string();
    };
    let secs = (now.unix_micros() - t.unix_micros()) / 1_000_000;
    match secs {
        s if s < 45 => "just now".into(),
        s if s < 3600 => format!("{} min ago", (s + 30) / 60),
        s if s < 86_400 => format!("{} h ago", (s + 1800) / 3600),
        s => format!("{} days ago", (s + 43_200) / 86_400),
    }
}

pub(crate) fn status_dot(status: &str) -> Markup {
    html! { span.dot.(status) role="img" aria-label=(status) title=(status) {} }
}

pub(crate) fn outcome(status: &str) -> Markup {
    let class = match status {
        "succeeded" => "good",
        "succeeded_with_warnings" => "warn",
        "failed" | "lost" => "bad",
        _ => "muted",
    };
    html! { span.badge.(class) { (status.replace('_', " ")) } }
}

/// What the dashboard shows.
pub struct Dashboard<'a> {
    /// Totals.
    pub summary: &'a FleetSummary,
    /// Hosts by name.
    pub hosts: &'a [Host],
    /// Now, for relative times.
    pub now: Timestamp,
    /// Chain head (seq, hash), shown so it can be noted down outside the database.
    pub head: (i64, String),
    /// Hosts' schedules in short, by host id (hosts without schedules are absent).
    pub schedules: &'a HashMap<String, ScheduleCell>,
}

/// A host's schedules in short: when the next run is due and how the last went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleCell {
    /// Schedules in all.
    pub count: u32,
    /// The next fire of any enabled schedule (`None`: all paused).
    pub next_run: Option<NextRun>,
    /// The last scheduled run.
    pub last_run_at: Option<String>,
    /// How it went.
    pub last_run_status: Option<String>,
    /// Its job.
    pub last_job_id: Option<String>,
}

/// When a schedule fires next, in the forms a page shows (worked out once per distinct
/// time, not once per host: a fleet shares a few schedules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextRun {
    /// RFC 3339.
    pub at: String,
    /// "in 3 h".
    pub label: String,
    /// "2026-11-28 03:00 UTC".
    pub title: String,
}

impl NextRun {
    /// The forms of `at`, relative to `now`.
    pub fn new(now: Timestamp, at: String) -> Self {
        NextRun {
            label: relative(now, &at),
            title: short_time(&at),
            at,
        }
    }
}

fn next_run_time(n: &NextRun) -> Markup {
    html! { time datetime=(n.at) title=(n.title) { (n.label) } }
}

/// "next in 3 h" over "last 5 h ago ✓"; "no schedule" when there is none.
fn schedule_cell(now: Timestamp, c: Option<&ScheduleCell>) -> Markup {
    html! {
        @match c {
            None => span.muted { "no schedule" },
            Some(c) => {
                @match &c.next_run {
                    Some(n) => { "next " time datetime=(n.at) { (n.label) } }
                    None => span.muted { "paused" },
                }
                @if let Some(at) = &c.last_run_at {
                    br;
                    span.small.muted { "last " (ago(now, at)) }
                    " " (outcome(c.last_run_status.as_deref().unwrap_or("queued")))
                }
            }
        }
    }
}

/// `/`: fleet tiles and the host table. Each row links to its host; the link covers the row.
pub fn dashboard(viewer: &Viewer, d: &Dashboard<'_>) -> Markup {
    let s = d.summary;
    layout(
        "Dashboard",
        viewer,
        html! {
            div.page-head {
                h1 { "Fleet" }
                @if !viewer.in_past() { a.button.primary href="/hosts/new" { "Add host" } }
            }
            section.tiles aria-label="Fleet summary" {
                div.tile { span.num { (s.hosts) } span.label { "hosts" } }
                div.tile { span.num { (s.online) } span.label { "online" } }
                div.tile.bad[s.failing > 0] { span.num { (s.failing) } span.label { "failing" } }
                div.tile { span.num { (s.snapshots) } span.label { "snapshots" } }
                div.tile { span.num { (bytes(s.repo_size_bytes)) } span.label { "in repositories" } }
            }
            @if d.hosts.is_empty() {
                section.card.empty {
                    h2 { "No hosts yet" }
                    p { "Add a host: you get a one-line install command to run on it. The agent dials out to this server, so the host needs no open port." }
                    @if !viewer.in_past() { p { a.button.primary href="/hosts/new" { "Add your first host" } } }
                }
            } @else {
                table.hosts {
                    thead { tr {
                        th scope="col" { "Host" } th scope="col" { "OS" } th scope="col" { "Last backup" } th scope="col" { "Schedule" }
                        th scope="col" { "Repository" } th scope="col" { "Snapshots" } th scope="col" { "Alerts" } th scope="col" { "Tags" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for h in d.hosts {
                            tr.row-link.(h.status) {
                                td {
                                    (status_dot(&h.status))
                                    a.row-anchor href={ "/hosts/" (h.id) } { (h.hostname) }
                                }
                                td { (h.os) "/" (h.arch) }
                                td {
                                    @match &h.last_backup {
                                        Some(b) => { (ago(d.now, &b.at)) " " (outcome(&b.status)) }
                                        None => span.muted { "never" },
                                    }
                                }
                                td { (schedule_cell(d.now, d.schedules.get(&h.id))) }
                                td { (bytes(h.repo_size_bytes)) }
                                td { (h.snapshot_count) }
                                td { (crate::alerts::alert_count_badge(&h.id, h.open_alerts)) }
                                td { @for t in &h.tags { span.tag { (t) } " " } }
                                td.actions {
                                    @if !viewer.in_past() { a.button.small href={ "/hosts/" (h.id) "/sources" } { "Run now…" } }
                                }
                            }
                        }
                    }
                }
            }
            p.muted.small { "Event log head: " code.hash { (d.head.0) ":" (d.head.1) } }
        },
    )
}

/// What a host's page shows.
pub struct HostPage<'a> {
    /// The host.
    pub host: &'a Host,
    /// Its settings (schedule version for the header).
    pub settings: Option<&'a HostSettings>,
    /// Its source groups (Run-now buttons).
    pub groups: &'a [GroupView],
    /// Its schedules in short.
    pub schedule: Option<&'a ScheduleCell>,
    /// Its snapshots, newest first.
    pub snapshots: &'a [SnapshotView],
    /// Its jobs, newest first.
    pub jobs: &'a [Job],
    /// The snapshots forget removed, newest removal first, with why.
    pub removed: &'a [projections::history::Removal],
    /// Now.
    pub now: Timestamp,
    /// Whether the viewer may run jobs and delete the host.
    pub can_manage: bool,
    /// The session's CSRF token for the forms.
    pub csrf: &'a str,
    /// Paths typed into the custom backup (kept when it fails).
    pub run_paths: &'a str,
    /// Why the custom backup failed.
    pub run_error: Option<&'a str>,
    /// Why deleting failed.
    pub delete_error: Option<&'a str>,
}

/// How many jobs the overview lists (the Jobs tab has more).
const OVERVIEW_JOBS: usize = 10;

/// `/hosts/{id}`: header, vitals, Run-now per source group, snapshots and recent jobs.
pub fn host_page(viewer: &Viewer, p: &HostPage<'_>) -> Markup {
    let h = p.host;
    let online = h.status == "online";
    let c = HostChrome {
        host: h,
        settings: p.settings,
        now: p.now,
    };
    layout(
        &h.hostname,
        viewer,
        html! {
            (chrome(&c, HostTab::Overview))
            section.tiles aria-label="Vitals" {
                div.tile {
                    span.num { @match &h.last_backup { Some(b) => (ago(p.now, &b.at)), None => "never" } }
                    span.label { "last backup" @if let Some(b) = &h.last_backup { " " (outcome(&b.status)) } }
                }
                div.tile #next-run {
                    span.num {
                        @match p.schedule.and_then(|s| s.next_run.as_ref()) {
                            Some(n) => (next_run_time(n)),
                            None => "—",
                        }
                    }
                    span.label {
                        @match p.schedule {
                            None => { "next run · " a href={ "/hosts/" (h.id) "/schedules" } { "no schedule" } }
                            Some(s) => {
                                "next scheduled run"
                                @if let (Some(at), Some(job)) = (&s.last_run_at, &s.last_job_id) {
                                    " · last " a href={ "/jobs/" (job) } { (ago(p.now, at)) }
                                    " " (outcome(s.last_run_status.as_deref().unwrap_or("queued")))
                                }
                            }
                        }
                    }
                }
                div.tile { span.num { (bytes(h.repo_size_bytes)) } span.label { "repository" } }
                div.tile { span.num { (h.snapshot_count) } span.label { "snapshots" } }
                div.tile { span.num { (h.open_alerts) } span.label { "open alerts" } }
            }
            @if p.can_manage {
                section.card #run {
                    div.page-head {
                        h2 { "Back up now" }
                        a href={ "/hosts/" (h.id) "/sources" } { "Source groups →" }
                    }
                    @if !online { p.muted { "The host is " (h.status) ": its agent must be connected." } }
                    div.row-buttons {
                        @for g in p.groups {
                            form.inline method="post" action={ "/hosts/" (h.id) "/sources/" (g.group.id) "/run" } {
                                input type="hidden" name="csrf_token" value=(p.csrf);
                                button.primary type="submit" disabled[!online] title=(crate::host::list_summary(&g.group.includes)) {
                                    "Run " (g.group.name)
                                }
                            }
                        }
                    }
                    details #custom-backup open[p.run_error.is_some() || !p.run_paths.is_empty()] {
                        summary { "Custom backup: paths typed here" }
                        form method="post" action={ "/hosts/" (h.id) "/run" } {
                            input type="hidden" name="csrf_token" value=(p.csrf);
                            div.field.invalid[p.run_error.is_some()] {
                                label for="f-paths" { "Paths to back up, one per line" }
                                textarea id="f-paths" name="paths" rows="3" aria-invalid=[p.run_error.map(|_| "true")]
                                    aria-describedby=[p.run_error.map(|_| "f-paths-error")] { (p.run_paths) }
                                @if let Some(e) = p.run_error { p.error id="f-paths-error" role="alert" { (e) } }
                            }
                            div.field {
                                label for="f-limit" { "Upload limit for this run, KiB/s (empty: none)" }
                                input id="f-limit" name="limit_upload_kbps" type="number" min="1" inputmode="numeric";
                            }
                            button.primary type="submit" disabled[!online] { "Run custom backup" }
                        }
                    }
                }
            }
            section.card {
                h2 #snapshots { "Snapshots" }
                @if p.snapshots.is_empty() {
                    p.muted { "No snapshots yet." }
                } @else {
                    table #snapshot-list {
                        thead { tr { th scope="col" { "ID" } th scope="col" { "Time" } th scope="col" { "Paths" } th scope="col" { "Tags" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for s in p.snapshots {
                                tr data-snapshot=(s.id) {
                                    td { code { (s.short_id) } } td { (s.time) } td { (s.paths.join(", ")) } td { (s.tags.join(", ")) }
                                    td { a href={ "/hosts/" (h.id) "/restore?snapshot=" (s.id) } { "Restore…" } }
                                }
                            }
                        }
                    }
                    @if p.snapshots.len() >= 2 {
                        (crate::restore::compare_form(&h.id, p.snapshots, "", "", None))
                    }
                }
            }
            (removed_snapshots(p))
            section.card {
                div.page-head {
                    h2 #jobs { "Recent jobs" }
                    a href={ "/hosts/" (h.id) "/jobs" } { "All jobs →" }
                }
                @if p.jobs.is_empty() {
                    p.muted { "No jobs yet." }
                } @else {
                    (jobs_table(&p.jobs[..p.jobs.len().min(OVERVIEW_JOBS)], p.groups, p.now))
                }
            }
            @if p.can_manage {
                section.card.danger {
                    h2 { "Danger zone" }
                    p { "Deleting the host revokes its agent, destroys its repository credentials here, and hides it. Its history stays in the audit log. The repository itself is not touched." }
                    form method="post" action={ "/hosts/" (h.id) "/delete" } {
                        input type="hidden" name="csrf_token" value=(p.csrf);
                        div.field.invalid[p.delete_error.is_some()] {
                            label for="f-confirm" { "Type the hostname, " code { (h.hostname) } ", to confirm" }
                            input id="f-confirm" name="confirm" type="text" autocomplete="off"
                                aria-invalid=[p.delete_error.map(|_| "true")]
                                aria-describedby=[p.delete_error.map(|_| "f-confirm-error")];
                            @if let Some(e) = p.delete_error { p.error id="f-confirm-error" role="alert" { (e) } }
                        }
                        button.danger type="submit" { "Delete host" }
                    }
                }
            }
        },
    )
}

/// A forget's retention policy in words.
fn describe_retention(v: &serde_json::Value) -> String {
    match serde_json::from_value::<domain::sources::RetentionPolicy>(v.clone()) {
        Ok(p) => p.describe(),
        Err(_) => v.to_string(),
    }
}

/// "Removed snapshots": per snapshot forget removed, the forget job and the policy version
/// that removed it, who set that policy and when (its event in the audit log).
fn removed_snapshots(p: &HostPage<'_>) -> Markup {
    let group_name = |gid: &Option<String>| -> Option<String> {
        let gid = gid.as_ref()?;
        Some(
            p.groups
                .iter()
                .find(|g| &g.group.id == gid)
                .map(|g| g.group.name.clone())
                .unwrap_or_else(|| gid.clone()),
        )
    };
    html! {
        section.card #removed-snapshots {
            h2 { "Removed snapshots" }
            @if p.removed.is_empty() {
                p.muted { "Forget has removed no snapshot of this host." }
            } @else {
                table.removed {
                    thead { tr { th scope="col" { "Snapshot" } th scope="col" { "Removed" } th scope="col" { "Why" } } }
                    tbody {
                        @for r in p.removed {
                            tr {
                                td { code title=(r.snapshot_id) { (r.snapshot_id.chars().take(8).collect::<String>()) } }
                                td { time datetime=(r.removed_at) { (crate::host::short_time(&r.removed_at)) } }
                                td.why {
                                    "removed by forget job " a href={ "/jobs/" (r.job_id) } { code { (r.job_id.chars().take(8).collect::<String>()) } }
                                    " (started by " code { (r.forget_actor) } ")"
                                    @if let Some(g) = group_name(&r.group_id) { " for group " strong { (g) } }
                                    ", policy "
                                    @match r.policy_seq {
                                        Some(seq) => a.policy href={ "/audit?after=" (seq - 1) "&limit=1" } { (describe_retention(&r.retention)) }
                                        None => span { (describe_retention(&r.retention)) }
                                    }
                                    @if let Some(actor) = &r.policy_actor { " set by " code { (actor) } }
                                    @if let Some(at) = &r.policy_changed_at { " at " time datetime=(at) { (crate::host::short_time(at)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a job's page shows.
pub struct JobPage<'a> {
    /// The job.
    pub job: &'a Job,
    /// Its host's name.
    pub hostname: &'a str,
    /// The stored log.
    pub lines: &'a [projections::jobs::StoredLine],
    /// Now.
    pub now: Timestamp,
}

/// `/jobs/{id}`: status, progress, the log. While the job runs, `app.js` follows
/// `/api/jobs/{id}/stream` and appends to the log until the operator scrolls up.
pub fn job_page(viewer: &Viewer, p: &JobPage<'_>) -> Markup {
    let j = p.job;
    let running = matches!(j.status.as_str(), "queued" | "dispatched" | "running");
    let done = matches!(j.status.as_str(), "succeeded" | "succeeded_with_warnings");
    let percent = if done {
        100.0
    } else {
        j.progress
            .as_ref()
            .and_then(|v| v.get("percent"))
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
    };
    layout(
        &format!("{} on {}", j.kind, p.hostname),
        viewer,
        html! {
            header.host-head {
                h1 { (j.kind) " on " a href={ "/hosts/" (j.host_id) } { code { (p.hostname) } } }
                p {
                    span #job-status { (outcome(if j.status == "dispatched" { "queued" } else { &j.status })) }
                    " queued " (ago(p.now, &j.queued_at))
                    @if let Some(f) = &j.finished_at { " · finished " (ago(p.now, f)) }
                }
                @if let Some(e) = &j.error { p.error.banner role="alert" { (e) } }
            }
            div.progress role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow=(format!("{percent:.0}")) {
                div #job-bar style=(format!("width: {percent:.1}%")) {}
            }
            p #job-progress.muted {
                @if let (true, Some(pr)) = (running, &j.progress) {
                    (format!("{:.1}", pr.get("percent").and_then(|v| v.as_f64()).unwrap_or(0.0))) "% · "
                    (bytes(pr.get("bytes_done").and_then(|v| v.as_i64()).unwrap_or(0))) " of "
                    (bytes(pr.get("total_bytes").and_then(|v| v.as_i64()).unwrap_or(0))) " · "
                    (pr.get("files_done").and_then(|v| v.as_i64()).unwrap_or(0)) " of "
                    (pr.get("total_files").and_then(|v| v.as_i64()).unwrap_or(0)) " files"
                    @if let Some(eta) = pr.get("seconds_remaining").and_then(|v| v.as_i64()) { " · about " (eta) " s left" }
                }
            }
            @if let Some(stats) = &j.stats {
                section.card {
                    h2 { "Summary" }
                    dl.kv {
                        @for k in ["files_new", "files_changed", "files_unmodified", "total_files_processed"] {
                            @if let Some(v) = stats.get(k) { dt { (k.replace('_', " ")) } dd { (v) } }
                        }
                        @if let Some(v) = stats.get("total_bytes_processed").and_then(|v| v.as_i64()) { dt { "processed" } dd { (bytes(v)) } }
                        @if let Some(v) = stats.get("data_added").and_then(|v| v.as_i64()) { dt { "data added" } dd { (bytes(v)) } }
                        @if let Some(v) = stats.get("total_duration").and_then(|v| v.as_f64()) { dt { "duration" } dd { (format!("{v:.2} s")) } }
                        @if let Some(v) = stats.get("snapshot_id").and_then(|v| v.as_str()) { dt { "snapshot" } dd { code { (v) } } }
                    }
                }
            }
            @if !j.warnings.is_empty() {
                section.card { h2 { "Warnings" } ul { @for w in &j.warnings { li { (w) } } } }
            }
            section.card {
                h2 { "Log" }
                pre #job-log.log data-job=(j.id) data-live=(if running { "1" } else { "0" }) data-lines=(p.lines.len()) {
                    @for l in p.lines { span.(l.stream) { (l.text) "\n" } }
                }
            }
        },
    )
}

/// The add-host form, or its result.
#[derive(Debug, Default)]
pub struct AddHostPage {
    /// CSRF token of the session.
    pub csrf: String,
    /// Typed values (the password is never echoed).
    pub hostname: String,
    /// Typed repository URL.
    pub repo_url: String,
    /// Typed repository user.
    pub repo_username: String,
    /// Messages next to fields.
    pub field_errors: Vec<(String, String)>,
    /// After success: (token id, install command, expires at).
    pub minted: Option<(String, String, String)>,
}

/// `/hosts/new`: hostname and repository → the install command, a copy button, and a panel
/// that turns to "connected" when the agent arrives.
pub fn add_host(viewer: &Viewer, p: &AddHostPage) -> Markup {
    let err = |name: &str| {
        p.field_errors
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| m.as_str())
    };
    layout(
        "Add host",
        viewer,
        html! {
            section.card.narrow.wide {
                h1 { "Add a host" }
                @if let Some((token_id, command, expires)) = &p.minted {
                    p { "Run this on " strong { (p.hostname) } " as root. It installs the agent, enrols it and starts it. The token works once, until " (expires) "." }
                    pre.command { code #install-command { (command) } }
                    p { button.primary type="button" data-copy="install-command" { "Copy" } }
                    div.await data-follow-token=(token_id) {
                        span.dot {} " " span.await-status { "Waiting for the agent…" }
                    }
                    p { a href="/" { "Back to the fleet" } }
                } @else {
                    form method="post" action="/hosts/new" {
                        input type="hidden" name="csrf_token" value=(p.csrf);
                        (crate::field("Hostname", "hostname", "text", &p.hostname, err("hostname"), Some("How the host is shown here."), "off"))
                        (crate::field("Repository URL", "repo_url", "text", &p.repo_url, err("repo_url"), Some("A path or a restic location such as rest:https://backup.example.org/web-1"), "off"))
                        (crate::optional_field("Repository user (REST server)", "repo_username", &p.repo_username, err("repo_username")))
                        (crate::field("Repository password", "repo_password", "password", "", err("repo_password"), Some("Stored encrypted; sent only to this host's agent."), "new-password"))
                        button.primary type="submit" { "Create install command" }
                    }
                }
            }
        },
    )
}

/// One row of the audit table.
pub struct AuditRow {
    /// Position in the log.
    pub seq: i64,
    /// Event type.
    pub event_type: String,
    /// Stream.
    pub stream: String,
    /// Who.
    pub actor: String,
    /// When.
    pub occurred_at: String,
    /// The payload, pretty JSON.
    pub data: String,
    /// The host it concerns, if any (its timeline: `/audit?host=`).
    pub host_id: Option<String>,
    /// The job it concerns, if any (`/jobs/{id}`).
    pub job_id: Option<String>,
}

/// What the chain verifier knows, for the audit page's banner.
#[derive(Default)]
pub struct ChainBanner {
    /// Every row up to here links correctly.
    pub verified_seq: i64,
    /// The hash at `verified_seq`.
    pub verified_hash: String,
    /// False once a broken link was found.
    pub ok: bool,
    /// The first bad seq, when broken.
    pub broken_at: Option<i64>,
    /// Why it is broken.
    pub reason: Option<String>,
}

/// The audit page.
#[derive(Default)]
pub struct AuditPage {
    /// Filter values as typed: actor, type, host, since, until.
    pub actor: String,
    /// Type filter.
    pub event_type: String,
    /// Host filter.
    pub host: String,
    /// Since filter.
    pub since: String,
    /// Until filter.
    pub until: String,
    /// Messages next to filter fields.
    pub field_errors: Vec<(String, String)>,
    /// The events.
    pub rows: Vec<AuditRow>,
    /// Link to the next page, if any.
    pub next_href: Option<String>,
    /// Chain head (seq, hash).
    pub head: (i64, String),
    /// The verifier's state.
    pub chain: ChainBanner,
    /// This page with its filters, without `as_of` (where the time slider navigates).
    pub self_href: String,
    /// The export of the filtered range (`/api/audit/export?…`).
    pub export_href: String,
    /// The seq a past view shows (the slider's position).
    pub as_of: Option<i64>,
}

fn hash_prefix(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// The chain banner: verified through, head, or red when a link is broken.
fn chain_banner(p: &AuditPage) -> Markup {
    let c = &p.chain;
    html! {
        @if c.ok {
            p.chain-banner.ok role="status" {
                "Chain verified through seq " (c.verified_seq)
                " · head " (p.head.0) " " code.hash title=(p.head.1) { (hash_prefix(&p.head.1)) }
            }
        } @else {
            p.chain-banner.broken.error role="alert" {
                strong { "Chain broken at seq " (c.broken_at.map(|s| s.to_string()).unwrap_or_else(|| "?".into())) }
                @if let Some(r) = &c.reason { ": " (r) }
                " · verified through seq " (c.verified_seq)
                " · head " (p.head.0) " " code.hash title=(p.head.1) { (hash_prefix(&p.head.1)) }
            }
        }
    }
}

/// The time slider: moves the whole UI's `as_of` (app.js navigates on change).
fn time_slider(p: &AuditPage) -> Markup {
    let max = p.head.0.max(1);
    let at = p.as_of.unwrap_or(max).clamp(1, max);
    html! {
        div.time-travel data-as-of-href=(p.self_href) {
            label for="as-of-seq" { "View the fleet as of seq " output #as-of-seq-value for="as-of-seq" { (at) } }
            input #as-of-seq type="range" min="1" max=(max) step="1" value=(at);
            label for="as-of-time" { "or as of a time" }
            input #as-of-time type="datetime-local" step="1";
        }
    }
}

/// `/audit`: the event log as a table, filterable, paged, each row expandable to its JSON.
pub fn audit_page(viewer: &Viewer, p: &AuditPage) -> Markup {
    let err = |name: &str| {
        p.field_errors
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| m.as_str())
    };
    layout(
        "Audit",
        viewer,
        html! {
            h1 { "Audit log" }
            (chain_banner(p))
            p.muted.small { "The event log itself, filtered. Head " code.hash { (p.head.0) ":" (p.head.1) } }
            (time_slider(p))
            p { a.export href=(p.export_href) download { "Export this range (JSONL)" } }
            form.filters method="get" action="/audit" {
                (crate::optional_field("Actor (user:…, agent:…, system:…)", "actor", &p.actor, err("actor")))
                (crate::optional_field("Type", "type", &p.event_type, err("type")))
                (crate::optional_field("Host id", "host", &p.host, err("host")))
                (crate::optional_field("Since (RFC 3339)", "since", &p.since, err("since")))
                (crate::optional_field("Until (RFC 3339)", "until", &p.until, err("until")))
                button.primary type="submit" { "Filter" }
            }
            @if p.rows.is_empty() {
                p.muted { "No events match." }
            } @else {
                table.audit {
                    thead { tr { th scope="col" { "Seq" } th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Actor" } th scope="col" { "Stream" } } }
                    tbody {
                        @for r in &p.rows {
                            tr {
                                td { (r.seq) }
                                td { (r.occurred_at) }
                                td {
                                    details {
                                        summary { (r.event_type) }
                                        pre.json { (r.data) }
                                    }
                                }
                                td { a.timeline href={ "/audit?actor=" (crate::query_encode(&r.actor)) } { code { (r.actor) } } }
                                td {
                                    code { (r.stream) }
                                    @if let Some(h) = &r.host_id { " " a.timeline href={ "/audit?host=" (crate::query_encode(h)) } { "host timeline" } }
                                    @if let Some(j) = &r.job_id { " " a.timeline href={ "/jobs/" (crate::query_encode(j)) } { "job" } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &p.next_href { p { a.button href=(next) { "Next page →" } } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn host(id: &str, name: &str) -> Host {
        Host {
            id: id.into(),
            hostname: name.into(),
            status: "online".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            restic_version: "0.14.0".into(),
            last_seen_at: None,
            last_backup: Some(projections::hosts::LastBackup {
                at: "2026-11-28T10:00:00.000000Z".into(),
                status: "failed".into(),
            }),
            snapshot_count: 3,
            repo_size_bytes: 5 * 1024 * 1024,
            open_alerts: 0,
            tags: vec!["db".into()],
            enrolled_at: "2026-11-01T00:00:00.000000Z".into(),
            credentials_version: 1,
            applied_credentials_version: 1,
        }
    }

    #[test]
    fn formats_sizes_and_ages() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        let now: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        assert_eq!(ago(now, "2026-11-28T11:59:50Z"), "just now");
        assert_eq!(ago(now, "2026-11-28T11:55:00Z"), "5 min ago");
        assert_eq!(ago(now, "2026-11-28T09:00:00Z"), "3 h ago");
        assert_eq!(ago(now, "2026-11-26T12:00:00Z"), "2 days ago");
        assert_eq!(ago(now, "whenever"), "whenever");
    }

    #[test]
    fn dashboard_rows_link_to_hosts_and_escape_names() {
        let hosts = vec![host("h1", "web-1"), host("h2", "<b>x</b>")];
        let summary = FleetSummary {
            hosts: 2,
            online: 2,
            offline: 0,
            failing: 2,
            snapshots: 6,
            repo_size_bytes: 10 << 20,
        };
        let page = dashboard(
            &Viewer {
                username: Some("admin".into()),
                role: Some("admin".into()),
                csrf_token: Some("t".into()),
                open_alerts: None,
                as_of: None,
            },
            &Dashboard {
                summary: &summary,
                hosts: &hosts,
                now: "2026-11-28T12:00:00Z".parse().unwrap(),
                head: (9, "ab".into()),
                schedules: &HashMap::new(),
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        let links: Vec<_> = doc
            .select(&sel("tr.row-link a.row-anchor"))
            .map(|a| a.value().attr("href").unwrap().to_string())
            .collect();
        assert_eq!(links, ["/hosts/h1", "/hosts/h2"]);
        assert!(!page.contains("<b>x</b>"));
        assert!(page.contains("2 h ago") || page.contains("h ago"));
        assert_eq!(
            doc.select(&sel(".tile.bad")).count(),
            1,
            "failing hosts are flagged"
        );
        assert!(page.contains("10.0 MiB"));
    }

    #[test]
    fn empty_dashboard_points_to_adding_a_host() {
        let page = dashboard(
            &Viewer::default(),
            &Dashboard {
                summary: &FleetSummary::default(),
                hosts: &[],
                now: "2026-11-28T12:00:00Z".parse().unwrap(),
                head: (0, "00".into()),
                schedules: &HashMap::new(),
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        assert_eq!(doc.select(&sel(".empty a[href='/hosts/new']")).count(), 1);
    }
}
