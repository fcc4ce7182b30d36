//! A host's sub-pages: the shared header and tab bar, Sources, Schedules, Repo and Jobs.
//!
//! Forms keep what the operator typed ([`Typed`]) and show each message next to its field
//! ([`Errors`]); the server decides which field a message belongs to.

use domain::sources::{describe_cron, SourceGroup};
use domain::Timestamp;
use maud::{html, Markup};
use projections::config::{GroupView, HostSettings, PendingRun, RepoStatus, ScheduleView};
use projections::hosts::Host;
use projections::jobs::Job;

use crate::fleet::{ago, bytes, outcome, status_dot};
use crate::{layout, Viewer};

/// What a form sent, field by field, as typed (a field may repeat: check boxes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed(pub Vec<(String, String)>);

impl Typed {
    /// The first value of a field, or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of a field.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a check box was sent checked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "off")
    }

    /// Sets one value (replacing the field's values).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.into()));
    }

    /// Adds one more value.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_string(), value.into()));
    }
}

/// Messages next to fields: (field name, message). An empty name is a message about the
/// whole form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors(pub Vec<(String, String)>);

impl Errors {
    /// The message for a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, m)| m.as_str())
    }

    /// Adds one.
    pub fn add(&mut self, name: &str, message: impl Into<String>) {
        self.0.push((name.to_string(), message.into()));
    }

    /// No messages.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The typed form of a stored group (the editor's starting values).
pub fn group_values(g: &SourceGroup) -> Typed {
    let mut t = Typed::default();
    t.set("name", &g.name);
    t.set("includes", g.includes.join("\n"));
    t.set("excludes", g.excludes.join("\n"));
    let r = &g.retention_policy;
    for (k, v) in [
        ("keep_last", r.keep_last),
        ("keep_hourly", r.keep_hourly),
        ("keep_daily", r.keep_daily),
        ("keep_weekly", r.keep_weekly),
        ("keep_monthly", r.keep_monthly),
        ("keep_yearly", r.keep_yearly),
    ] {
        t.set(k, v.map(|v| v.to_string()).unwrap_or_default());
    }
    t.set("keep_within", r.keep_within.clone().unwrap_or_default());
    t.set("retry_max", g.retry_max.to_string());
    t.set("retry_backoff_seconds", g.retry_backoff_seconds.to_string());
    t
}

/// The starting values of a new group.
pub fn new_group_values() -> Typed {
    let mut t = group_values(&SourceGroup::default_for_enrolment(String::new(), vec![]));
    t.set("name", "");
    t
}

/// The header and tab bar every host page shares.
pub struct HostChrome<'a> {
    /// The host.
    pub host: &'a Host,
    /// Its settings (schedule version and what the agent applied).
    pub settings: Option<&'a HostSettings>,
    /// Now, for relative times.
    pub now: Timestamp,
}

/// The host's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostTab {
    /// `/hosts/{id}`.
    Overview,
    /// `/hosts/{id}/sources`.
    Sources,
    /// `/hosts/{id}/schedules`.
    Schedules,
    /// `/hosts/{id}/repo`.
    Repo,
    /// `/hosts/{id}/jobs`.
    Jobs,
    /// `/hosts/{id}/restore`.
    Restore,
}

/// "schedule v4 · agent in sync" or "schedule v4 · agent at v3".
pub(crate) fn sync_state(s: &HostSettings) -> Markup {
    let in_sync = s.applied_version >= s.schedule_version;
    html! {
        span.version title="The server's version of this host's schedules and sources, and the version its agent has armed" {
            "schedule v" (s.schedule_version) " · "
            @if in_sync { span.badge.good { "agent in sync" } }
            @else { span.badge.warn { "agent at v" (s.applied_version) } }
        }
    }
}

pub(crate) fn chrome(c: &HostChrome<'_>, tab: HostTab) -> Markup {
    let h = c.host;
    let base = format!("/hosts/{}", h.id);
    let tabs = [
        (HostTab::Overview, "Overview", base.clone()),
        (HostTab::Sources, "Sources", format!("{base}/sources")),
        (HostTab::Schedules, "Schedules", format!("{base}/schedules")),
        (HostTab::Repo, "Repository", format!("{base}/repo")),
        (HostTab::Jobs, "Jobs", format!("{base}/jobs")),
        (HostTab::Restore, "Restore", format!("{base}/restore")),
    ];
    html! {
        header.host-head {
            h1 { (status_dot(&h.status)) " " code { (h.hostname) } }
            p.muted {
                (h.status) " · " (h.os) "/" (h.arch) " · agent " (h.agent_version)
                " · restic " (if h.restic_version.is_empty() { "not found" } else { &h.restic_version })
                @if let Some(seen) = &h.last_seen_at { " · seen " (ago(c.now, seen)) }
            }
            p.small {
                @if let Some(s) = c.settings { (sync_state(s)) " " }
                @for t in &h.tags { span.tag { (t) } " " }
                @if h.open_alerts > 0 { " " (crate::alerts::alert_count_badge(&h.id, h.open_alerts)) }
            }
        }
        nav.tabs aria-label="Host sections" {
            @for (t, label, href) in &tabs {
                a href=(href) aria-current=[(*t == tab).then_some("page")] { (label) }
            }
        }
    }
}

/// "in 3 h", "5 min ago": a time relative to now, either way.
pub fn relative(now: Timestamp, at: &str) -> String {
    let Ok(t) = at.parse::<Timestamp>() else {
        return at.to_string();
    };
    let secs = (t.unix_micros() - now.unix_micros()) / 1_000_000;
    if secs <= 0 {
        return ago(now, at);
    }
    match secs {
        s if s < 60 => "in under a minute".into(),
        s if s < 3600 => format!("in {} min", (s + 30) / 60),
        s if s < 86_400 => format!("in {} h", (s + 1800) / 3600),
        s => format!("in {} days", (s + 43_200) / 86_400),
    }
}

/// "2026-11-28 03:00 UTC".
pub fn short_time(at: &str) -> String {
    match at.parse::<Timestamp>() {
        Ok(t) => {
            let s = t.to_string();
            format!("{} UTC", s.get(..16).unwrap_or(&s).replace('T', " "))
        }
        Err(_) => at.to_string(),
    }
}

/// A time as "in 3 h" with the exact time on hover.
fn when(now: Timestamp, at: &str) -> Markup {
    html! { time datetime=(at) title=(short_time(at)) { (relative(now, at)) } }
}

/// "/etc, /home and 2 more".
pub fn list_summary(items: &[String]) -> String {
    match items.len() {
        0 => "—".into(),
        1..=3 => items.join(", "),
        n => format!("{} and {} more", items[..2].join(", "), n - 2),
    }
}

fn retry_summary(g: &SourceGroup) -> String {
    match g.retry_max {
        0 => "no retries".into(),
        1 => format!("1 retry, {} backoff", duration(g.retry_backoff_seconds)),
        n => format!("{n} retries, {} backoff", duration(g.retry_backoff_seconds)),
    }
}

/// "300 s" → "5 min".
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 && s % 60 == 0 => format!("{} min", s / 60),
        s if s < 7200 => format!("{s} s"),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{} min", s / 60),
    }
}

/// One labelled input.
#[derive(Default)]
pub(crate) struct Input<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) label: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) value: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) hint: Option<&'a str>,
    pub(crate) required: bool,
    pub(crate) min: Option<&'a str>,
    pub(crate) max: Option<&'a str>,
    pub(crate) placeholder: Option<&'a str>,
    pub(crate) autocomplete: Option<&'a str>,
}

impl Input<'_> {
    pub(crate) fn render(&self) -> Markup {
        let id = if self.id.is_empty() {
            format!("f-{}", self.name)
        } else {
            self.id.to_string()
        };
        let err_id = format!("{id}-error");
        let hint_id = format!("{id}-hint");
        let described: Vec<&str> = [
            self.error.map(|_| err_id.as_str()),
            self.hint.map(|_| hint_id.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let described = described.join(" ");
        let kind = if self.kind.is_empty() {
            "text"
        } else {
            self.kind
        };
        html! {
            div.field.invalid[self.error.is_some()] {
                label for=(id) { (self.label) }
                input id=(id) name=(self.name) type=(kind) value=(self.value)
                    required[self.required]
                    min=[self.min] max=[self.max] placeholder=[self.placeholder]
                    inputmode=[(kind == "number").then_some("numeric")]
                    autocomplete=(self.autocomplete.unwrap_or("off"))
                    aria-invalid=[self.error.map(|_| "true")]
                    aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
                @if let Some(h) = self.hint { p.hint id=(hint_id) { (h) } }
                @if let Some(e) = self.error { p.error id=(err_id) role="alert" { (e) } }
            }
        }
    }
}

/// A labelled text area, one item per line.
pub(crate) fn text_area(
    name: &str,
    label: &str,
    value: &str,
    error: Option<&str>,
    hint: Option<&str>,
    rows: u32,
) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described: Vec<&str> = [
        error.map(|_| err_id.as_str()),
        hint.map(|_| hint_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let described = described.join(" ");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows=(rows) spellcheck="false"
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(!described.is_empty()).then_some(described.as_str())] { (value) }
            @if let Some(h) = hint { p.hint id=(hint_id) { (h) } }
            @if let Some(e) = error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

pub(crate) fn csrf_input(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(csrf); }
}

pub(crate) fn banner(errors: &Errors) -> Markup {
    html! {
        @if let Some(e) = errors.get("") { p.error.banner role="alert" { (e) } }
    }
}

fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = text { p.notice role="status" { (n) } }
    }
}

/// The warning above every hook editor.
pub const HOOKS_WARNING: &str = "Hooks run as the agent's service user (root on most hosts) with /bin/sh -c, before and after backups only. A failing pre-hook skips the backup; the post-hook always runs and sees RM_JOB_STATUS.";

/// A pre/post hook editor (admins only).
pub struct HooksEditor<'a> {
    /// Where the form posts.
    pub action: String,
    /// What is stored, or what was typed.
    pub typed: &'a Typed,
    /// Messages.
    pub errors: &'a Errors,
    /// Heading.
    pub title: &'a str,
    /// One line under the heading.
    pub intro: &'a str,
    /// A "saved" line.
    pub saved: bool,
}

fn hooks_editor(h: &HooksEditor<'_>, csrf: &str) -> Markup {
    html! {
        section.card #hooks aria-labelledby="hooks-title" {
            h2 #hooks-title { (h.title) }
            p.muted { (h.intro) }
            p.warning role="note" { strong { "Careful: " } (HOOKS_WARNING) }
            @if h.saved { p.notice role="status" { "Hooks saved." } }
            (banner(h.errors))
            form method="post" action=(h.action) {
                (csrf_input(csrf))
                (text_area("pre_hook", "Pre-hook (runs before the backup)", h.typed.get("pre_hook"),
                    h.errors.get("pre_hook"), Some("Shell script; empty for none."), 4))
                (text_area("post_hook", "Post-hook (runs after the backup, also when it failed)", h.typed.get("post_hook"),
                    h.errors.get("post_hook"), Some("Shell script; empty for none."), 4))
                button.primary type="submit" { "Save hooks" }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sources

/// Run-now of a group that failed, shown under its row.
pub struct RunFailure {
    /// The group.
    pub group_id: String,
    /// The limits as typed.
    pub typed: Typed,
    /// Messages (`limit_upload_kbps`, `limit_download_kbps`, or `""`).
    pub errors: Errors,
}

/// A refused delete.
pub struct DeleteRefusal {
    /// The group's name.
    pub group_name: String,
    /// Why.
    pub message: String,
    /// The schedules that use it: (schedule id, cron in words).
    pub schedules: Vec<(String, String)>,
}

/// `/hosts/{id}/sources`.
pub struct SourcesPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The groups, oldest first.
    pub groups: &'a [GroupView],
    /// The schedules (to say which use a group).
    pub schedules: &'a [ScheduleView],
    /// Whether the viewer may change things and run backups.
    pub can_manage: bool,
    /// CSRF token.
    pub csrf: &'a str,
    /// A failed Run-now.
    pub run_failure: Option<&'a RunFailure>,
    /// A refused delete.
    pub delete_refusal: Option<&'a DeleteRefusal>,
    /// The host-wide hooks (admins only).
    pub host_hooks: Option<HooksEditor<'a>>,
    /// A line at the top ("Group saved.").
    pub notice: Option<&'a str>,
}

/// `/hosts/{id}/sources`: the groups, each row opening its editor, with Run-now and Delete.
pub fn sources_page(viewer: &Viewer, p: &SourcesPage<'_>) -> Markup {
    let h = p.chrome.host;
    let online = h.status == "online";
    layout(
        &format!("Sources · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Sources))
            (notice(p.notice))
            @if let Some(r) = p.delete_refusal {
                div.error.banner role="alert" #delete-refusal {
                    p { "Cannot delete " strong { (r.group_name) } ": " (r.message) }
                    @if !r.schedules.is_empty() {
                        p { "Used by these schedules; remove the group from them first:" }
                        ul {
                            @for (sid, words) in &r.schedules {
                                li { a href={ "/hosts/" (h.id) "/schedules/" (sid) } { (words) } }
                            }
                        }
                    }
                }
            }
            section.card {
                div.page-head {
                    h2 { "Source groups" }
                    @if p.can_manage { a.button.primary href={ "/hosts/" (h.id) "/sources/new" } { "New group" } }
                }
                p.muted.small { "A group is what gets backed up together; its name is also the snapshot tag. Schedules pick groups." }
                @if !online && p.can_manage {
                    p.muted.small { "The host is " (h.status) ": Run now needs its agent connected." }
                }
                table.groups {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Paths" } th scope="col" { "Retention" }
                        th scope="col" { "Retry" } th scope="col" { "Schedules" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for g in p.groups {
                            (group_row(p, g, online))
                        }
                    }
                }
            }
            @if let Some(hooks) = &p.host_hooks { (hooks_editor(hooks, p.csrf)) }
        },
    )
}

fn group_row(p: &SourcesPage<'_>, g: &GroupView, online: bool) -> Markup {
    let h = p.chrome.host;
    let gr = &g.group;
    let using: Vec<&ScheduleView> = p
        .schedules
        .iter()
        .filter(|s| s.schedule.source_group_ids.contains(&gr.id))
        .collect();
    let failure = p.run_failure.filter(|f| f.group_id == gr.id);
    let empty = Typed::default();
    let typed = failure.map(|f| &f.typed).unwrap_or(&empty);
    let no_errors = Errors::default();
    let errors = failure.map(|f| &f.errors).unwrap_or(&no_errors);
    let limits_open = !typed.get("limit_upload_kbps").is_empty()
        || !typed.get("limit_download_kbps").is_empty()
        || errors.get("limit_upload_kbps").is_some()
        || errors.get("limit_download_kbps").is_some();
    let up_id = format!("f-up-{}", gr.id);
    let down_id = format!("f-down-{}", gr.id);
    html! {
        tr.row-link data-group=(gr.name) {
            td {
                a.row-anchor href={ "/hosts/" (h.id) "/sources/" (gr.id) } { (gr.name) }
                @if g.has_pre_hook || g.has_post_hook { " " span.tag title="This group has its own hooks" { "hooks" } }
            }
            td {
                code.small { (list_summary(&gr.includes)) }
                @if !gr.excludes.is_empty() {
                    br; span.muted.small { "excluding " (list_summary(&gr.excludes)) }
                }
            }
            td { (gr.retention_policy.describe()) }
            td { (retry_summary(gr)) }
            td {
                @if using.is_empty() { span.muted { "none" } }
                @else { (using.len()) }
            }
            td.actions {
                @if p.can_manage {
                    div.row-buttons {
                        form.inline.run method="post" action={ "/hosts/" (h.id) "/sources/" (gr.id) "/run" } {
                            (csrf_input(p.csrf))
                            details.limits open[limits_open] {
                                summary.small { "limits" }
                                div.limit-fields {
                                    label for=(up_id) { "up KiB/s" }
                                    input.tiny id=(up_id) name="limit_upload_kbps" type="number" min="1" inputmode="numeric"
                                        value=(typed.get("limit_upload_kbps"))
                                        aria-invalid=[errors.get("limit_upload_kbps").map(|_| "true")];
                                    label for=(down_id) { "down KiB/s" }
                                    input.tiny id=(down_id) name="limit_download_kbps" type="number" min="1" inputmode="numeric"
                                        value=(typed.get("limit_download_kbps"))
                                        aria-invalid=[errors.get("limit_download_kbps").map(|_| "true")];
                                }
                            }
                            button.primary.small type="submit" disabled[!online]
                                title=[(!online).then_some("The agent is not connected")] { "Run now" }
                        }
                        form.inline method="post" action={ "/hosts/" (h.id) "/sources/" (gr.id) "/delete" }
                            data-confirm={ "Delete the source group " (gr.name) "? Its snapshots stay in the repository." } {
                            (csrf_input(p.csrf))
                            button.link.danger-text type="submit" { "Delete" }
                        }
                    }
                }
            }
        }
        @if let Some(f) = failure {
            tr.row-error {
                td colspan="6" {
                    @for (_, m) in &f.errors.0 {
                        p.error role="alert" { "Run now of " (gr.name) ": " (m) }
                    }
                }
            }
        }
    }
}

/// `/hosts/{id}/sources/new` and `/hosts/{id}/sources/{gid}`.
pub struct GroupFormPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// `None` for a new group.
    pub group_id: Option<&'a str>,
    /// Values as stored or typed.
    pub typed: &'a Typed,
    /// Messages.
    pub errors: &'a Errors,
    /// CSRF token.
    pub csrf: &'a str,
    /// Whether the viewer may save.
    pub can_manage: bool,
    /// The group's hooks (admins editing an existing group only).
    pub hooks: Option<HooksEditor<'a>>,
    /// The group's own hook flags, for non-admins.
    pub hook_flags: Option<(bool, bool)>,
    /// Schedules using this group: (id, words).
    pub used_by: &'a [(String, String)],
    /// A "saved" line.
    pub notice: Option<&'a str>,
}

/// The group editor: name, paths, the keep grid, retries; hooks below for admins.
pub fn group_form(viewer: &Viewer, p: &GroupFormPage<'_>) -> Markup {
    let h = p.chrome.host;
    let t = p.typed;
    let e = p.errors;
    let (title, action) = match p.group_id {
        None => (
            "New source group".to_string(),
            format!("/hosts/{}/sources/new", h.id),
        ),
        Some(gid) => (
            format!("Source group {}", t.get("name")),
            format!("/hosts/{}/sources/{gid}", h.id),
        ),
    };
    let keep = |name: &'static str, label: &'static str| -> Markup {
        Input {
            name,
            label,
            kind: "number",
            value: t.get(name),
            error: e.get(name),
            min: Some("1"),
            max: Some("100000"),
            ..Default::default()
        }
        .render()
    };
    layout(
        &format!("{title} · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Sources))
            p.small { a href={ "/hosts/" (h.id) "/sources" } { "← All source groups" } }
            (notice(p.notice))
            section.card {
                h2 { (title) }
                (banner(e))
                form.group-form method="post" action=(action) {
                    (csrf_input(p.csrf))
                    (Input { name: "name", label: "Name", value: t.get("name"), error: e.get("name"), required: true,
                        hint: Some("Also the snapshot tag: letters, digits, '.', '-' and '_'."), ..Default::default() }.render())
                    div.grid-2 {
                        (text_area("includes", "Paths to back up, one per line", t.get("includes"), e.get("includes"), None, 5))
                        (text_area("excludes", "Exclude patterns, one per line", t.get("excludes"), e.get("excludes"),
                            Some("restic --exclude patterns, e.g. *.tmp or /home/*/.cache"), 5))
                    }
                    fieldset.keep {
                        legend { "Retention: snapshots that forget keeps" }
                        p.hint { "Leave a rule empty to not use it. With no rule at all, forget keeps everything." }
                        div.keep-grid {
                            (keep("keep_last", "Last"))
                            (keep("keep_hourly", "Hourly"))
                            (keep("keep_daily", "Daily"))
                            (keep("keep_weekly", "Weekly"))
                            (keep("keep_monthly", "Monthly"))
                            (keep("keep_yearly", "Yearly"))
                        }
                        (Input { name: "keep_within", label: "Keep everything within", value: t.get("keep_within"),
                            error: e.get("keep_within"), placeholder: Some("e.g. 30d"),
                            hint: Some("A restic duration: 30d, 12h, 1y6m (units y, m, d, h)."), ..Default::default() }.render())
                        @if let (Some(gid), false) = (p.group_id, viewer.in_past()) {
                            div.what-if data-what-if={ "/api/hosts/" (h.id) "/source-groups/" (gid) "/what-if" } data-csrf=(p.csrf) {
                                button #preview-retention type="button" { "Preview retention" }
                                span.hint { " Which of this group's snapshots these rules would keep and remove, with restic's reasons — nothing is saved." }
                                div #what-if-result aria-live="polite" {}
                            }
                        }
                    }
                    fieldset.keep {
                        legend { "When a run cannot happen or fails" }
                        div.grid-2 {
                            (Input { name: "retry_max", label: "Retries", kind: "number", value: t.get("retry_max"),
                                error: e.get("retry_max"), min: Some("0"), max: Some("100"),
                                hint: Some("0 to 100; a missed or failed scheduled run is tried again this often."), ..Default::default() }.render())
                            (Input { name: "retry_backoff_seconds", label: "Wait before a retry, seconds", kind: "number",
                                value: t.get("retry_backoff_seconds"), error: e.get("retry_backoff_seconds"),
                                min: Some("0"), max: Some("604800"),
                                hint: Some("Multiplied by the attempt number; at most a week."), ..Default::default() }.render())
                        }
                    }
                    @if p.can_manage {
                        button.primary type="submit" { @if p.group_id.is_some() { "Save group" } @else { "Create group" } }
                    } @else {
                        p.muted { "Your role can look but not change." }
                    }
                }
            }
            @if let Some(hooks) = &p.hooks {
                (hooks_editor(hooks, p.csrf))
            } @else if p.group_id.is_some() {
                @if let Some((pre, post)) = p.hook_flags {
                    @if pre || post {
                        section.card {
                            h2 { "Hooks" }
                            p.muted { "This group has "
                                @if pre && post { "a pre- and a post-hook" } @else if pre { "a pre-hook" } @else { "a post-hook" }
                                ". Only administrators can see and change hooks." }
                        }
                    }
                }
            } @else if viewer.role.as_deref() == Some("admin") {
                p.muted.small { "Hooks can be set once the group exists." }
            }
            @if let Some(gid) = p.group_id {
                @if p.can_manage {
                    section.card.danger {
                        h2 { "Delete this group" }
                        @if p.used_by.is_empty() {
                            p { "Its snapshots stay in the repository; forget no longer prunes them by this group's rules." }
                        } @else {
                            p { "Used by these schedules; remove the group from them first:" }
                            ul { @for (sid, words) in p.used_by { li { a href={ "/hosts/" (h.id) "/schedules/" (sid) } { (words) } } } }
                        }
                        form method="post" action={ "/hosts/" (h.id) "/sources/" (gid) "/delete" }
                            data-confirm={ "Delete the source group " (t.get("name")) "?" } {
                            (csrf_input(p.csrf))
                            button.danger type="submit" { "Delete group" }
                        }
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Schedules

/// A schedule with its next fire.
pub struct ScheduleRow {
    /// The schedule.
    pub view: ScheduleView,
    /// When it fires next (`None` when paused).
    pub next_run_at: Option<String>,
}

/// `/hosts/{id}/schedules`.
pub struct SchedulesPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The schedules.
    pub rows: &'a [ScheduleRow],
    /// The host's groups (names for ids).
    pub groups: &'a [GroupView],
    /// Whether the viewer may change things.
    pub can_manage: bool,
    /// CSRF token.
    pub csrf: &'a str,
    /// A failed action on a row: (schedule id, message).
    pub row_error: Option<(&'a str, &'a str)>,
    /// A line at the top.
    pub notice: Option<&'a str>,
}

fn group_name<'a>(groups: &'a [GroupView], id: &'a str) -> &'a str {
    groups
        .iter()
        .find(|g| g.group.id == id)
        .map(|g| g.group.name.as_str())
        .unwrap_or(id)
}

/// `/hosts/{id}/schedules`: status, when, which groups, next and last run.
pub fn schedules_page(viewer: &Viewer, p: &SchedulesPage<'_>) -> Markup {
    let h = p.chrome.host;
    let now = p.chrome.now;
    let online = h.status == "online";
    layout(
        &format!("Schedules · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Schedules))
            (notice(p.notice))
            section.card {
                div.page-head {
                    h2 { "Schedules" }
                    @if p.can_manage { a.button.primary href={ "/hosts/" (h.id) "/schedules/new" } { "New schedule" } }
                }
                p.muted.small { "The agent runs schedules itself (UTC), also while the server is away; each run backs up the schedule's groups one after another." }
                @if p.rows.is_empty() {
                    p.muted #no-schedules { "No schedules yet: this host backs up only when someone presses Run now." }
                } @else {
                    table.schedules {
                        thead { tr {
                            th scope="col" { "Status" } th scope="col" { "When" } th scope="col" { "Groups" }
                            th scope="col" { "Next run" } th scope="col" { "Last run" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for r in p.rows {
                                @let s = &r.view.schedule;
                                tr.row-link {
                                    td {
                                        @if s.enabled { span.badge.good { "enabled" } } @else { span.badge.muted { "paused" } }
                                    }
                                    td {
                                        a.row-anchor href={ "/hosts/" (h.id) "/schedules/" (s.id) } { (describe_cron(&s.cron)) }
                                        br; code.small.muted { (s.cron) }
                                    }
                                    td { @for gid in &s.source_group_ids { span.tag { (group_name(p.groups, gid)) } " " } }
                                    td {
                                        @match &r.next_run_at {
                                            Some(n) => (when(now, n)),
                                            None => span.muted { "—" },
                                        }
                                    }
                                    td {
                                        @match (&r.view.last_run_at, &r.view.last_job_id) {
                                            (Some(at), Some(job)) => {
                                                a.over href={ "/jobs/" (job) } { (ago(now, at)) }
                                                " " (outcome(r.view.last_run_status.as_deref().unwrap_or("queued")))
                                            }
                                            (Some(at), None) => { (ago(now, at)) }
                                            _ => span.muted { "never" },
                                        }
                                    }
                                    td.actions {
                                        @if p.can_manage {
                                            div.row-buttons {
                                                form.inline method="post" action={ "/hosts/" (h.id) "/schedules/" (s.id) "/run" } {
                                                    (csrf_input(p.csrf))
                                                    button.primary.small type="submit" disabled[!online]
                                                        title=[(!online).then_some("The agent is not connected")] { "Run now" }
                                                }
                                                form.inline method="post" action={ "/hosts/" (h.id) "/schedules/" (s.id) "/toggle" } {
                                                    (csrf_input(p.csrf))
                                                    button.link type="submit" { @if s.enabled { "Pause" } @else { "Resume" } }
                                                }
                                            }
                                        }
                                    }
                                }
                                @if let Some((sid, msg)) = p.row_error {
                                    @if sid == s.id {
                                        tr.row-error { td colspan="6" { p.error role="alert" { (msg) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// `/hosts/{id}/schedules/new` and `/hosts/{id}/schedules/{sid}`.
pub struct ScheduleFormPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// `None` for a new schedule.
    pub schedule_id: Option<&'a str>,
    /// Values (`cron`, `enabled`, `source_group_ids`…).
    pub typed: &'a Typed,
    /// Messages.
    pub errors: &'a Errors,
    /// The host's groups to pick from.
    pub groups: &'a [GroupView],
    /// Quick picks: (expression, words).
    pub presets: &'a [(&'a str, String)],
    /// When it fires next, for a stored enabled schedule.
    pub next_run_at: Option<&'a str>,
    /// CSRF token.
    pub csrf: &'a str,
    /// Whether the viewer may save.
    pub can_manage: bool,
}

/// The schedule editor: cron with quick-pick chips, groups as check cards, enabled.
pub fn schedule_form(viewer: &Viewer, p: &ScheduleFormPage<'_>) -> Markup {
    let h = p.chrome.host;
    let t = p.typed;
    let e = p.errors;
    let cron = t.get("cron");
    let picked = t.all("source_group_ids");
    let (title, action) = match p.schedule_id {
        None => (
            "New schedule".to_string(),
            format!("/hosts/{}/schedules/new", h.id),
        ),
        Some(sid) => (
            "Edit schedule".to_string(),
            format!("/hosts/{}/schedules/{sid}", h.id),
        ),
    };
    let cron_err = e.get("cron");
    let cron_described = if cron_err.is_some() {
        "f-cron-hint f-cron-error"
    } else {
        "f-cron-hint"
    };
    let groups_err = e.get("source_group_ids");
    let words = if cron.trim().is_empty() || cron_err.is_some() {
        String::new()
    } else {
        describe_cron(cron.trim())
    };
    layout(
        &format!("{title} · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Schedules))
            p.small { a href={ "/hosts/" (h.id) "/schedules" } { "← All schedules" } }
            section.card {
                h2 { (title) }
                (banner(e))
                form.schedule-form method="post" action=(action) {
                    (csrf_input(p.csrf))
                    div.field.invalid[cron_err.is_some()] {
                        label for="f-cron" { "When (cron, UTC)" }
                        input #f-cron name="cron" type="text" value=(cron) required autocomplete="off" spellcheck="false"
                            placeholder="minute hour day month weekday"
                            aria-invalid=[cron_err.map(|_| "true")]
                            aria-describedby=(cron_described);
                        div.chips role="group" aria-label="Quick picks" {
                            @for (expr, words) in p.presets {
                                button.chip type="button" data-cron=(expr) data-words=(words) aria-controls="f-cron"
                                    aria-pressed=(if cron.trim() == *expr { "true" } else { "false" })
                                    title={ (words) " — " (expr) } {
                                    (words)
                                }
                            }
                        }
                        p.hint #f-cron-hint {
                            "Five fields: minute, hour, day of month, month, day of week. "
                            span #f-cron-words { @if !words.is_empty() { "Runs " (words) "." } }
                            @if let Some(n) = p.next_run_at { " Next: " (short_time(n)) "." }
                        }
                        @if let Some(m) = cron_err { p.error #f-cron-error role="alert" { (m) } }
                    }
                    fieldset.field.invalid[groups_err.is_some()] aria-describedby=[groups_err.map(|_| "f-groups-error")] {
                        legend { "Source groups to back up" }
                        div.check-cards {
                            @for g in p.groups {
                                @let id = format!("f-group-{}", g.group.id);
                                label.check-card for=(id) {
                                    input id=(id) type="checkbox" name="source_group_ids" value=(g.group.id)
                                        checked[picked.contains(&g.group.id.as_str())];
                                    span.check-body {
                                        strong { (g.group.name) }
                                        span.muted.small { (list_summary(&g.group.includes)) }
                                        span.small { (g.group.retention_policy.describe()) }
                                    }
                                }
                            }
                        }
                        @if let Some(m) = groups_err { p.error #f-groups-error role="alert" { (m) } }
                    }
                    div.field.toggle {
                        input #f-enabled type="checkbox" name="enabled" value="on" checked[t.checked("enabled")];
                        label for="f-enabled" { "Enabled" }
                        p.hint { "A paused schedule does not fire; Run now still works." }
                    }
                    @if p.can_manage {
                        button.primary type="submit" { @if p.schedule_id.is_some() { "Save schedule" } @else { "Create schedule" } }
                    } @else {
                        p.muted { "Your role can look but not change." }
                    }
                }
            }
            @if let (Some(sid), true) = (p.schedule_id, p.can_manage) {
                section.card.danger {
                    h2 { "Delete this schedule" }
                    p { "Its groups stay; they just stop being backed up on this schedule." }
                    form method="post" action={ "/hosts/" (h.id) "/schedules/" (sid) "/delete" }
                        data-confirm="Delete this schedule?" {
                        (csrf_input(p.csrf))
                        button.danger type="submit" { "Delete schedule" }
                    }
                }
            }
        },
    )
}

/// The typed form of a stored schedule.
pub fn schedule_values(s: &domain::sources::Schedule) -> Typed {
    let mut t = Typed::default();
    t.set("cron", &s.cron);
    if s.enabled {
        t.set("enabled", "on");
    }
    for g in &s.source_group_ids {
        t.push("source_group_ids", g);
    }
    t
}

// ---------------------------------------------------------------------------------------
// Repository

/// `/hosts/{id}/repo`.
pub struct RepoPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The panel.
    pub status: &'a RepoStatus,
    /// Settings (maintenance, bandwidth, admin credential flag).
    pub settings: &'a HostSettings,
    /// Pending runs, newest last.
    pub pending: &'a [PendingRun],
    /// Groups (names for pending forget runs).
    pub groups: &'a [GroupView],
    /// Connection form values (`repo_url`, `repo_username`) and whether a password is stored.
    pub connection: &'a Typed,
    /// Bandwidth form values (`up_kbps`, `down_kbps`).
    pub bandwidth: &'a Typed,
    /// Maintenance form values.
    pub maintenance: &'a Typed,
    /// Admin credential form values (admins only).
    pub admin_credentials: Option<&'a Typed>,
    /// Messages, keyed `form.field` (`connection.repo_url`, `ops.`, `init.confirm`…).
    pub errors: &'a Errors,
    /// Which form was just saved.
    pub saved: Option<&'a str>,
    /// Whether the viewer may change things.
    pub can_manage: bool,
    /// Whether the viewer is an admin.
    pub is_admin: bool,
    /// CSRF token.
    pub csrf: &'a str,
}

/// One of the repository page's forms, with its saved line and whole-form message.
fn saved_line(p: &RepoPage<'_>, form: &str) -> Markup {
    html! {
        @if p.saved == Some(form) { p.notice role="status" { "Saved." } }
        @if let Some(m) = p.errors.get(&format!("{form}.")) { p.error.banner role="alert" { (m) } }
    }
}

fn job_link(id: Option<&str>, text: &str) -> Markup {
    html! {
        @match id {
            Some(j) => a href={ "/jobs/" (j) } { (text) },
            None => (text),
        }
    }
}

fn last_op(now: Timestamp, at: Option<&str>, status: Option<&str>, job: Option<&str>) -> Markup {
    html! {
        @match at {
            Some(at) => { (job_link(job, &ago(now, at))) " " (outcome(status.unwrap_or("queued"))) }
            None => span.muted { "never" },
        }
    }
}

/// `/hosts/{id}/repo`: the repository panel, connection, bandwidth, maintenance, operations,
/// the admin credential, pending runs and the danger zone.
pub fn repo_page(viewer: &Viewer, p: &RepoPage<'_>) -> Markup {
    let h = p.chrome.host;
    let now = p.chrome.now;
    let s = p.status;
    let e = p.errors;
    let base = format!("/hosts/{}/repo", h.id);
    let online = h.status == "online";
    let err = |k: &str| e.get(k);
    layout(
        &format!("Repository · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Repo))
            section.tiles aria-label="Repository" #repo-panel {
                div.tile { span.num { (s.repo_size_bytes.map(|b| bytes(b as i64)).unwrap_or_else(|| "—".into())) } span.label { "stored" } }
                div.tile {
                    span.num { (s.dedup_ratio.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".into())) }
                    span.label { "deduplication" @if let Some(r) = s.restore_size_bytes.filter(|r| *r > 0) { " (" (bytes(r as i64)) " before)" } }
                }
                div.tile { span.num { (s.snapshot_count) } span.label { "snapshots" } }
                div.tile.bad[s.lock_state == "locked"] {
                    span.num { (s.lock_state) }
                    span.label { "lock" @if let Some(at) = &s.lock_seen_at { " · seen " (ago(now, at)) } }
                }
            }
            section.card {
                h2 { "Health" }
                dl.kv {
                    dt { "Last check" }
                    dd {
                        (last_op(now, s.last_check_at.as_deref(), s.last_check_status.as_deref(), s.last_check_job.as_deref()))
                        @if let Some(m) = &s.last_check_error { br; span.error { (m) } }
                    }
                    dt { "Last prune" }
                    dd {
                        (last_op(now, s.last_prune_at.as_deref(), s.last_prune_status.as_deref(), s.last_prune_job.as_deref()))
                        @if let Some(b) = s.bytes_freed { " · freed " (bytes(b as i64)) }
                    }
                    dt { "Last init" }
                    dd { (last_op(now, s.last_init_at.as_deref(), s.last_init_status.as_deref(), s.last_init_job.as_deref())) }
                    dt { "Lock" }
                    dd { (s.lock_state) @if s.lock_state == "locked" { " — a stale lock blocks backups; Unlock removes it." } }
                }
                @if p.can_manage {
                    form.ops method="post" action={ (base) "/run" } #repo-ops {
                        (csrf_input(p.csrf))
                        @if let Some(m) = err("ops.") { p.error.banner role="alert" { (m) } }
                        div.row-buttons {
                            button.small type="submit" name="op" value="forget" disabled[!online] { "Forget now" }
                            button.small type="submit" name="op" value="prune" disabled[!online] { "Prune now" }
                            button.small type="submit" name="op" value="check" disabled[!online] { "Check now" }
                            button.small type="submit" name="op" value="unlock" disabled[!online] { "Unlock" }
                        }
                        p.hint {
                            "Forget applies each group's retention; prune frees the space; check reads "
                            (p.settings.maintenance.check_subset_pct) "% of the data. "
                            @if !online { "The agent must be connected." }
                        }
                    }
                }
            }
            div.grid-2 {
                section.card {
                    h2 #connection { "Connection" }
                    (saved_line(p, "connection"))
                    form method="post" action={ (base) "/connection" } {
                        (csrf_input(p.csrf))
                        (Input { id: "f-repo_url", name: "repo_url", label: "Repository URL", value: p.connection.get("repo_url"),
                            error: err("connection.repo_url"), required: true,
                            hint: Some("A path or a restic location such as rest:https://backup.example.org/web-1"), ..Default::default() }.render())
                        (Input { id: "f-repo_username", name: "repo_username", label: "User (REST server)",
                            value: p.connection.get("repo_username"), error: err("connection.repo_username"), ..Default::default() }.render())
                        (Input { id: "f-repo_password", name: "repo_password", label: "Password", kind: "password", value: "",
                            error: err("connection.repo_password"), autocomplete: Some("new-password"),
                            hint: Some(if p.connection.checked("has_password") { "Stored. Leave empty to keep it." } else { "None stored yet." }),
                            ..Default::default() }.render())
                        @if p.can_manage { button.primary type="submit" { "Save connection" } }
                    }
                }
                section.card {
                    h2 #bandwidth { "Bandwidth" }
                    (saved_line(p, "bandwidth"))
                    form method="post" action={ (base) "/bandwidth" } {
                        (csrf_input(p.csrf))
                        p.hint { "Caps for every restic run on this host, in KiB/s. Empty means unlimited." }
                        (Input { name: "up_kbps", label: "Upload, KiB/s", kind: "number", min: Some("1"),
                            value: p.bandwidth.get("up_kbps"), error: err("bandwidth.up_kbps"), placeholder: Some("unlimited"), ..Default::default() }.render())
                        (Input { name: "down_kbps", label: "Download, KiB/s", kind: "number", min: Some("1"),
                            value: p.bandwidth.get("down_kbps"), error: err("bandwidth.down_kbps"), placeholder: Some("unlimited"), ..Default::default() }.render())
                        @if p.can_manage { button.primary type="submit" { "Save bandwidth" } }
                    }
                }
            }
            section.card {
                h2 #maintenance { "Maintenance" }
                (saved_line(p, "maintenance"))
                p.hint { "The server starts these on the cadence below (per-host offset, so a fleet does not start all at once). Cadences: off, hourly, daily, weekly, monthly, or a number with a unit such as 12h or 3d." }
                form method="post" action={ (base) "/maintenance" } {
                    (csrf_input(p.csrf))
                    div.grid-3 {
                        (Input { name: "forget_cadence", label: "Forget", value: p.maintenance.get("forget_cadence"),
                            error: err("maintenance.forget_cadence"), required: true, placeholder: Some("daily"), ..Default::default() }.render())
                        (Input { name: "prune_cadence", label: "Prune", value: p.maintenance.get("prune_cadence"),
                            error: err("maintenance.prune_cadence"), required: true, placeholder: Some("weekly"), ..Default::default() }.render())
                        (Input { name: "check_cadence", label: "Check", value: p.maintenance.get("check_cadence"),
                            error: err("maintenance.check_cadence"), required: true, placeholder: Some("weekly"), ..Default::default() }.render())
                    }
                    (Input { name: "check_subset_pct", label: "Check reads this % of the data", kind: "number", min: Some("0"), max: Some("100"),
                        value: p.maintenance.get("check_subset_pct"), error: err("maintenance.check_subset_pct"),
                        hint: Some("0 checks the structure only; 100 reads everything."), ..Default::default() }.render())
                    div.field.toggle {
                        input #f-maint-enabled type="checkbox" name="enabled" value="on" checked[p.maintenance.checked("enabled")];
                        label for="f-maint-enabled" { "Maintenance on" }
                    }
                    @if p.can_manage { button.primary type="submit" { "Save maintenance" } }
                }
            }
            @if let Some(a) = p.admin_credentials {
                section.card {
                    h2 #admin-credentials { "Full-access credential for forget and prune" }
                    (saved_line(p, "admin"))
                    p.muted {
                        "An append-only REST server refuses forget and prune with the everyday credential. "
                        "This second credential is stored apart and sent to the agent only with forget and prune jobs. "
                        @if a.checked("configured") { strong { "One is stored." } } @else { "None is stored: forget and prune use the everyday credential." }
                    }
                    form method="post" action={ (base) "/admin-credentials" } {
                        (csrf_input(p.csrf))
                        (Input { id: "f-admin-repo_url", name: "repo_url", label: "Repository URL", value: a.get("repo_url"),
                            error: err("admin.repo_url"), required: true, ..Default::default() }.render())
                        (Input { id: "f-admin-repo_username", name: "repo_username", label: "User", value: a.get("repo_username"),
                            error: err("admin.repo_username"), ..Default::default() }.render())
                        (Input { id: "f-admin-repo_password", name: "repo_password", label: "Password", kind: "password", value: "",
                            error: err("admin.repo_password"), autocomplete: Some("new-password"),
                            hint: Some(if a.checked("configured") { "Leave empty to keep the stored one." } else { "Required." }),
                            ..Default::default() }.render())
                        button.primary type="submit" { "Save full-access credential" }
                    }
                    @if a.checked("configured") {
                        form.inline method="post" action={ (base) "/admin-credentials/delete" } data-confirm="Remove the full-access credential?" {
                            (csrf_input(p.csrf))
                            button.link type="submit" { "Remove it" }
                        }
                    }
                }
            }
            section.card {
                h2 #pending { "Pending runs" }
                @if p.pending.is_empty() {
                    p.muted { "None. Runs that fall due while the agent is away wait here and start when it is back." }
                } @else {
                    table.pending {
                        thead { tr { th scope="col" { "What" } th scope="col" { "State" } th scope="col" { "Attempts" }
                            th scope="col" { "Queued" } th scope="col" { "Why" } } }
                        tbody {
                            @for r in p.pending {
                                tr {
                                    td { (r.kind) @if let Some(g) = &r.group_id { " " span.tag { (group_name(p.groups, g)) } } }
                                    td {
                                        (r.state)
                                        @if let Some(j) = &r.job_id { " · " a href={ "/jobs/" (j) } { "job" } }
                                        @if let Some(nb) = &r.not_before { @if r.state == "waiting" { br; span.small.muted { "not before " (short_time(nb)) } } }
                                    }
                                    td { (r.attempts) " of " (r.retry_max.max(1)) }
                                    td { (ago(now, &r.queued_at)) }
                                    td.small { (r.reason) @if let Some(w) = &r.end_reason { br; span.muted { (w) } } }
                                }
                            }
                        }
                    }
                }
            }
            @if p.is_admin {
                section.card.danger {
                    h2 #danger { "Danger zone" }
                    p { "Re-run " code { "restic init" } " against this repository. An existing repository is left as it is; use this after pointing the host at a new, empty location." }
                    form method="post" action={ (base) "/init" } {
                        (csrf_input(p.csrf))
                        @if let Some(m) = err("init.") { p.error.banner role="alert" { (m) } }
                        div.field.invalid[err("init.confirm").is_some()] {
                            label for="f-init-confirm" { "Type the hostname, " code { (h.hostname) } ", to confirm" }
                            input #f-init-confirm name="confirm" type="text" autocomplete="off"
                                aria-invalid=[err("init.confirm").map(|_| "true")]
                                aria-describedby=[err("init.confirm").map(|_| "f-init-confirm-error")];
                            @if let Some(m) = err("init.confirm") { p.error #f-init-confirm-error role="alert" { (m) } }
                        }
                        button.danger type="submit" disabled[!online] { "Re-run init" }
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Jobs

/// `/hosts/{id}/jobs`.
pub struct JobsPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// Newest first.
    pub jobs: &'a [Job],
    /// The host's groups (names for group ids).
    pub groups: &'a [GroupView],
}

/// A table of jobs, each row opening the job.
pub(crate) fn jobs_table(jobs: &[Job], groups: &[GroupView], now: Timestamp) -> Markup {
    html! {
        table.jobs {
            thead { tr {
                th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Started by" }
                th scope="col" { "Queued" } th scope="col" { "Result" }
            } }
            tbody {
                @for j in jobs {
                    tr.row-link {
                        td {
                            a.row-anchor href={ "/jobs/" (j.id) } { (j.kind) }
                            @if let Some(g) = &j.source_group_id { " " span.tag { (group_name(groups, g)) } }
                        }
                        td { (outcome(&j.status)) }
                        td.small { (j.trigger) }
                        td { (ago(now, &j.queued_at)) }
                        td {
                            @if let Some(e) = &j.error { span.error { (e) } }
                            @else if let Some(s) = &j.snapshot_id { "snapshot " code { (s.get(..8).unwrap_or(s)) } }
                        }
                    }
                }
            }
        }
    }
}

/// `/hosts/{id}/jobs`: the host's recent jobs.
pub fn jobs_page(viewer: &Viewer, p: &JobsPage<'_>) -> Markup {
    let h = p.chrome.host;
    layout(
        &format!("Jobs · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Jobs))
            section.card {
                h2 { "Jobs" }
                @if p.jobs.is_empty() {
                    p.muted { "No jobs yet." }
                } @else {
                    (jobs_table(p.jobs, p.groups, p.chrome.now))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::sources::Schedule;
    use scraper::{Html, Selector};

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn host() -> Host {
        Host {
            id: "h1".into(),
            hostname: "web-1".into(),
            status: "online".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            restic_version: "0.17.0".into(),
            last_seen_at: None,
            last_backup: None,
            snapshot_count: 0,
            repo_size_bytes: 0,
            open_alerts: 0,
            tags: vec![],
            enrolled_at: "2026-11-01T00:00:00.000000Z".into(),
            credentials_version: 1,
            applied_credentials_version: 1,
        }
    }

    fn settings(v: u64, applied: u64) -> HostSettings {
        HostSettings {
            schedule_version: v,
            applied_version: applied,
            maintenance: Default::default(),
            bandwidth: Default::default(),
            default_has_pre_hook: false,
            default_has_post_hook: false,
            has_admin_credentials: false,
        }
    }

    fn group(id: &str, name: &str) -> GroupView {
        GroupView {
            host_id: "h1".into(),
            group: SourceGroup::default_for_enrolment(id.into(), vec!["/etc".into()]).renamed(name),
            has_pre_hook: false,
            has_post_hook: false,
        }
    }

    trait Renamed {
        fn renamed(self, name: &str) -> Self;
    }
    impl Renamed for SourceGroup {
        fn renamed(mut self, name: &str) -> Self {
            self.name = name.into();
            self
        }
    }

    fn now() -> Timestamp {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn header_says_whether_the_agent_is_in_sync() {
        let h = host();
        let s = settings(4, 3);
        let page = chrome(
            &HostChrome {
                host: &h,
                settings: Some(&s),
                now: now(),
            },
            HostTab::Repo,
        )
        .into_string();
        assert!(page.contains("schedule v4"));
        assert!(page.contains("agent at v3"));
        let doc = Html::parse_fragment(&page);
        let current: Vec<_> = doc
            .select(&sel("nav.tabs a[aria-current=page]"))
            .map(|a| a.value().attr("href").unwrap().to_string())
            .collect();
        assert_eq!(current, ["/hosts/h1/repo"]);
        let s = settings(4, 4);
        let page = chrome(
            &HostChrome {
                host: &h,
                settings: Some(&s),
                now: now(),
            },
            HostTab::Overview,
        )
        .into_string();
        assert!(page.contains("agent in sync"));
    }

    #[test]
    fn sources_rows_link_to_their_editor_with_actions_beside() {
        let h = host();
        let groups = vec![group("g1", "default"), group("g2", "<db>")];
        let failure = RunFailure {
            group_id: "g2".into(),
            typed: {
                let mut t = Typed::default();
                t.set("limit_upload_kbps", "abc");
                t
            },
            errors: {
                let mut e = Errors::default();
                e.add("limit_upload_kbps", "The limit must be a whole number");
                e
            },
        };
        let page = sources_page(
            &Viewer::default(),
            &SourcesPage {
                chrome: HostChrome {
                    host: &h,
                    settings: None,
                    now: now(),
                },
                groups: &groups,
                schedules: &[],
                can_manage: true,
                csrf: "tok",
                run_failure: Some(&failure),
                delete_refusal: None,
                host_hooks: None,
                notice: None,
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        let links: Vec<_> = doc
            .select(&sel("tr.row-link a.row-anchor"))
            .map(|a| a.value().attr("href").unwrap().to_string())
            .collect();
        assert_eq!(links, ["/hosts/h1/sources/g1", "/hosts/h1/sources/g2"]);
        assert_eq!(doc.select(&sel("tr.row-link td.actions form")).count(), 4);
        assert!(!page.contains("<db>"));
        let err = doc.select(&sel("tr.row-error")).next().unwrap();
        assert!(err.text().collect::<String>().contains("whole number"));
        let kept = doc.select(&sel("#f-up-g2")).next().unwrap();
        assert_eq!(kept.value().attr("value"), Some("abc"));
        assert!(doc.select(&sel("details.limits[open]")).count() == 1);
        for f in doc.select(&sel("form[method=post]")) {
            assert_eq!(f.select(&sel("input[name=csrf_token]")).count(), 1);
        }
    }

    #[test]
    fn group_form_shows_errors_beside_keep_rules_and_keeps_input() {
        let h = host();
        let mut t = new_group_values();
        t.set("name", "x y");
        t.set("keep_daily", "0");
        let mut e = Errors::default();
        e.add("keep_daily", "Keep daily must be between 1 and 100000");
        let page = group_form(
            &Viewer {
                role: Some("admin".into()),
                ..Default::default()
            },
            &GroupFormPage {
                chrome: HostChrome {
                    host: &h,
                    settings: None,
                    now: now(),
                },
                group_id: None,
                typed: &t,
                errors: &e,
                csrf: "tok",
                can_manage: true,
                hooks: None,
                hook_flags: None,
                used_by: &[],
                notice: None,
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        let input = doc.select(&sel("#f-keep_daily")).next().unwrap();
        assert_eq!(input.value().attr("value"), Some("0"));
        assert_eq!(input.value().attr("aria-invalid"), Some("true"));
        assert!(doc.select(&sel("#f-keep_daily-error")).next().is_some());
        assert_eq!(
            doc.select(&sel("#f-name"))
                .next()
                .unwrap()
                .value()
                .attr("value"),
            Some("x y")
        );
        assert_eq!(doc.select(&sel(".keep-grid input")).count(), 6);
        for input in doc.select(&sel("input:not([type=hidden]), textarea")) {
            let id = input.value().attr("id").unwrap();
            assert_eq!(doc.select(&sel(&format!("label[for='{id}']"))).count(), 1);
        }
    }

    #[test]
    fn schedule_form_has_chips_and_check_cards() {
        let h = host();
        let groups = vec![group("g1", "default"), group("g2", "db")];
        let s = Schedule {
            id: "s1".into(),
            cron: "0 3 * * *".into(),
            enabled: false,
            source_group_ids: vec!["g2".into()],
        };
        let t = schedule_values(&s);
        let presets = domain::sources::cron_presets();
        let page = schedule_form(
            &Viewer::default(),
            &ScheduleFormPage {
                chrome: HostChrome {
                    host: &h,
                    settings: None,
                    now: now(),
                },
                schedule_id: Some("s1"),
                typed: &t,
                errors: &Errors::default(),
                groups: &groups,
                presets: &presets,
                next_run_at: None,
                csrf: "tok",
                can_manage: true,
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        assert_eq!(doc.select(&sel("button.chip[data-cron]")).count(), 5);
        let pressed = doc
            .select(&sel("button.chip[aria-pressed=true]"))
            .next()
            .unwrap();
        assert_eq!(pressed.value().attr("data-cron"), Some("0 3 * * *"));
        assert!(pressed
            .text()
            .collect::<String>()
            .contains("every day at 03:00 UTC"));
        assert!(doc.select(&sel("#f-group-g2[checked]")).next().is_some());
        assert!(doc.select(&sel("#f-group-g1[checked]")).next().is_none());
        assert!(doc.select(&sel("#f-enabled[checked]")).next().is_none());
        assert_eq!(
            doc.select(&sel("form[action='/hosts/h1/schedules/s1/delete']"))
                .count(),
            1
        );
    }

    #[test]
    fn relative_times_go_both_ways() {
        assert_eq!(relative(now(), "2026-11-28T15:00:00Z"), "in 3 h");
        assert_eq!(relative(now(), "2026-11-28T12:10:00Z"), "in 10 min");
        assert_eq!(relative(now(), "2026-11-28T11:55:00Z"), "5 min ago");
        assert_eq!(short_time("2026-11-28T03:00:00Z"), "2026-11-28 03:00 UTC");
        assert_eq!(
            list_summary(&["/a".into(), "/b".into(), "/c".into(), "/d".into()]),
            "/a, /b and 2 more"
        );
        assert_eq!(duration(300), "5 min");
        assert_eq!(duration(7200), "2 h");
    }
}
