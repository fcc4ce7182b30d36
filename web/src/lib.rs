//! Server-rendered pages of restic-manager.
//!
//! Pages are plain functions from read-model structs to [`Markup`]; partials are small
//! private functions. No IO happens here, which keeps every page testable by rendering it
//! and querying the HTML. The stylesheet is embedded; there is no CDN and no build step.

use maud::{html, Markup, DOCTYPE};

pub mod alerts;
pub mod fleet;
pub mod host;
pub mod pages;

/// The one stylesheet, light and dark.
pub const STYLESHEET: &str = include_str!("../static/style.css");

/// The little JavaScript there is: the live job log, copy buttons, the add-host page waiting
/// for its agent. Pages work without it except for these live parts.
pub const APP_JS: &str = include_str!("../static/app.js");

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
                            a href="/" { "Dashboard" }
                            a href="/alerts" {
                                "Alerts"
                                @if let Some(n) = viewer.open_alerts { " (" span.nav-count.bad[n > 0] { (n) } ")" }
                            }
                            a href="/audit" { "Audit" }
                            @if viewer.role.as_deref() == Some("admin") { a href="/settings" { "Settings" } }
                        }
                        div.who {
                            span { (name) @if let Some(r) = &viewer.role { " · " (r) } }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf_token" value=(viewer.csrf_token.as_deref().unwrap_or(""));
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
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
