//! Hosts and enrolment endpoints.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::hosts::{self, AgentFacts};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AppError;
use super::extract::{AppJson, CurrentUser};
use super::AppState;
use crate::hosts::{self as flows, CredentialsInput};

const MANAGERS: &[&str] = &["admin", "operator"];

/// `POST /api/enrollment-tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintBody {
    hostname: String,
    repo_url: String,
    #[serde(default)]
    repo_username: Option<String>,
    repo_password: String,
    /// Paths of the host's default source group (default: /etc, /home, /root, /srv).
    #[serde(default)]
    paths: Option<Vec<String>>,
}

/// Mints an enrolment token (admin, operator).
pub async fn mint_token(
    State(state): State<AppState>,
    me: CurrentUser,
    AppJson(b): AppJson<MintBody>,
) -> Result<Response, AppError> {
    me.require(MANAGERS)?;
    let creds = CredentialsInput::parse(
        &b.repo_url,
        b.repo_username.as_deref(),
        Some(&b.repo_password),
    )?;
    let minted = flows::mint_token(&state, &me.user.user_id, &b.hostname, creds, b.paths).await?;
    Ok((StatusCode::CREATED, Json(minted)).into_response())
}

/// `GET /api/enrollment-tokens/{id}` (admin, operator).
pub async fn token_status(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    me.require(MANAGERS)?;
    let s = flows::token_status(&state, &id).await?;
    Ok(Json(serde_json::to_value(s).unwrap_or(Value::Null)))
}

/// `POST /api/agents/enroll` body.
#[derive(Deserialize)]
pub struct EnrollBody {
    token: String,
    hostname: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    arch: String,
    #[serde(default)]
    agent_version: String,
    #[serde(default)]
    restic_version: String,
}

/// An agent enrols with a token (no session: the token is the credential).
pub async fn enroll(
    State(state): State<AppState>,
    AppJson(b): AppJson<EnrollBody>,
) -> Result<Response, AppError> {
    if b.token.len() != 64 || !b.token.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(AppError::Unauthorized("unknown enrolment token"));
    }
    let facts = AgentFacts {
        hostname: hosts::validate_hostname(&b.hostname)?,
        os: hosts::clean_fact(&b.os),
        arch: hosts::clean_fact(&b.arch),
        agent_version: hosts::clean_fact(&b.agent_version),
        restic_version: hosts::clean_fact(&b.restic_version),
        protocol_version: 0,
    };
    let enrolled = flows::enroll(&state, &b.token, facts).await?;
    Ok((StatusCode::CREATED, Json(enrolled)).into_response())
}

/// A host with the live last-seen time overlaid.
fn live(state: &AppState, mut h: projections::hosts::Host) -> projections::hosts::Host {
    if let Some(secs) = state.agents.seconds_since_seen(&h.id) {
        h.last_seen_at = Some(state.clock.now().plus_seconds(-(secs as i64)).to_string());
    }
    h
}

/// `GET /api/hosts`.
pub async fn list(
    State(state): State<AppState>,
    _me: CurrentUser,
) -> Result<Json<Value>, AppError> {
    let hosts = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::hosts::list(c)?) })
        .await?;
    let hosts: Vec<_> = hosts.into_iter().map(|h| live(&state, h)).collect();
    Ok(Json(json!({ "hosts": hosts })))
}

async fn one(state: &AppState, id: String) -> Result<projections::hosts::Host, AppError> {
    let wanted = id.clone();
    state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::hosts::get(c, &wanted)?) })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host {id}")))
}

/// `GET /api/hosts/{id}`.
pub async fn get(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let h = one(&state, id).await?;
    Ok(Json(
        serde_json::to_value(live(&state, h)).unwrap_or(Value::Null),
    ))
}

/// `DELETE /api/hosts/{id}` (admin, operator).
pub async fn delete(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(MANAGERS)?;
    flows::delete_host(&state, &me.user.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/fleet/summary`.
pub async fn summary(
    State(state): State<AppState>,
    _me: CurrentUser,
) -> Result<Json<Value>, AppError> {
    let s = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::hosts::summary(c)?) })
        .await?;
    Ok(Json(serde_json::to_value(s).unwrap_or(Value::Null)))
}

/// `GET /api/hosts/{id}/repo-credentials` (admin, operator): the redacted view.
pub async fn get_credentials(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    me.require(MANAGERS)?;
    let v = flows::redacted_credentials(&state, &id).await?;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}

/// `PUT /api/hosts/{id}/repo-credentials` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsBody {
    repo_url: String,
    #[serde(default)]
    repo_username: Option<String>,
    #[serde(default)]
    repo_password: Option<String>,
}

/// `PUT /api/hosts/{id}/repo-credentials` (admin, operator).
pub async fn put_credentials(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    AppJson(b): AppJson<CredentialsBody>,
) -> Result<Json<Value>, AppError> {
    me.require(MANAGERS)?;
    let input = CredentialsInput::parse(
        &b.repo_url,
        b.repo_username.as_deref(),
        b.repo_password.as_deref(),
    )?;
    let v = flows::change_credentials(&state, &me.user.user_id, &id, input).await?;
    Ok(Json(serde_json::to_value(v).unwrap_or(Value::Null)))
}
