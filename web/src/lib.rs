//! Server-rendered pages of restic-manager.
//!
//! Pages are plain functions from read-model structs to [`Markup`]; partials are small
//! private functions. No IO happens here, which keeps every page testable by rendering it
//! and querying the HTML. The stylesheet is embedded; there is no CDN and no build step.

use maud::{html, Markup, PreEscaped, DOCTYPE};

pub mod alerts;
pub mod fleet;
pub mod host;
pub mod pages;
pub mod restore;

/// The one stylesheet, light and dark.
pub const STYLESHEET: &str = include_str!("../static/style.css");

/// The little JavaScript there is: the live job log, copy buttons, the add-host page waiting
/// for its agent. Pages work without it except for these live parts.
pub const APP_JS: &str = include_str!("../static/app.js");

/// Percent-encodes a value for a URL query: RFC 3986 unreserved characters stay, and so do
/// `:` and `/` (legal in a query, and it keeps times, actors and paths readable).
pub fn query_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What the navigation bar needs to know about the viewer.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// Logged-in username, if any.
    pub username: Option<String>,
    /// Role of the logged-in user.
    pub role: Option<String>,
    /// CSRF token for forms on the page (the logout button at least).
    pub csrf_token: Option<String>,
    /// Unresolved alerts across the fleet, when the page knows them (the navigation shows
    /// "Alerts (N)").
    pub open_alerts: Option<i64>,
    /// A past view (`?as_of=`): the banner shows, links keep the seq, actions are gone.
    pub as_of: Option<AsOfView>,
}

impl Viewer {
    /// Whether the page shows a past state (read only).
    pub fn in_past(&self) -> bool {
        self.as_of.is_some()
    }

    /// An internal link, keeping `as_of` in a past view.
    pub fn link(&self, href: &str) -> String {
        match &self.as_of {
            Some(a) => a.link(href),
            None => href.to_string(),
        }
    }
}

/// A page shown as the read models were at a past seq (`?as_of=<seq or RFC 3339 time>`).
#[derive(Debug, Clone, Default)]
pub struct AsOfView {
    /// The seq answered for.
    pub seq: i64,
    /// When that event happened (RFC 3339), if there is one.
    pub at: Option<String>,
    /// The same page now: its path and query without `as_of`.
    pub now_href: String,
}

impl AsOfView {
    /// `href` with `as_of=<seq>` added to its query (before any fragment).
    pub fn link(&self, href: &str) -> String {
        let (base, frag) = href.split_at(href.find('#').unwrap_or(href.len()));
        if base.contains("as_of=") {
            return href.to_string();
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}as_of={}{frag}", self.seq)
    }

    /// Makes a rendered page body read only and keeps it in the past: every form goes (no
    /// action can be taken from a past state), live-follow markers are switched off, and
    /// every internal page link (not `/api/`, not `/static/`) gets `as_of`.
    pub fn past_body(&self, body: &str) -> String {
        let body = strip_forms(body).replace("data-live=\"1\"", "data-live=\"0\"");
        let mut out = String::with_capacity(body.len() + 256);
        let mut rest = body.as_str();
        const HREF: &str = "href=\"/";
        while let Some(i) = rest.find(HREF) {
            let start = i + HREF.len() - 1;
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find('"').unwrap_or(rest.len());
            let url = &rest[..end];
            let internal = !url.starts_with("//")
                && !url.starts_with("/api/")
                && !url.starts_with("/static/")
                && !url.contains("as_of=");
            if internal {
                let (base, frag) = url.split_at(url.find('#').unwrap_or(url.len()));
                let sep = if base.contains('?') { "&amp;" } else { "?" };
                out.push_str(&format!("{base}{sep}as_of={}{frag}", self.seq));
            } else {
                out.push_str(url);
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

/// The HTML without its `<form>…</form>` elements (forms do not nest).
fn strip_forms(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("<form") {
        out.push_str(&rest[..i]);
        match rest[i..].find("</form>") {
            Some(j) => rest = &rest[i + j + "</form>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The banner at the top of every past view.
pub fn as_of_banner(a: &AsOfView) -> Markup {
    html! {
        div.as-of-banner role="status" {
            strong { "Viewing the fleet as of " }
            @match &a.at {
                Some(at) => { time datetime=(at) { (at) } " (seq " (a.seq) ")" }
                None => { "seq " (a.seq) }
            }
            " — read only. "
            a.back-to-now href=(a.now_href) { "Back to now" }
        }
    }
}

/// The page frame: head, navigation, main content.
pub fn layout(title: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · restic-manager" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header.topbar {
                    a.brand href="/" { "restic-manager" }
                    @if let Some(name) = &viewer.username {
                        nav aria-label="Main" {
                            a href=(viewer.link("/")) { "Dashboard" }
                            a href=(viewer.link("/alerts")) {
                                "Alerts"
                                @if let Some(n) = viewer.open_alerts { " (" span.nav-count.bad[n > 0] { (n) } ")" }
                            }
                            a href=(viewer.link("/audit")) { "Audit" }
                            @if viewer.role.as_deref() == Some("admin") { a href="/settings" { "Settings" } }
                        }
                        div.who {
                            span { (name) @if let Some(r) = &viewer.role { " · " (r) } }
                            @if !viewer.in_past() {
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf_token" value=(viewer.csrf_token.as_deref().unwrap_or(""));
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main {
                    @match &viewer.as_of {
                        Some(a) => { (as_of_banner(a)) (PreEscaped(a.past_body(&body.into_string()))) }
                        None => { (body) }
                    }
                }
                script src="/static/app.js" defer {}
            }
        }
    }
}

/// A labelled input with its error message beside it.
pub(crate) fn field(
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    error: Option<&str>,
    hint: Option<&str>,
    autocomplete: &str,
) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = match (error.is_some(), hint.is_some()) {
        (true, true) => format!("{err_id} {hint_id}"),
        (true, false) => err_id.clone(),
        (false, true) => hint_id.clone(),
        (false, false) => String::new(),
    };
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value) required
                autocomplete=(autocomplete)
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[(!described.is_empty()).then_some(described.as_str())];
            @if let Some(h) = hint { p.hint id=(hint_id) { (h) } }
            @if let Some(e) = error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// A labelled text input that may stay empty.
pub(crate) fn optional_field(label: &str, name: &str, value: &str, error: Option<&str>) -> Markup {
    let id = format!("f-{name}");
    let err_id = format!("{id}-error");
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type="text" value=(value) autocomplete="off"
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| err_id.as_str())];
            @if let Some(e) = error { p.error id=(err_id) role="alert" { (e) } }
        }
    }
}

/// An error page in the layout.
pub fn error_page(viewer: &Viewer, status: u16, title: &str, message: &str) -> Markup {
    layout(
        title,
        viewer,
        html! {
            section.card.narrow {
                h1 { (title) }
                p { (message) }
                p.muted { "HTTP " (status) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}
