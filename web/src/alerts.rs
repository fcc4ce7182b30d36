//! The alerts page and the settings page (notification channels and their deliveries).

use std::collections::HashMap;

use domain::alerts::AlertKind;
use domain::Timestamp;
use maud::{html, Markup};
use projections::alerts::{Alert, Channel, Notification};

use crate::fleet::ago;
use crate::host::{short_time, Errors, Typed};
use crate::{layout, Viewer};

/// The filters of the alerts page: (query value, label).
pub const ALERT_FILTERS: [(&str, &str); 5] = [
    ("active", "Open and acknowledged"),
    ("open", "Open"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("all", "All"),
];

/// What `/alerts` shows.
pub struct AlertsPage<'a> {
    /// The alerts, newest first.
    pub alerts: &'a [Alert],
    /// Hostnames by host id.
    pub hostnames: &'a HashMap<String, String>,
    /// The filter: active, open, acknowledged, resolved or all.
    pub filter: &'a str,
    /// Only this host, if given.
    pub host: Option<&'a str>,
    /// Now, for relative times.
    pub now: Timestamp,
    /// Whether the viewer may acknowledge and resolve.
    pub can_manage: bool,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// A line after a redirect.
    pub notice: Option<&'a str>,
    /// The seq answered for (`?as_of=`): a read-only past view.
    pub as_of: Option<i64>,
}

/// A link to the alerts page with a filter (and the host filter kept).
pub fn alerts_href(filter: &str, host: Option<&str>) -> String {
    let mut q = vec![("state", filter)];
    if let Some(h) = host {
        q.push(("host", h));
    }
    let qs: Vec<String> = q
        .into_iter()
        .map(|(k, v)| format!("{k}={}", crate::query_encode(v)))
        .collect();
    format!("/alerts?{}", qs.join("&"))
}

/// A severity badge.
pub fn severity_badge(severity: &str) -> Markup {
    let class = match severity {
        "critical" => "bad",
        "warning" => "warn",
        _ => "muted",
    };
    html! { span.badge.severity.(class) { (severity) } }
}

/// A state badge.
fn state_badge(state: &str) -> Markup {
    let class = match state {
        "open" => "bad",
        "acknowledged" => "warn",
        "resolved" => "good",
        _ => "muted",
    };
    html! { span.badge.(class) { (state) } }
}

/// An open-alert count as a badge linking to the host's alerts (nothing for zero).
pub fn alert_count_badge(host_id: &str, count: i64) -> Markup {
    html! {
        @if count > 0 {
            a.badge.bad.alert-count.over href=(alerts_href("active", Some(host_id)))
                title="Open and acknowledged alerts" {
                (count) " open alert" @if count != 1 { "s" }
            }
        } @else {
            span.muted { "0" }
        }
    }
}

fn time(now: Timestamp, at: &str) -> Markup {
    html! { time datetime=(at) title=(short_time(at)) { (ago(now, at)) } }
}

/// `/alerts`: filter tabs and a row per alert linking to its host.
pub fn alerts_page(viewer: &Viewer, p: &AlertsPage<'_>) -> Markup {
    let hostname = |id: &str| -> String {
        p.hostnames
            .get(id)
            .cloned()
            .unwrap_or_else(|| "a deleted host".into())
    };
    let manage = p.can_manage && p.as_of.is_none();
    layout(
        "Alerts",
        viewer,
        html! {
            div.page-head {
                h1 { "Alerts" }
                @if let Some(h) = p.host {
                    p.muted { "Host " a href={ "/hosts/" (h) } { (hostname(h)) } " · " a href=(alerts_href(p.filter, None)) { "all hosts" } }
                }
            }
            @if let Some(n) = p.notice { p.notice role="status" { (n) } }
            nav.tabs aria-label="Alert states" {
                @for (f, label) in ALERT_FILTERS {
                    a href=(alerts_href(f, p.host)) aria-current=[(f == p.filter).then_some("page")] { (label) }
                }
            }
            @if p.alerts.is_empty() {
                section.card.empty {
                    p { "No alerts here." }
                    p.muted { "Alerts are raised by the server when a backup fails or goes stale, a scheduled run is missed, an agent goes offline, a check fails or a repository stays locked." }
                }
            } @else {
                table.alerts {
                    thead { tr {
                        th scope="col" { "Severity" } th scope="col" { "Kind" } th scope="col" { "Host" }
                        th scope="col" { "Message" } th scope="col" { "Raised" } th scope="col" { "State" }
                        th scope="col" { "Job" }
                        @if manage { th scope="col" { span.visually-hidden { "Actions" } } }
                    } }
                    tbody {
                        @for a in p.alerts {
                            tr.row-link.(a.state) {
                                td { (severity_badge(&a.severity)) }
                                td { code { (a.kind) } }
                                td { a.row-anchor href={ "/hosts/" (a.host_id) } { (hostname(&a.host_id)) } }
                                td { (a.message) }
                                td { (time(p.now, &a.raised_at)) }
                                td {
                                    (state_badge(&a.state))
                                    @if let Some(at) = &a.acknowledged_at {
                                        @if a.state == "acknowledged" {
                                            br; span.small.muted { "by " (a.acknowledged_by.as_deref().unwrap_or("?")) " " (time(p.now, at)) }
                                        }
                                    }
                                    @if let Some(at) = &a.resolved_at {
                                        br; span.small.muted { "resolved " (time(p.now, at)) }
                                    }
                                }
                                td {
                                    @if let Some(j) = &a.job_id { a.over href={ "/jobs/" (j) } { "job" } }
                                    @else { span.muted { "—" } }
                                }
                                @if manage {
                                    td.actions {
                                        div.row-buttons {
                                            @if a.state == "open" {
                                                (alert_action(p, a, "ack", "Acknowledge"))
                                            }
                                            @if a.state != "resolved" {
                                                (alert_action(p, a, "resolve", "Resolve"))
                                            }
                                        }
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

fn alert_action(p: &AlertsPage<'_>, a: &Alert, op: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/alerts/" (a.id) "/" (op) } {
            input type="hidden" name="csrf_token" value=(p.csrf);
            input type="hidden" name="state" value=(p.filter);
            @if let Some(h) = p.host { input type="hidden" name="host" value=(h); }
            button.small type="submit" { (label) }
        }
    }
}

/// What `/settings` shows.
pub struct SettingsPage<'a> {
    /// The channels, oldest first.
    pub channels: &'a [Channel],
    /// Recent deliveries, newest first.
    pub notifications: &'a [Notification],
    /// The add-channel form as typed (never with secrets).
    pub typed: &'a Typed,
    /// Messages for the add-channel form (`""`: the whole form).
    pub errors: &'a Errors,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// A line after a redirect.
    pub notice: Option<&'a str>,
    /// Now, for relative times.
    pub now: Timestamp,
}

/// Where a channel sends to, in short (never a secret).
pub fn target_summary(c: &Channel) -> String {
    let s = |k: &str| c.config.get(k).and_then(|v| v.as_str()).unwrap_or("");
    match c.kind.as_str() {
        "email" => {
            let to: Vec<&str> = c
                .config
                .get("to")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            let port = c
                .config
                .get("smtp_port")
                .map(|p| p.to_string())
                .unwrap_or_default();
            format!(
                "{} via {}:{} ({})",
                to.join(", "),
                s("smtp_host"),
                port,
                s("security")
            )
        }
        _ => s("url").to_string(),
    }
}

fn text_field(
    t: &Typed,
    e: &Errors,
    label: &str,
    name: &str,
    kind: &str,
    hint: Option<&str>,
) -> Markup {
    let id = format!("f-{name}");
    let err = e.get(name);
    let err_id = format!("{id}-error");
    let value = if kind == "password" { "" } else { t.get(name) };
    html! {
        div.field.invalid[err.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value)
                autocomplete=(if kind == "password" { "new-password" } else { "off" })
                aria-invalid=[err.map(|_| "true")]
                aria-describedby=[err.map(|_| err_id.as_str())];
            @if let Some(h) = hint { p.hint { (h) } }
            @if let Some(m) = err { p.error id=(err_id) role="alert" { (m) } }
        }
    }
}

/// `/settings`: notification channels, the add-channel form and recent deliveries.
pub fn settings_page(viewer: &Viewer, p: &SettingsPage<'_>) -> Markup {
    let t = p.typed;
    let e = p.errors;
    let kind = match t.get("kind") {
        "" => "webhook",
        k => k,
    };
    let names: HashMap<&str, &str> = p
        .channels
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    let chosen = t.all("alert_kinds");
    layout(
        "Settings",
        viewer,
        html! {
            h1 { "Settings" }
            @if let Some(n) = p.notice { p.notice role="status" { (n) } }
            section.card #channels {
                h2 { "Notification channels" }
                @if p.channels.is_empty() {
                    p.muted { "No channels yet: alerts show on the Alerts page only." }
                } @else {
                    table.channels {
                        thead { tr {
                            th scope="col" { "Kind" } th scope="col" { "Name" } th scope="col" { "Sends to" }
                            th scope="col" { "Alert kinds" } th scope="col" { "Secret" }
                            th scope="col" { span.visually-hidden { "Actions" } }
                        } }
                        tbody {
                            @for c in p.channels {
                                tr {
                                    td { span.tag { (c.kind) } }
                                    td { (c.name) }
                                    td { code { (target_summary(c)) } }
                                    td {
                                        @if c.alert_kinds.is_empty() { span.muted { "all" } }
                                        @else { @for k in &c.alert_kinds { span.tag { (k) } " " } }
                                    }
                                    td { @if c.has_secret { "stored" } @else { span.muted { "none" } } }
                                    td.actions {
                                        div.row-buttons {
                                            form.inline method="post" action={ "/settings/channels/" (c.id) "/test" } {
                                                input type="hidden" name="csrf_token" value=(p.csrf);
                                                button.small type="submit" { "Send test" }
                                            }
                                            form.inline method="post" action={ "/settings/channels/" (c.id) "/delete" } {
                                                input type="hidden" name="csrf_token" value=(p.csrf);
                                                button.link.danger-text type="submit" { "Delete" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card #add-channel {
                h2 { "Add a channel" }
                @if let Some(m) = e.get("") { p.error.banner role="alert" { (m) } }
                form.channel method="post" action="/settings/channels" {
                    input type="hidden" name="csrf_token" value=(p.csrf);
                    div.grid-2 {
                        div.field.invalid[e.get("kind").is_some()] {
                            label for="f-kind" { "Kind" }
                            select id="f-kind" name="kind" {
                                @for (k, label) in [("webhook", "Webhook"), ("ntfy", "ntfy"), ("email", "Email (SMTP)")] {
                                    option value=(k) selected[k == kind] { (label) }
                                }
                            }
                            @if let Some(m) = e.get("kind") { p.error role="alert" { (m) } }
                        }
                        (text_field(t, e, "Name", "name", "text", None))
                    }
                    fieldset.kind data-kind="webhook" {
                        legend { "Webhook" }
                        (text_field(t, e, "URL", "webhook_url", "url", Some("A JSON POST per notification.")))
                        (text_field(t, e, "Signing secret (optional)", "secret", "password", Some("Signs each body with HMAC-SHA256 (X-RM-Signature). Stored in the vault, never shown again.")))
                    }
                    fieldset.kind data-kind="ntfy" {
                        legend { "ntfy" }
                        (text_field(t, e, "Topic URL", "ntfy_url", "url", Some("For example https://ntfy.sh/my-backups")))
                        (text_field(t, e, "Access token (optional)", "token", "password", None))
                    }
                    fieldset.kind data-kind="email" {
                        legend { "Email" }
                        div.grid-3 {
                            (text_field(t, e, "SMTP host", "smtp_host", "text", None))
                            (text_field(t, e, "Port", "smtp_port", "number", Some("Empty: 587")))
                            div.field {
                                label for="f-security" { "Security" }
                                select id="f-security" name="security" {
                                    @for s in ["starttls", "tls", "none"] {
                                        option value=(s) selected[t.get("security") == s] { (s) }
                                    }
                                }
                            }
                        }
                        div.grid-2 {
                            (text_field(t, e, "Username (optional)", "username", "text", None))
                            (text_field(t, e, "Password (optional)", "password", "password", None))
                        }
                        (text_field(t, e, "From", "from", "text", None))
                        div.field.invalid[e.get("to").is_some()] {
                            label for="f-to" { "To" }
                            textarea id="f-to" name="to" rows="2" aria-describedby="f-to-hint" { (t.get("to")) }
                            p.hint id="f-to-hint" { "Addresses separated by commas or new lines." }
                            @if let Some(m) = e.get("to") { p.error role="alert" { (m) } }
                        }
                    }
                    fieldset.field.invalid[e.get("alert_kinds").is_some()] {
                        legend { "Alert kinds" }
                        p.hint { "None ticked: every kind." }
                        div.row-buttons {
                            @for k in AlertKind::ALL {
                                label.check {
                                    input type="checkbox" name="alert_kinds" value=(k.as_str())
                                        checked[chosen.contains(&k.as_str())];
                                    " " (k.as_str())
                                }
                            }
                        }
                        @if let Some(m) = e.get("alert_kinds") { p.error role="alert" { (m) } }
                    }
                    @if let Some(m) = e.get("config") { p.error.banner role="alert" { (m) } }
                    button.primary type="submit" { "Add channel" }
                }
            }
            section.card #deliveries {
                h2 { "Recent deliveries" }
                @if p.notifications.is_empty() {
                    p.muted { "Nothing sent yet." }
                } @else {
                    table.deliveries {
                        thead { tr {
                            th scope="col" { "Queued" } th scope="col" { "Channel" } th scope="col" { "What" }
                            th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" }
                        } }
                        tbody {
                            @for n in p.notifications {
                                tr {
                                    td { (time(p.now, &n.queued_at)) }
                                    td { (names.get(n.channel_id.as_str()).copied().unwrap_or("a deleted channel")) }
                                    td { (n.what) }
                                    td { (delivery_badge(&n.state)) }
                                    td { (n.attempts) }
                                    td { @if let Some(err) = &n.last_error { span.small { (err) } } @else { span.muted { "—" } } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn delivery_badge(state: &str) -> Markup {
    let class = match state {
        "delivered" => "good",
        "queued" | "retrying" => "warn",
        "failed" => "bad",
        _ => "muted",
    };
    html! { span.badge.delivery.(class) { (state) } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scraper::{Html, Selector};

    fn alert(id: &str, state: &str) -> Alert {
        Alert {
            id: id.into(),
            host_id: "h1".into(),
            kind: "backup_failed".into(),
            severity: "critical".into(),
            state: state.into(),
            raised_at: "2026-01-01T00:00:00Z".into(),
            resolved_at: None,
            message: "<b>boom</b>".into(),
            subject: None,
            job_id: Some("j1".into()),
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_reason: None,
        }
    }

    #[test]
    fn alert_rows_link_to_the_host_and_offer_actions() {
        let alerts = [alert("a1", "open"), alert("a2", "acknowledged")];
        let names = HashMap::from([("h1".to_string(), "web-1".to_string())]);
        let page = alerts_page(
            &Viewer::default(),
            &AlertsPage {
                alerts: &alerts,
                hostnames: &names,
                filter: "active",
                host: None,
                now: "2026-01-01T01:00:00Z".parse().unwrap(),
                can_manage: true,
                csrf: "tok",
                notice: None,
                as_of: None,
            },
        )
        .into_string();
        let doc = Html::parse_document(&page);
        let s = |c: &str| Selector::parse(c).unwrap();
        let anchors: Vec<_> = doc
            .select(&s("tr.row-link a.row-anchor"))
            .map(|a| a.value().attr("href").unwrap().to_string())
            .collect();
        assert_eq!(anchors, ["/hosts/h1", "/hosts/h1"]);
        assert_eq!(doc.select(&s("form[action='/alerts/a1/ack']")).count(), 1);
        assert_eq!(doc.select(&s("form[action='/alerts/a2/ack']")).count(), 0);
        assert_eq!(
            doc.select(&s("form[action='/alerts/a2/resolve']")).count(),
            1
        );
        assert!(page.contains("&lt;b&gt;boom"));
        assert!(page.contains("href=\"/jobs/j1\""));
    }

    #[test]
    fn the_settings_form_never_echoes_secrets() {
        let mut t = Typed::default();
        t.set("kind", "ntfy");
        t.set("name", "ops");
        t.set("token", "tok-secret");
        let ch = [Channel {
            id: "c1".into(),
            kind: "webhook".into(),
            name: "hooky".into(),
            config: r#"{"url": "https://hooks.example/x"}"#.parse().unwrap(),
            alert_kinds: vec![],
            has_secret: true,
        }];
        let page = settings_page(
            &Viewer::default(),
            &SettingsPage {
                channels: &ch,
                notifications: &[],
                typed: &t,
                errors: &Errors::default(),
                csrf: "tok",
                notice: None,
                now: "2026-01-01T01:00:00Z".parse().unwrap(),
            },
        )
        .into_string();
        assert!(!page.contains("tok-secret"));
        assert!(page.contains("https://hooks.example/x"));
        assert!(page.contains("action=\"/settings/channels/c1/test\""));
        assert!(page.contains("<option value=\"ntfy\" selected>"));
    }
}
