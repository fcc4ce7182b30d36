//! Jobs, job logs (stored and live), snapshots.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::jobs::{JobKind, JobParams};
use domain::Actor;
use projections::jobs::Job;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::error::AppError;
use super::extract::{with_as_of, AppJson, AppQuery, AsOf, CurrentUser};
use super::AppState;

const RUNNERS: &[&str] = &["admin", "operator"];

/// The API's view of a job: `dispatched` reads as `queued` (the contract's status set).
fn view(mut j: Job) -> Value {
    if j.status == "dispatched" {
        j.status = "queued".into();
    }
    serde_json::to_value(j).unwrap_or(Value::Null)
}

/// `POST /api/hosts/{id}/jobs` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    kind: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    source_group_id: Option<String>,
    #[serde(default)]
    limit_upload_kbps: Option<u64>,
    #[serde(default)]
    limit_download_kbps: Option<u64>,
}

/// Starts a backup now.
pub async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<CreateBody>,
) -> Result<Response, AppError> {
    me.require(RUNNERS)?;
    if b.kind != "backup" {
        return Err(domain::DomainError::invalid(
            "kind",
            "must be \"backup\" here (repository operations have their own endpoints)",
        )
        .into());
    }
    let actor = Actor::User(me.user.user_id.clone());
    let job_id = match b.source_group_id {
        Some(gid) => {
            if !b.paths.is_empty() || !b.excludes.is_empty() || !b.tags.is_empty() {
                return Err(domain::DomainError::invalid(
                    "source_group_id",
                    "takes its paths, excludes and tag from the group: leave paths, excludes and tags out",
                )
                .into());
            }
            let o = crate::sources::RunOverrides {
                limit_upload_kbps: b.limit_upload_kbps,
                limit_download_kbps: b.limit_download_kbps,
            };
            crate::sources::run_group(&state, actor, &host_id, &gid, o).await?
        }
        None => {
            let params = JobParams {
                paths: b.paths,
                excludes: b.excludes,
                tags: b.tags,
                limit_upload_kbps: b.limit_upload_kbps,
                limit_download_kbps: b.limit_download_kbps,
                ..Default::default()
            };
            crate::jobs::create(&state, actor, &host_id, JobKind::Backup, params).await?
        }
    };
    Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response())
}

async fn load(state: &AppState, id: &str) -> Result<Job, AppError> {
    let jid = id.to_string();
    state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::jobs::get(c, &jid)?) })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no job {id}")))
}

/// `GET /api/jobs/{id}` *(as_of)*.
pub async fn get(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let jid = id.clone();
    let (job, seq) = state
        .read_as_of(q.get(), move |c| -> Result<_, AppError> {
            Ok(projections::jobs::get(c, &jid)?)
        })
        .await?;
    let job = job.ok_or_else(|| AppError::NotFound(format!("no job {id}")))?;
    Ok(with_as_of(seq, Json(view(job))))
}

/// `GET /api/hosts/{id}/jobs` *(as_of)*: newest first.
pub async fn list(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let (jobs, seq) = state
        .read_as_of(q.get(), move |c| -> Result<_, AppError> {
            if projections::hosts::get(c, &host_id)?.is_none() {
                return Err(AppError::NotFound(format!("no host {host_id}")));
            }
            Ok(projections::jobs::list_for_host(c, &host_id, 500)?)
        })
        .await?;
    let jobs: Vec<Value> = jobs.into_iter().map(view).collect();
    Ok(with_as_of(seq, Json(json!({ "jobs": jobs }))))
}

/// `GET /api/jobs/{id}/logs`.
pub async fn logs(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    load(&state, &id).await?;
    let lines = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::jobs::logs(c, &id, 0)?) })
        .await?;
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|l| json!({"at": l.at, "stream": l.stream, "text": l.text}))
        .collect();
    Ok(Json(json!({ "lines": lines })))
}

/// `POST /api/jobs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(RUNNERS)?;
    load(&state, &id).await?;
    crate::jobs::cancel(&state, Actor::User(me.user.user_id.clone()), &id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /api/hosts/{id}/snapshots`.
pub async fn snapshots(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
    AppQuery(q): AppQuery<AsOf>,
) -> Result<Response, AppError> {
    let (snaps, seq) = state
        .read_as_of(q.get(), move |c| -> Result<_, AppError> {
            if projections::hosts::get(c, &host_id)?.is_none() {
                return Err(AppError::NotFound(format!("no host {host_id}")));
            }
            Ok(projections::jobs::snapshots(c, &host_id)?)
        })
        .await?;
    Ok(with_as_of(seq, Json(json!({ "snapshots": snaps }))))
}

/// `POST /api/hosts/{id}/snapshots/refresh`: asks the agent to report its snapshot list.
pub async fn refresh_snapshots(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(RUNNERS)?;
    let frame =
        domain::protocol::ServerMessage::SnapshotsRequest(domain::protocol::SnapshotsRequestMsg {})
            .to_frame(uuid::Uuid::now_v7().to_string(), None);
    if !state
        .agents
        .send(&host_id, crate::agents::registry::Outgoing::Frame(frame))
    {
        return Err(domain::DomainError::HostOffline.into());
    }
    Ok(StatusCode::ACCEPTED)
}

/// `GET /api/jobs/{id}/stream`: WebSocket. Stored lines first, then live frames; closes when
/// the job finishes (at once for a finished job).
pub async fn stream(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    load(&state, &id).await?;
    Ok(ws.on_upgrade(move |socket| follow(state, id, socket)))
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn catch_up(state: &AppState, socket: &mut WebSocket, id: &str, next: &mut i64) -> bool {
    let (jid, from) = (id.to_string(), *next);
    let lines = match state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::jobs::logs(c, &jid, from)?) })
        .await
    {
        Ok(l) => l,
        Err(_) => return false,
    };
    if lines.is_empty() {
        return true;
    }
    *next += lines.len() as i64;
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|l| json!({"at": l.at, "stream": l.stream, "text": l.text}))
        .collect();
    send(
        socket,
        json!({"type": "log", "first_idx": from, "lines": lines}),
    )
    .await
}

async fn finish(state: &AppState, socket: &mut WebSocket, id: &str, next: &mut i64) {
    catch_up(state, socket, id, next).await;
    if let Ok(job) = load(state, id).await {
        let _ = send(socket, json!({"type": "finished", "job": view(job)})).await;
    }
    let _ = socket.send(Message::Close(None)).await;
}

async fn follow(state: AppState, id: String, mut socket: WebSocket) {
    let mut rx = state.hub.subscribe(&id);
    let Ok(job) = load(&state, &id).await else {
        return;
    };
    let is_final = matches!(
        job.status.as_str(),
        "succeeded" | "succeeded_with_warnings" | "failed" | "cancelled" | "lost"
    );
    if !send(&mut socket, json!({"type": "job", "job": view(job)})).await {
        return;
    }
    let mut next = 0i64;
    if !catch_up(&state, &mut socket, &id, &mut next).await {
        return;
    }
    if is_final {
        finish(&state, &mut socket, &id, &mut next).await;
        return;
    }
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Ok(text) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    match v["type"].as_str() {
                        Some("log") => {
                            let first = v["first_idx"].as_i64().unwrap_or(0);
                            let lines = v["lines"].as_array().cloned().unwrap_or_default();
                            let skip = (next - first).max(0) as usize;
                            if first > next {
                                // We missed some: fetch them from the store.
                                if !catch_up(&state, &mut socket, &id, &mut next).await { return; }
                                continue;
                            }
                            if skip < lines.len() {
                                let fresh: Vec<Value> = lines[skip..].to_vec();
                                next += fresh.len() as i64;
                                if !send(&mut socket, json!({"type": "log", "first_idx": first + skip as i64, "lines": fresh})).await { return; }
                            }
                        }
                        Some("finished") => {
                            finish(&state, &mut socket, &id, &mut next).await;
                            return;
                        }
                        _ => {
                            if socket.send(Message::Text(text.to_string().into())).await.is_err() { return; }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow: progress frames were dropped; lines come back from the store.
                    if !catch_up(&state, &mut socket, &id, &mut next).await { return; }
                }
                Err(RecvError::Closed) => {
                    finish(&state, &mut socket, &id, &mut next).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
        }
    }
}
