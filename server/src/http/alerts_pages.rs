//! `/alerts` (acknowledge and resolve from the list) and `/settings` (notification channels,
//! a test send per channel, recent deliveries). Forms work without JavaScript; a refused
//! channel comes back with what was typed, except its secrets.

use std::collections::HashMap;

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use domain::{Actor, DomainError};
use serde_json::{json, Map, Value};
use web::host::{Errors, Typed};
use web::Viewer;

use super::error::AppError;
use super::extract::{CurrentUser, MaybeUser};
use super::pages::{as_of_param, can_manage, html, query_get, query_pairs, viewer};
use super::sources_pages::error_response;
use super::AppState;
use crate::notify::ChannelInput;

type Pairs = Form<Vec<(String, String)>>;

const OPERATORS: &[&str] = &["admin", "operator"];
const ADMINS: &[&str] = &["admin"];

/// Fields that hold secrets: never shown again, not even after a refused form.
const SECRET_FIELDS: &[&str] = &["secret", "token", "password"];

fn actor(me: &CurrentUser) -> Actor {
    Actor::User(me.user.user_id.clone())
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn respond(state: &AppState, me: &CurrentUser, r: Result<Response, AppError>) -> Response {
    r.unwrap_or_else(|e| error_response(state, me, e))
}

/// The viewer with the fleet's unresolved alert count for the navigation.
async fn viewer_with_alerts(state: &AppState, me: &CurrentUser) -> Result<Viewer, AppError> {
    let counts = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::alerts::unresolved_counts(c)?) })
        .await?;
    let mut v = viewer(state, me);
    v.open_alerts = Some(counts.values().sum());
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Alerts

fn alert_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "acknowledged" => "Alert acknowledged: it stays listed until its condition clears.",
        "resolved" => "Alert resolved: it is raised again if the condition persists.",
        _ => return None,
    })
}

fn valid_filter(f: Option<&str>) -> &'static str {
    match f.unwrap_or("active") {
        "open" => "open",
        "acknowledged" => "acknowledged",
        "resolved" => "resolved",
        "all" => "all",
        _ => "active",
    }
}

async fn render_alerts(
    state: &AppState,
    me: &CurrentUser,
    q: Option<&str>,
) -> Result<Response, AppError> {
    let pairs = query_pairs(q);
    let filter = valid_filter(query_get(&pairs, "state"));
    let host = query_get(&pairs, "host").map(str::to_string);
    let as_of = query_get(&pairs, "as_of").map(str::to_string);
    let h = host.clone();
    let ((alerts, hostnames), seq) = state
        .read_as_of(as_of.as_deref(), move |c| -> Result<_, AppError> {
            let limit = 500;
            let mut alerts = match filter {
                "all" => projections::alerts::list(c, None, h.as_deref(), limit)?,
                "active" => {
                    let mut a = projections::alerts::list(c, Some("open"), h.as_deref(), limit)?;
                    a.extend(projections::alerts::list(
                        c,
                        Some("acknowledged"),
                        h.as_deref(),
                        limit,
                    )?);
                    a
                }
                s => projections::alerts::list(c, Some(s), h.as_deref(), limit)?,
            };
            alerts.sort_by(|a, b| b.raised_at.cmp(&a.raised_at));
            let hostnames: HashMap<String, String> = projections::hosts::list(c)?
                .into_iter()
                .map(|h| (h.id, h.hostname))
                .collect();
            Ok((alerts, hostnames))
        })
        .await?;
    let mut v = viewer_with_alerts(state, me).await?;
    v.as_of = super::pages::as_of_view(state, seq, "/alerts", q).await?;
    let csrf = state.csrf.token_for(&me.token);
    let page = web::alerts::AlertsPage {
        alerts: &alerts,
        hostnames: &hostnames,
        filter,
        host: host.as_deref(),
        now: state.clock.now(),
        can_manage: can_manage(me),
        csrf: &csrf,
        notice: alert_notice(query_get(&pairs, "done")),
        as_of: seq,
    };
    Ok(html(StatusCode::OK, web::alerts::alerts_page(&v, &page)))
}

/// `GET /alerts?state=active|open|acknowledged|resolved|all&host=` *(as_of)*.
pub async fn alerts_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = render_alerts(&state, &me, q.as_deref()).await;
    respond(&state, &me, r)
}

/// Back to the list the form came from, with a notice.
fn back_to_alerts(form: &[(String, String)], done: &str) -> Response {
    let filter = valid_filter(query_get(form, "state"));
    let mut q = vec![("state", filter.to_string())];
    if let Some(h) = query_get(form, "host") {
        q.push(("host", h.to_string()));
    }
    q.push(("done", done.to_string()));
    see_other(&format!(
        "/alerts?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    ))
}

/// `POST /alerts/{id}/ack` (admins and operators).
pub async fn ack_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Form(form): Pairs,
) -> Response {
    let r = async {
        me.require(OPERATORS)?;
        crate::alerts::acknowledge(&state, actor(&me), &id).await?;
        Ok(back_to_alerts(&form, "acknowledged"))
    }
    .await;
    respond(&state, &me, r)
}

/// `POST /alerts/{id}/resolve` (admins and operators).
pub async fn resolve_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Form(form): Pairs,
) -> Response {
    let r = async {
        me.require(OPERATORS)?;
        crate::alerts::resolve(&state, actor(&me), &id).await?;
        Ok(back_to_alerts(&form, "resolved"))
    }
    .await;
    respond(&state, &me, r)
}

// ---------------------------------------------------------------------------------------
// Settings

fn settings_notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "channel-created" => "Channel added.",
        "channel-deleted" => "Channel deleted.",
        "test-queued" => "Test notification queued: its delivery shows below.",
        _ => return None,
    })
}

async fn render_settings(
    state: &AppState,
    me: &CurrentUser,
    status: StatusCode,
    typed: Typed,
    errors: Errors,
    notice: Option<&'static str>,
    q: Option<&str>,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let as_of = as_of_param(q);
    let ((channels, notifications), seq) = state
        .read_as_of(as_of.as_deref(), |c| -> Result<_, AppError> {
            Ok((
                projections::alerts::channels(c)?,
                projections::alerts::recent_notifications(c, 50)?,
            ))
        })
        .await?;
    let mut v = viewer_with_alerts(state, me).await?;
    v.as_of = super::pages::as_of_view(state, seq, "/settings", q).await?;
    let csrf = state.csrf.token_for(&me.token);
    let page = web::alerts::SettingsPage {
        channels: &channels,
        notifications: &notifications,
        typed: &typed,
        errors: &errors,
        csrf: &csrf,
        notice,
        now: state.clock.now(),
    };
    Ok(html(status, web::alerts::settings_page(&v, &page)))
}

/// `GET /settings` (admins).
pub async fn settings_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let pairs = query_pairs(q.as_deref());
    let notice = settings_notice(query_get(&pairs, "done"));
    let r = render_settings(
        &state,
        &me,
        StatusCode::OK,
        Typed::default(),
        Errors::default(),
        notice,
        q.as_deref(),
    )
    .await;
    respond(&state, &me, r)
}

/// The channel as typed on the form, or the messages of the fields that do not parse.
fn channel_input(t: &Typed) -> Result<ChannelInput, Errors> {
    let mut errors = Errors::default();
    let mut config = Map::new();
    let mut put = |k: &str, v: &str| {
        let v = v.trim();
        if !v.is_empty() {
            config.insert(k.to_string(), Value::String(v.to_string()));
        }
    };
    let kind = t.get("kind").to_string();
    match kind.as_str() {
        "webhook" => {
            put("url", t.get("webhook_url"));
            put("secret", t.get("secret"));
        }
        "ntfy" => {
            put("url", t.get("ntfy_url"));
            put("token", t.get("token"));
        }
        "email" => {
            put("smtp_host", t.get("smtp_host"));
            put("security", t.get("security"));
            put("username", t.get("username"));
            put("password", t.get("password"));
            put("from", t.get("from"));
            match t.get("smtp_port").trim() {
                "" => {}
                p => match p.parse::<u16>() {
                    Ok(n) if n > 0 => {
                        config.insert("smtp_port".into(), json!(n));
                    }
                    _ => errors.add("smtp_port", "The port must be a number from 1 to 65535"),
                },
            }
            let to: Vec<Value> = t
                .get("to")
                .split([',', '\n'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| Value::String(a.to_string()))
                .collect();
            if to.is_empty() {
                errors.add("to", "Add at least one address");
            }
            config.insert("to".into(), Value::Array(to));
        }
        _ => errors.add("kind", "Pick webhook, ntfy or email"),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ChannelInput {
        kind,
        name: t.get("name").to_string(),
        config: Value::Object(config),
        alert_kinds: t
            .all("alert_kinds")
            .into_iter()
            .map(str::to_string)
            .collect(),
    })
}

/// Which form field a domain message about a channel belongs to.
fn channel_error(kind: &str, field: &str, message: &str) -> (String, String) {
    let text = {
        let mut c = message.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect::<String>(),
            None => String::new(),
        }
    };
    match field {
        "name" => ("name".into(), format!("The name {message}")),
        "alert_kinds" => ("alert_kinds".into(), text),
        "kind" => ("kind".into(), format!("The kind {message}")),
        "config" if message.starts_with("url ") => match kind {
            "ntfy" => ("ntfy_url".into(), format!("The URL {}", &message[4..])),
            _ => ("webhook_url".into(), format!("The URL {}", &message[4..])),
        },
        "config" if message.starts_with("smtp_host") => {
            ("smtp_host".into(), "The SMTP host is required".into())
        }
        _ => (String::new(), text),
    }
}

async fn create_channel(
    state: &AppState,
    me: &CurrentUser,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let result = match channel_input(&t) {
        Ok(input) => crate::notify::save_channel(state, actor(me), None, input)
            .await
            .map_err(|e| match e {
                AppError::Domain(DomainError::Invalid { field, message }) => {
                    let (k, m) = channel_error(t.get("kind"), field, &message);
                    let mut errors = Errors::default();
                    errors.add(&k, m);
                    Ok(errors)
                }
                other => Err(other),
            }),
        Err(errors) => Err(Ok(errors)),
    };
    match result {
        Ok(_) => Ok(see_other("/settings?done=channel-created")),
        Err(Ok(errors)) => {
            let mut kept = t;
            kept.0.retain(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()));
            render_settings(state, me, StatusCode::BAD_REQUEST, kept, errors, None, None).await
        }
        Err(Err(e)) => Err(e),
    }
}

/// `POST /settings/channels`: adds a channel (admins).
pub async fn create_channel_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(pairs): Pairs,
) -> Response {
    let t = Typed(
        pairs
            .into_iter()
            .filter(|(k, _)| k != "csrf_token")
            .collect(),
    );
    let r = create_channel(&state, &me, t).await;
    respond(&state, &me, r)
}

/// `POST /settings/channels/{id}/test`: queues a test notification (admins).
pub async fn test_channel_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        me.require(ADMINS)?;
        crate::notify::test_channel(&state, actor(&me), &id).await?;
        Ok(see_other("/settings?done=test-queued#deliveries"))
    }
    .await;
    respond(&state, &me, r)
}

/// `POST /settings/channels/{id}/delete` (admins).
pub async fn delete_channel_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        me.require(ADMINS)?;
        crate::notify::delete_channel(&state, actor(&me), &id).await?;
        Ok(see_other("/settings?done=channel-deleted"))
    }
    .await;
    respond(&state, &me, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(pairs: &[(&str, &str)]) -> Typed {
        Typed(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn email_fields_become_the_channel_config() {
        let t = typed(&[
            ("kind", "email"),
            ("name", "ops"),
            ("smtp_host", "mail.example"),
            ("smtp_port", "465"),
            ("security", "tls"),
            ("from", "rm@example.org"),
            ("to", "a@example.org, b@example.org\nc@example.org"),
            ("alert_kinds", "backup_failed"),
        ]);
        let c = channel_input(&t).unwrap();
        assert_eq!(c.config["smtp_port"], 465);
        assert_eq!(c.config["to"].as_array().unwrap().len(), 3);
        assert_eq!(c.alert_kinds, ["backup_failed"]);
        let bad = channel_input(&typed(&[("kind", "email"), ("smtp_port", "x")])).unwrap_err();
        assert!(bad.get("smtp_port").is_some());
        assert!(bad.get("to").is_some());
    }
}
