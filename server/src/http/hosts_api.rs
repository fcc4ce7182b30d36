//! Hosts and enrolment endpoints.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::hosts::{self, AgentFacts};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AppError;
use super::extract::{with_as_of, AppJson, AppQuery, AsOf, CurrentUser};
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

/// `GET /api/hosts` *(as_of)*.
pub async fn list(
    State(state): State<AppState>,
    _me: CurrentUser,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let (hosts, seq) = state
        .read_as_of(q.get(), |c| -> Result<_, AppError> {
            Ok(projections::hosts::list(c)?)
        })
        .await?;
    // Heartbeats are not events: only the live answer overlays them.
    let hosts: Vec<_> = match seq {
        None => hosts.into_iter().map(|h| live(&state, h)).collect(),
        Some(_) => hosts,
    };
    Ok(with_as_of(seq, Json(json!({ "hosts": hosts }))))
}

/// `GET /api/hosts/{id}` *(as_of)*.
pub async fn get(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let wanted = id.clone();
    let (h, seq) = state
        .read_as_of(q.get(), move |c| -> Result<_, AppError> {
            Ok(projections::hosts::get(c, &wanted)?)
        })
        .await?;
    let h = h.ok_or_else(|| AppError::NotFound(format!("no host {id}")))?;
    let h = if seq.is_none() { live(&state, h) } else { h };
    Ok(with_as_of(
        seq,
        Json(serde_json::to_value(h).unwrap_or(Value::Null)),
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

/// `GET /api/fleet/summary` *(as_of)*.
pub async fn summary(
    State(state): State<AppState>,
    _me: CurrentUser,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let (s, seq) = state
        .read_as_of(q.get(), |c| -> Result<_, AppError> {
            Ok(projections::hosts::summary(c)?)
        })
        .await?;
    Ok(with_as_of(
        seq,
        Json(serde_json::to_value(s).unwrap_or(Value::Null)),
    ))
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
