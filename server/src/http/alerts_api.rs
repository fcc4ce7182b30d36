//! Alerts and notification channels (API.md "Restore and alerts").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{Actor, DomainError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AppError;
use super::extract::{AppJson, AppQuery, CurrentUser};
use super::AppState;
use crate::notify::ChannelInput;

const OPERATORS: &[&str] = &["admin", "operator"];
const ADMINS: &[&str] = &["admin"];

fn actor(me: &CurrentUser) -> Actor {
    Actor::User(me.user.user_id.clone())
}

/// `GET /api/alerts` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    as_of: Option<String>,
}

/// `GET /api/alerts?state=open|acknowledged|resolved&host=` *(as_of)*.
pub async fn list(
    State(state): State<AppState>,
    _me: CurrentUser,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Response, AppError> {
    if let Some(s) = &q.state {
        if !matches!(s.as_str(), "open" | "acknowledged" | "resolved") {
            return Err(AppError::bad_request(
                "invalid_query",
                "state must be open, acknowledged or resolved",
            ));
        }
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let as_of = q.as_of.clone().filter(|s| !s.trim().is_empty());
    let (alerts, seq) = state
        .read_as_of(as_of.as_deref(), move |c| -> Result<_, AppError> {
            Ok(projections::alerts::list(
                c,
                q.state.as_deref(),
                q.host.as_deref(),
                limit,
            )?)
        })
        .await?;
    Ok(super::extract::with_as_of(
        seq,
        Json(json!({ "alerts": alerts })),
    ))
}

/// `GET /api/alerts/{id}`.
pub async fn get(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let a = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::alerts::get(c, &id)?) })
        .await?
        .ok_or(DomainError::UnknownAlert)?;
    Ok(Json(serde_json::to_value(a).unwrap_or(Value::Null)))
}

/// `POST /api/alerts/{id}/ack`.
pub async fn ack(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(OPERATORS)?;
    crate::alerts::acknowledge(&state, actor(&me), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/alerts/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(OPERATORS)?;
    crate::alerts::resolve(&state, actor(&me), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/notification-channels` (admins: the settings page).
pub async fn list_channels(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    let list = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::alerts::channels(c)?) })
        .await?;
    Ok(Json(json!({ "channels": list })))
}

async fn load_channel(state: &AppState, id: &str) -> Result<Value, AppError> {
    let id = id.to_string();
    let c = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::alerts::channel(c, &id)?) })
        .await?
        .ok_or(DomainError::UnknownChannel)?;
    Ok(serde_json::to_value(c).unwrap_or(Value::Null))
}

/// `GET /api/notification-channels/{id}`.
pub async fn get_channel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    Ok(Json(load_channel(&state, &id).await?))
}

/// `POST /api/notification-channels`: `{kind, name, config, alert_kinds}`. Secrets in
/// `config` (`secret`, `token`, `password`) go to the vault and are never shown again.
pub async fn create_channel(
    State(state): State<AppState>,
    me: CurrentUser,
    AppJson(b): AppJson<ChannelInput>,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let id = crate::notify::save_channel(&state, actor(&me), None, b).await?;
    Ok((StatusCode::CREATED, Json(load_channel(&state, &id).await?)).into_response())
}

/// `PUT /api/notification-channels/{id}` (a missing secret keeps the stored one).
pub async fn update_channel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    AppJson(b): AppJson<ChannelInput>,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    crate::notify::save_channel(&state, actor(&me), Some(id.clone()), b).await?;
    Ok(Json(load_channel(&state, &id).await?))
}

/// `DELETE /api/notification-channels/{id}`.
pub async fn delete_channel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(ADMINS)?;
    crate::notify::delete_channel(&state, actor(&me), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/notification-channels/{id}/test` → 202 `{notification_id}`.
pub async fn test_channel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let nid = crate::notify::test_channel(&state, actor(&me), &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "notification_id": nid })),
    )
        .into_response())
}

/// `GET /api/notifications`: recent deliveries with their state.
pub async fn notifications(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    let list = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::alerts::recent_notifications(c, 200)?) })
        .await?;
    Ok(Json(json!({ "notifications": list })))
}
