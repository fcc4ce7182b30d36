//! The restore wizard (`/hosts/{id}/restore`) and the snapshot comparison (`/hosts/{id}/diff`).
//!
//! The wizard is one server-rendered form: a snapshot, then its tree (one directory per
//! request to the agent, paged) with a check box per entry, then the target and the
//! overwrite policy; "Review" shows where every path lands and what could go wrong, and
//! "Start restore" creates the job and opens its live page. With JavaScript, directories
//! expand in place (the same tree API, lazily) and the path mapping and the root-owned
//! warning follow the choices as they are made; without it, directories open as pages and
//! paths can be typed.

use domain::jobs::restore_landing;
use domain::protocol::{DiffChange, TreeEntry};
use maud::{html, Markup};
use projections::jobs::SnapshotView;

use crate::fleet::bytes;
use crate::host::{
    banner, chrome, csrf_input, text_area, Errors, HostChrome, HostTab, Input, Typed,
};
use crate::{layout, Viewer};

/// A host a restore can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHost {
    /// Id.
    pub id: String,
    /// Name.
    pub hostname: String,
    /// Whether its agent is connected now.
    pub online: bool,
    /// Its agent's user id, when the agent said (`0`: root).
    pub agent_uid: Option<u32>,
    /// The overwrite policies its restic honours.
    pub overwrite_policies: Vec<&'static str>,
}

/// One directory of the snapshot, as the agent listed it (or why it could not).
pub enum Listing<'a> {
    /// A page of the directory.
    Shown {
        /// The directory.
        path: &'a str,
        /// The page.
        entries: &'a [TreeEntry],
        /// Children in all.
        total: u64,
        /// Skipped.
        offset: u64,
        /// Page size.
        limit: u64,
    },
    /// The agent could not list it (offline, timed out, restic failed).
    Failed(&'a str),
}

/// `/hosts/{id}/restore`.
pub struct RestorePage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The host's snapshots, newest first.
    pub snapshots: &'a [SnapshotView],
    /// The snapshot chosen (step 2 on).
    pub selected: Option<&'a SnapshotView>,
    /// The directory shown.
    pub listing: Option<Listing<'a>>,
    /// Hosts to restore to; the first is this host.
    pub targets: &'a [TargetHost],
    /// What was sent (kept after a refusal).
    pub typed: &'a Typed,
    /// Messages next to fields.
    pub errors: &'a Errors,
    /// CSRF token.
    pub csrf: &'a str,
    /// Whether the viewer may restore (admins and operators).
    pub can_manage: bool,
}

/// The overwrite policies, with what each does.
const OVERWRITE: &[(&str, &str)] = &[
    (
        "always",
        "Replace files that exist at the target (restic before 0.17 can do nothing else).",
    ),
    (
        "if-changed",
        "Replace a file only when its content differs from the snapshot's.",
    ),
    (
        "if-newer",
        "Replace a file only when the snapshot's copy is newer.",
    ),
    (
        "never",
        "Leave existing files alone; restore only what is missing.",
    ),
];

fn wizard_href(host_id: &str, snapshot: &str, path: &str, offset: u64) -> String {
    let mut q = vec![("snapshot", snapshot.to_string())];
    if path != "/" {
        q.push(("path", path.to_string()));
    }
    if offset > 0 {
        q.push(("offset", offset.to_string()));
    }
    let q: Vec<String> = q
        .into_iter()
        .map(|(k, v)| format!("{k}={}", crate::query_encode(&v)))
        .collect();
    format!("/hosts/{host_id}/restore?{}", q.join("&"))
}

/// `2026-11-29T04:55:51…` as `2026-11-29 04:55:51` (`len` 19) or to the minute (`len` 16):
/// restic's own times, which carry nanoseconds and an offset.
fn plain_time(t: &str, len: usize) -> String {
    t.get(..len).unwrap_or(t).replace('T', " ")
}

/// A check box value: the owner's uid and the path, so the review can warn about root's
/// files without asking the agent again.
pub fn pick_value(uid: u32, path: &str) -> String {
    format!("{uid}:{path}")
}

/// Parses [`pick_value`]; a value without a uid is a bare path.
pub fn parse_pick(v: &str) -> (Option<u32>, &str) {
    match v.split_once(':') {
        Some((uid, path)) if path.starts_with('/') => match uid.parse() {
            Ok(u) => (Some(u), path),
            Err(_) => (None, v),
        },
        _ => (None, v),
    }
}

/// What follows an entry's name: `/` for a directory, `@` for a symlink (as `ls -F` does; no
/// icon font is needed).
fn entry_suffix(kind: &str) -> &'static str {
    match kind {
        "dir" => "/",
        "symlink" => "@",
        _ => "",
    }
}

/// One directory's entries as tree items (the script builds the same markup for expanded
/// directories).
fn tree_items(host_id: &str, snapshot: &str, entries: &[TreeEntry]) -> Markup {
    html! {
        @for e in entries {
            @let dir = e.entry_type == "dir";
            li.entry.dir[dir] data-path=(e.path) {
                span.entry-row {
                    @if dir {
                        button.expand type="button" aria-expanded="false" data-path=(e.path)
                            aria-label={ "Show what " (e.name) " holds" } { "▸" }
                    } @else {
                        span.expand-spacer {}
                    }
                    label {
                        input type="checkbox" name="pick" value=(pick_value(e.uid, &e.path))
                            data-uid=(e.uid);
                        " " span.name { (e.name) span.suffix aria-hidden="true" { (entry_suffix(&e.entry_type)) } }
                    }
                    @if dir {
                        " " a.open href=(wizard_href(host_id, snapshot, &e.path, 0)) { "open" }
                    }
                    span.meta {
                        @if e.entry_type == "file" { (bytes(e.size as i64)) " · " }
                        @if e.uid == 0 { span.owner title="owned by root" { "root" } " · " }
                        @else { span.owner { "uid " (e.uid) } " · " }
                        (plain_time(&e.mtime, 16))
                    }
                }
            }
        }
    }
}

fn breadcrumb(host_id: &str, snapshot: &str, path: &str) -> Markup {
    let mut parts = vec![("/".to_string(), "/".to_string())];
    let mut acc = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        acc.push('/');
        acc.push_str(seg);
        parts.push((acc.clone(), seg.to_string()));
    }
    html! {
        nav.breadcrumb aria-label="Directory" {
            @for (i, (p, name)) in parts.iter().enumerate() {
                @if i > 1 { " / " } @else if i == 1 { " " }
                @if i + 1 == parts.len() { strong { (name) } }
                @else { a href=(wizard_href(host_id, snapshot, p, 0)) { (name) } }
            }
        }
    }
}

fn snapshot_table(host_id: &str, snapshots: &[SnapshotView], link: bool) -> Markup {
    html! {
        table.snapshots {
            thead { tr { th scope="col" { "Time" } th scope="col" { "ID" } th scope="col" { "Paths" } th scope="col" { "Tags" } @if link { th scope="col" { span.visually-hidden { "Action" } } } } }
            tbody {
                @for s in snapshots {
                    tr data-snapshot=(s.id) {
                        td { (plain_time(&s.time, 19)) }
                        td { code title=(s.id) { (s.short_id) } }
                        td.small { (s.paths.join(", ")) }
                        td.small { (s.tags.join(", ")) }
                        @if link {
                            td { a.button href={ "/hosts/" (host_id) "/restore?snapshot=" (s.id) } { "Restore from this →" } }
                        }
                    }
                }
            }
        }
    }
}

fn overwrite_field(typed: &Typed, errors: &Errors, policies: &[&str]) -> Markup {
    let chosen = match typed.get("overwrite") {
        "" => "always",
        o => o,
    };
    let err = errors.get("overwrite");
    html! {
        fieldset.field.overwrite.invalid[err.is_some()] #overwrite {
            legend { "4. If a file already exists there" }
            @for (value, words) in OVERWRITE {
                @let supported = policies.contains(value);
                label.radio-card {
                    input type="radio" name="overwrite" value=(value) checked[chosen == *value]
                        disabled[!supported && chosen != *value];
                    " " strong { (value) } " — " (words)
                    @if !supported { span.muted.small.needs { " (needs restic 0.17 on the target host)" } }
                }
            }
            @if let Some(e) = err { p.error id="f-overwrite-error" role="alert" { (e) } }
        }
    }
}

/// `/hosts/{id}/restore`: choose a snapshot, then files, target and overwrite policy.
pub fn restore_page(viewer: &Viewer, p: &RestorePage<'_>) -> Markup {
    let h = p.chrome.host;
    layout(
        &format!("Restore · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Restore))
            @match p.selected {
                None => (choose_snapshot(viewer, p)),
                Some(s) => (wizard(p, s)),
            }
        },
    )
}

fn choose_snapshot(viewer: &Viewer, p: &RestorePage<'_>) -> Markup {
    let h = p.chrome.host;
    html! {
        section.card #choose-snapshot {
            h2 { "1. Choose a snapshot" }
            @if viewer.in_past() {
                p.muted { "Restoring is an action: go back to now to restore. The snapshots below are the ones the host had then." }
            }
            @if p.snapshots.is_empty() {
                p.muted { "This host has no snapshots yet. " a href={ "/hosts/" (h.id) } { "Back it up first." } }
            } @else {
                (snapshot_table(&h.id, p.snapshots, !viewer.in_past()))
            }
        }
    }
}

fn wizard(p: &RestorePage<'_>, s: &SnapshotView) -> Markup {
    let h = p.chrome.host;
    // Ticks sent back (after "Change" or a refusal) stay ticks, with their owners, in a list
    // of their own: the tree starts again at its top.
    let mut chosen: Vec<(Option<u32>, &str)> = Vec::new();
    for v in p.typed.all("pick") {
        let c = parse_pick(v);
        if !chosen.iter().any(|(_, path)| *path == c.1) {
            chosen.push(c);
        }
    }
    let target_id = match p.typed.get("target_host_id") {
        "" => h.id.as_str(),
        t => t,
    };
    let target = p
        .targets
        .iter()
        .find(|t| t.id == target_id)
        .or(p.targets.first());
    let policies: &[&str] = target
        .map(|t| t.overwrite_policies.as_slice())
        .unwrap_or(&["always"]);
    let location = match p.typed.get("location") {
        "path" => "path",
        _ => "original",
    };
    let tree_api = format!("/api/hosts/{}/snapshots/{}/tree", h.id, s.id);
    html! {
        section.card #snapshot-chosen {
            div.page-head {
                h2 { "1. Snapshot " code title=(s.id) { (s.short_id) } }
                a href={ "/hosts/" (h.id) "/restore" } { "Choose another" }
            }
            p.muted { (plain_time(&s.time, 19)) " UTC · " (s.paths.join(", "))
                @if !s.tags.is_empty() { " · tags " (s.tags.join(", ")) } }
        }
        form.restore-form method="post" action={ "/hosts/" (h.id) "/restore" } {
            (csrf_input(p.csrf))
            input type="hidden" name="snapshot_id" value=(s.id);
            (banner(p.errors))
            section.card #files {
                h2 { "2. Files and folders" }
                p.hint { "Tick what to restore; a folder brings everything in it. Nothing ticked restores the whole snapshot." }
                @if !chosen.is_empty() {
                    fieldset #chosen {
                        legend { "Chosen so far" }
                        ul.chosen {
                            @for (uid, path) in &chosen {
                                li { label {
                                    input type="checkbox" name="pick" checked
                                        value=(uid.map(|u| pick_value(u, path)).unwrap_or_else(|| path.to_string()))
                                        data-uid=[uid];
                                    " " code { (path) }
                                } }
                            }
                        }
                    }
                }
                @match &p.listing {
                    None => {}
                    Some(Listing::Failed(why)) => {
                        p.error role="alert" #tree-error { "Cannot browse the snapshot: " (why) }
                        p.hint { "You can still type the paths below." }
                    }
                    Some(Listing::Shown { path, entries, total, offset, limit }) => {
                        (breadcrumb(&h.id, &s.id, path))
                        div #tree data-tree-api=(tree_api) data-host=(h.id) data-snapshot=(s.id) {
                            @if entries.is_empty() {
                                p.muted { "This folder is empty." }
                            } @else {
                                ul.tree role="group" { (tree_items(&h.id, &s.id, entries)) }
                            }
                            @let shown = offset + entries.len() as u64;
                            @if shown < *total {
                                p.pager {
                                    (offset + 1) "–" (shown) " of " (total) " · "
                                    a href=(wizard_href(&h.id, &s.id, path, offset + limit)) { "next " ((*limit).min(total - shown)) }
                                }
                            }
                        }
                    }
                }
                (text_area("typed_paths", "Or type paths inside the snapshot, one per line", p.typed.get("typed_paths"),
                    p.errors.get("paths"), Some("Absolute paths as the snapshot holds them, e.g. /etc/nginx."), 3))
                div #picked-summary aria-live="polite" {}
            }
            section.card #target {
                h2 { "3. Where to" }
                div.field.invalid[p.errors.get("target_host_id").is_some()] {
                    label for="f-target_host_id" { "Host that restores" }
                    select id="f-target_host_id" name="target_host_id" aria-describedby=[p.errors.get("target_host_id").map(|_| "f-target_host_id-error")] {
                        @for (i, t) in p.targets.iter().enumerate() {
                            option value=(t.id) selected[t.id == target_id]
                                data-uid=[t.agent_uid] data-online=(if t.online { "1" } else { "0" })
                                data-policies=(t.overwrite_policies.join(" ")) data-hostname=(t.hostname) {
                                (t.hostname)
                                @if i == 0 { " (this host)" }
                                @if !t.online { " — offline" }
                            }
                        }
                    }
                    p.hint { "Another host restores with a read-only credential for this host's repository, granted for that one job and destroyed when it ends." }
                    @if let Some(e) = p.errors.get("target_host_id") { p.error id="f-target_host_id-error" role="alert" { (e) } }
                }
                fieldset.field #location {
                    legend { "Location" }
                    label.radio-card {
                        input type="radio" name="location" value="original" checked[location == "original"];
                        " " strong { "Original location" } " — every path goes back where it was."
                    }
                    label.radio-card {
                        input type="radio" name="location" value="path" checked[location == "path"];
                        " " strong { "Another directory" } " — paths are recreated below it."
                    }
                }
                (Input { name: "target_path", label: "Directory to restore into", value: p.typed.get("target_path"),
                    error: p.errors.get("target_path"), placeholder: Some("/srv/restore"),
                    hint: Some("Used with “Another directory”: /etc/hosts restored into /srv/restore lands at /srv/restore/etc/hosts."),
                    ..Default::default() }.render())
                div #restore-mapping aria-live="polite" {}
                p.warn #root-warning hidden role="alert" {}
            }
            section.card { (overwrite_field(p.typed, p.errors, policies)) }
            @if p.can_manage {
                button.primary type="submit" name="step" value="review" { "Review restore" }
            } @else {
                p.muted { "Only admins and operators can restore." }
            }
        }
    }
}

/// One path of a reviewed restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    /// Inside the snapshot.
    pub path: String,
    /// Where it lands on the target.
    pub landing: String,
    /// Owned by root in the snapshot (known for picked entries only).
    pub root_owned: bool,
}

/// The review step.
pub struct ReviewPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The snapshot.
    pub snapshot: &'a SnapshotView,
    /// The host that restores.
    pub target: &'a TargetHost,
    /// What lands where (empty: the whole snapshot).
    pub rows: &'a [ReviewRow],
    /// `/` or the directory.
    pub target_path: &'a str,
    /// The policy.
    pub overwrite: &'a str,
    /// Things to read before starting.
    pub warnings: &'a [String],
    /// The wizard's fields, sent again with "Start restore" or "Change".
    pub carry: &'a Typed,
    /// CSRF token.
    pub csrf: &'a str,
}

/// The review step: where everything lands, the warnings, and the button that starts it.
pub fn review_page(viewer: &Viewer, p: &ReviewPage<'_>) -> Markup {
    let h = p.chrome.host;
    let cross = p.target.id != h.id;
    layout(
        &format!("Review restore · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Restore))
            section.card #review {
                h2 { "Review the restore" }
                dl.facts {
                    dt { "Snapshot" } dd { code title=(p.snapshot.id) { (p.snapshot.short_id) } " of " (h.hostname) ", " (plain_time(&p.snapshot.time, 19)) " UTC" }
                    dt { "Restored by" } dd { strong { (p.target.hostname) } @if cross { " (another host: a temporary read credential is granted for this job only)" } }
                    dt { "Location" } dd { @if p.target_path == "/" { "the original location" } @else { "below " code { (p.target_path) } } }
                    dt { "Existing files" } dd { (p.overwrite) " — " (OVERWRITE.iter().find(|(v, _)| *v == p.overwrite).map(|(_, w)| *w).unwrap_or("")) }
                }
                @if !p.warnings.is_empty() {
                    ul.warnings #review-warnings role="alert" {
                        @for w in p.warnings { li.warn { (w) } }
                    }
                }
                @if p.rows.is_empty() {
                    p #whole-snapshot { "The whole snapshot (" (p.snapshot.paths.join(", ")) ") is restored to "
                        @if p.target_path == "/" { "its original location." } @else { code { (p.target_path) } "." } }
                } @else {
                    table.mapping {
                        thead { tr { th scope="col" { "In the snapshot" } th scope="col" { "Lands at on " (p.target.hostname) } } }
                        tbody {
                            @for r in p.rows {
                                tr.root-owned[r.root_owned] {
                                    td { code { (r.path) } @if r.root_owned { " " span.badge.warn { "root" } } }
                                    td { code { (r.landing) } }
                                }
                            }
                        }
                    }
                }
                form.restore-confirm method="post" action={ "/hosts/" (h.id) "/restore" } {
                    (csrf_input(p.csrf))
                    @for (k, v) in &p.carry.0 {
                        @if k != "step" { input type="hidden" name=(k) value=(v); }
                    }
                    div.row-buttons {
                        button.primary type="submit" name="step" value="confirm" { "Start restore" }
                        button type="submit" name="step" value="edit" { "Change" }
                    }
                }
            }
        },
    )
}

/// The mapping rows for a plan: picked and typed paths, where each lands.
pub fn review_rows(paths: &[String], target_path: &str, root_owned: &[String]) -> Vec<ReviewRow> {
    paths
        .iter()
        .map(|p| ReviewRow {
            landing: restore_landing(target_path, p),
            root_owned: root_owned.iter().any(|r| r == p),
            path: p.clone(),
        })
        .collect()
}

/// What to warn about before a restore starts.
pub fn review_warnings(
    target: &TargetHost,
    target_path: &str,
    root_owned: &[String],
    overwrite: &str,
) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(uid) = target.agent_uid.filter(|u| *u != 0) {
        if !root_owned.is_empty() {
            w.push(format!(
                "{} of the paths {} owned by root, but the agent on {} runs as uid {uid}, not root: restic cannot give them back their owner{}. Restore into a directory that user can write, or run that agent as root.",
                root_owned.len(),
                if root_owned.len() == 1 { "is" } else { "are" },
                target.hostname,
                if target_path == "/" { ", and cannot write where only root may" } else { "" },
            ));
        } else if target_path == "/" {
            w.push(format!(
                "The agent on {} runs as uid {uid}, not root: restoring to the original location works only where that user may write.",
                target.hostname
            ));
        }
    }
    if overwrite == "always" && target_path == "/" {
        w.push(
            "Files that exist at the original location are replaced by the snapshot's copies."
                .into(),
        );
    }
    w
}

/// The changes between two snapshots, as the page shows them.
pub enum DiffResult<'a> {
    /// restic's answer.
    Shown {
        /// `{path, modifier}`.
        changes: &'a [DiffChange],
        /// restic's statistics.
        stats: &'a serde_json::Value,
        /// More changes than were kept.
        truncated: bool,
    },
    /// The agent could not compare them.
    Failed(&'a str),
}

/// `/hosts/{id}/diff`.
pub struct DiffPage<'a> {
    /// Header.
    pub chrome: HostChrome<'a>,
    /// The host's snapshots (for the selects).
    pub snapshots: &'a [SnapshotView],
    /// The older snapshot.
    pub from: &'a str,
    /// The newer snapshot.
    pub to: &'a str,
    /// The comparison, when both were given.
    pub result: Option<DiffResult<'a>>,
    /// A message next to the selects.
    pub error: Option<&'a str>,
}

fn modifier_words(m: &str) -> (&'static str, &'static str) {
    match m {
        "+" => ("added", "good"),
        "-" => ("removed", "bad"),
        "M" => ("changed", "warn"),
        "T" => ("type changed", "warn"),
        "U" => ("metadata", "muted"),
        "?" => ("bitrot?", "bad"),
        _ => ("changed", "warn"),
    }
}

fn stat(stats: &serde_json::Value, side: &str, key: &str) -> Option<i64> {
    stats.get(side)?.get(key)?.as_i64()
}

/// The compare form (host overview and the diff page).
pub fn compare_form(
    host_id: &str,
    snapshots: &[SnapshotView],
    from: &str,
    to: &str,
    error: Option<&str>,
) -> Markup {
    // Default: the two newest (snapshots come newest first).
    let to_default = if to.is_empty() {
        snapshots.first().map(|s| s.id.as_str()).unwrap_or("")
    } else {
        to
    };
    let from_default = if from.is_empty() {
        snapshots.get(1).map(|s| s.id.as_str()).unwrap_or("")
    } else {
        from
    };
    let option = |s: &SnapshotView, chosen: &str| {
        html! {
            option value=(s.id) selected[s.id == chosen || (chosen.len() >= 8 && s.id.starts_with(chosen))] {
                (s.short_id) " · " (plain_time(&s.time, 16))
            }
        }
    };
    html! {
        form.compare method="get" action={ "/hosts/" (host_id) "/diff" } {
            div.field.inline-field {
                label for="f-from" { "Compare" }
                select id="f-from" name="from" { @for s in snapshots { (option(s, from_default)) } }
            }
            div.field.inline-field {
                label for="f-to" { "with" }
                select id="f-to" name="to" { @for s in snapshots { (option(s, to_default)) } }
            }
            button type="submit" { "Compare" }
            @if let Some(e) = error { p.error role="alert" #f-compare-error { (e) } }
        }
    }
}

/// `/hosts/{id}/diff?from=&to=`: what changed between two snapshots.
pub fn diff_page(viewer: &Viewer, p: &DiffPage<'_>) -> Markup {
    let h = p.chrome.host;
    layout(
        &format!("Compare snapshots · {}", h.hostname),
        viewer,
        html! {
            (chrome(&p.chrome, HostTab::Overview))
            section.card #diff {
                h2 { "Compare snapshots" }
                @if p.snapshots.len() < 2 {
                    p.muted { "Comparing needs two snapshots; this host has " (p.snapshots.len()) "." }
                } @else {
                    (compare_form(&h.id, p.snapshots, p.from, p.to, p.error))
                }
                @match &p.result {
                    None => {}
                    Some(DiffResult::Failed(why)) => { p.error role="alert" #diff-error { "Cannot compare them: " (why) } }
                    Some(DiffResult::Shown { changes, stats, truncated }) => {
                        div.tiles #diff-stats {
                            div.tile { span.num { (stat(stats, "added", "files").unwrap_or(0)) } span.label { "files added" } }
                            div.tile { span.num { (stat(stats, "removed", "files").unwrap_or(0)) } span.label { "files removed" } }
                            div.tile { span.num { (stats.get("changed_files").and_then(|v| v.as_i64()).unwrap_or(0)) } span.label { "files changed" } }
                            div.tile { span.num { (bytes(stat(stats, "added", "bytes").unwrap_or(0))) } span.label { "data added" } }
                            div.tile { span.num { (bytes(stat(stats, "removed", "bytes").unwrap_or(0))) } span.label { "data removed" } }
                        }
                        @if changes.is_empty() {
                            p.muted #diff-none { "No differences." }
                        } @else {
                            table.diff #diff-changes {
                                thead { tr { th scope="col" { "Change" } th scope="col" { "Path" } } }
                                tbody {
                                    @for c in changes.iter() {
                                        @let (words, tone) = modifier_words(&c.modifier);
                                        tr data-modifier=(c.modifier) {
                                            td { span class={ "badge " (tone) } title=(c.modifier) { (words) } }
                                            td { code { (c.path) } }
                                        }
                                    }
                                }
                            }
                            @if *truncated { p.muted { "Only the first " (changes.len()) " changes are shown." } }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uid: Option<u32>) -> TargetHost {
        TargetHost {
            id: "h2".into(),
            hostname: "db-1".into(),
            online: true,
            agent_uid: uid,
            overwrite_policies: vec!["always"],
        }
    }

    #[test]
    fn picks_carry_their_owner() {
        assert_eq!(
            parse_pick(&pick_value(0, "/etc/a:b")),
            (Some(0), "/etc/a:b")
        );
        assert_eq!(parse_pick("1000:/home/u"), (Some(1000), "/home/u"));
        assert_eq!(parse_pick("/plain"), (None, "/plain"));
        assert_eq!(parse_pick("x:/y"), (None, "x:/y"));
    }

    #[test]
    fn root_owned_paths_are_warned_about_only_for_a_non_root_agent() {
        let root = vec!["/etc/nginx".to_string()];
        let w = review_warnings(&target(Some(1000)), "/", &root, "never");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("owned by root") && w[0].contains("uid 1000"),
            "{w:?}"
        );
        assert!(w[0].contains("cannot write where only root may"));
        let w = review_warnings(&target(Some(1000)), "/srv/r", &root, "always");
        assert!(w[0].contains("owned by root") && !w[0].contains("only root may"));
        assert!(review_warnings(&target(Some(0)), "/", &root, "never").is_empty());
        assert!(review_warnings(&target(None), "/srv", &root, "never").is_empty());
        let w = review_warnings(&target(Some(0)), "/", &[], "always");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("replaced"));
    }

    #[test]
    fn rows_say_where_each_path_lands() {
        let rows = review_rows(
            &["/etc/hosts".to_string(), "/srv".to_string()],
            "/restore",
            &["/srv".to_string()],
        );
        assert_eq!(rows[0].landing, "/restore/etc/hosts");
        assert!(!rows[0].root_owned);
        assert_eq!(rows[1].landing, "/restore/srv");
        assert!(rows[1].root_owned);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(crate::query_encode("/a b/ü&x"), "/a%20b/%C3%BC%26x");
        assert_eq!(
            wizard_href("h", "s", "/a b", 200),
            "/hosts/h/restore?snapshot=s&path=/a%20b&offset=200"
        );
        assert_eq!(wizard_href("h", "s", "/", 0), "/hosts/h/restore?snapshot=s");
    }
}
