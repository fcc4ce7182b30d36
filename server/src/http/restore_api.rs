//! Restore: browsing a snapshot, comparing snapshots, starting restores, and what the
//! restore wizard needs to know about a host. See [`crate::restore`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::Actor;
use serde::Deserialize;
use serde_json::json;

use super::error::AppError;
use super::extract::{AppJson, AppQuery, CurrentUser};
use super::AppState;
use crate::restore::{self, RestoreError, RestoreRequest};

const RUNNERS: &[&str] = &["admin", "operator"];

/// `GET /api/hosts/{id}/snapshots/{sid}/tree` query.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    /// Directory inside the snapshot (default `/`).
    pub path: Option<String>,
    /// Entries to skip (default 0).
    pub offset: Option<u64>,
    /// Page size (default 500, at most 1000).
    pub limit: Option<u64>,
}

/// `GET /api/hosts/{id}/snapshots/{sid}/tree?path=/&offset=0&limit=500`: one directory of a
/// snapshot, one page, asked of the host's agent.
pub async fn tree(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path((host_id, snapshot_id)): Path<(String, String)>,
    AppQuery(q): AppQuery<TreeQuery>,
) -> Result<Response, RestoreError> {
    let page = restore::tree(
        &state,
        &host_id,
        &snapshot_id,
        q.path.as_deref(),
        q.offset,
        q.limit,
    )
    .await?;
    Ok(Json(page).into_response())
}

/// `GET /api/hosts/{id}/snapshots/diff` query.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The older snapshot.
    pub from: Option<String>,
    /// The newer snapshot.
    pub to: Option<String>,
}

/// `GET /api/hosts/{id}/snapshots/diff?from=&to=`.
pub async fn diff(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
    AppQuery(q): AppQuery<DiffQuery>,
) -> Result<Response, RestoreError> {
    let view = restore::diff(&state, &host_id, q.from.as_deref(), q.to.as_deref()).await?;
    Ok(Json(view).into_response())
}

/// `POST /api/hosts/{id}/restores` `{snapshot_id, paths[], target_host_id?, target_path?,
/// overwrite?}` → 202 `{job_id}`.
pub async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(body): AppJson<RestoreRequest>,
) -> Result<Response, AppError> {
    me.require(RUNNERS)?;
    let actor = Actor::User(me.user.user_id.clone());
    let job_id = restore::create(&state, actor, &host_id, body).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response())
}

/// `GET /api/hosts/{id}/restore-info`: the agent's user id (warn before restoring root's
/// files with a non-root agent) and what its restic can do.
pub async fn info(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Response, AppError> {
    Ok(Json(restore::restore_info(&state, &host_id).await?).into_response())
}
