//! Source groups, schedules, repository maintenance, bandwidth, hooks and repository
//! operations (API.md "Source groups, schedules, maintenance").

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::jobs::JobKind;
use domain::sources::{
    Bandwidth, ConfigCommand, Maintenance, RetentionPolicy, Schedule, SourceGroup,
};
use domain::{Actor, DomainError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AppError;
use super::extract::{AppJson, CurrentUser, OptJson};
use super::AppState;
use crate::hosts::CredentialsInput;
use crate::sources::{self as flows, RepoOpBody, RunOverrides};

const EDITORS: &[&str] = &["admin", "operator"];
const ADMINS: &[&str] = &["admin"];

fn actor(me: &CurrentUser) -> Actor {
    Actor::User(me.user.user_id.clone())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn require_host(state: &AppState, host_id: &str) -> Result<(), AppError> {
    let hid = host_id.to_string();
    state
        .store
        .read(move |c| flows::require_live_host(c, &hid))
        .await
}

/// A group as typed (POST/PUT).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    name: String,
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    retention_policy: RetentionPolicy,
    #[serde(default)]
    retry_max: u32,
    #[serde(default)]
    retry_backoff_seconds: u64,
}

impl GroupBody {
    /// The group with an id.
    pub fn into_group(self, id: String) -> SourceGroup {
        let clean = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        SourceGroup {
            id,
            name: self.name.trim().to_string(),
            includes: clean(self.includes),
            excludes: clean(self.excludes),
            retention_policy: self.retention_policy,
            retry_max: self.retry_max,
            retry_backoff_seconds: self.retry_backoff_seconds,
        }
    }
}

/// `GET /api/hosts/{id}/source-groups`.
pub async fn list_groups(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let groups = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &host_id)?;
            Ok(projections::config::groups(c, &host_id)?)
        })
        .await?;
    Ok(Json(json!({ "source_groups": groups })))
}

/// `POST /api/hosts/{id}/source-groups`.
pub async fn create_group(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<GroupBody>,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let group = b.into_group(new_id());
    let id = group.id.clone();
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SaveGroup {
            group,
            create: true,
        },
    )
    .await?;
    let view = load_group(&state, &host_id, &id).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn load_group(state: &AppState, host_id: &str, gid: &str) -> Result<Value, AppError> {
    let (hid, gid) = (host_id.to_string(), gid.to_string());
    let g = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            Ok(projections::config::group(c, &hid, &gid)?)
        })
        .await?
        .ok_or(DomainError::UnknownSourceGroup)?;
    Ok(serde_json::to_value(g).unwrap_or(Value::Null))
}

/// `GET /api/hosts/{id}/source-groups/{gid}`.
pub async fn get_group(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(load_group(&state, &host_id, &gid).await?))
}

/// `PUT /api/hosts/{id}/source-groups/{gid}`.
pub async fn update_group(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
    AppJson(b): AppJson<GroupBody>,
) -> Result<Json<Value>, AppError> {
    me.require(EDITORS)?;
    let group = b.into_group(gid.clone());
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SaveGroup {
            group,
            create: false,
        },
    )
    .await?;
    Ok(Json(load_group(&state, &host_id, &gid).await?))
}

/// `DELETE /api/hosts/{id}/source-groups/{gid}`: 409 `group_in_use` (with the schedules) or
/// `last_source_group`.
pub async fn delete_group(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    me.require(EDITORS)?;
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::DeleteGroup { group_id: gid },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/hosts/{id}/source-groups/{gid}/run`: Run-now (optional per-run caps).
pub async fn run_group(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
    OptJson(o): OptJson<RunOverrides>,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let job_id = flows::run_group(&state, actor(&me), &host_id, &gid, o).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job_id": job_id }))).into_response())
}

/// A schedule as typed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    cron: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    source_group_ids: Vec<String>,
}

fn yes() -> bool {
    true
}

fn schedule_view(state: &AppState, s: projections::config::ScheduleView) -> Value {
    let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
    v["next_run_at"] = json!(flows::next_run_at(
        &s.schedule.cron,
        s.schedule.enabled,
        state.clock.now()
    ));
    v["description"] = json!(domain::sources::describe_cron(&s.schedule.cron));
    v
}

async fn load_schedules(state: &AppState, host_id: &str) -> Result<Vec<Value>, AppError> {
    let hid = host_id.to_string();
    let list = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            Ok(projections::config::schedules(c, &hid)?)
        })
        .await?;
    Ok(list.into_iter().map(|s| schedule_view(state, s)).collect())
}

/// `GET /api/hosts/{id}/schedules`.
pub async fn list_schedules(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(
        json!({ "schedules": load_schedules(&state, &host_id).await? }),
    ))
}

async fn one_schedule(state: &AppState, host_id: &str, sid: &str) -> Result<Value, AppError> {
    load_schedules(state, host_id)
        .await?
        .into_iter()
        .find(|v| v["id"] == sid)
        .ok_or_else(|| DomainError::UnknownSchedule.into())
}

/// `POST /api/hosts/{id}/schedules`.
pub async fn create_schedule(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<ScheduleBody>,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let schedule = Schedule {
        id: new_id(),
        cron: b.cron,
        enabled: b.enabled,
        source_group_ids: b.source_group_ids,
    };
    let id = schedule.id.clone();
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SaveSchedule {
            schedule,
            create: true,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(one_schedule(&state, &host_id, &id).await?),
    )
        .into_response())
}

/// `GET /api/hosts/{id}/schedules/{sid}`.
pub async fn get_schedule(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path((host_id, sid)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(one_schedule(&state, &host_id, &sid).await?))
}

/// `PUT /api/hosts/{id}/schedules/{sid}`.
pub async fn update_schedule(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, sid)): Path<(String, String)>,
    AppJson(b): AppJson<ScheduleBody>,
) -> Result<Json<Value>, AppError> {
    me.require(EDITORS)?;
    let schedule = Schedule {
        id: sid.clone(),
        cron: b.cron,
        enabled: b.enabled,
        source_group_ids: b.source_group_ids,
    };
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SaveSchedule {
            schedule,
            create: false,
        },
    )
    .await?;
    Ok(Json(one_schedule(&state, &host_id, &sid).await?))
}

/// `DELETE /api/hosts/{id}/schedules/{sid}`.
pub async fn delete_schedule(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, sid)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    me.require(EDITORS)?;
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::DeleteSchedule { schedule_id: sid },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/hosts/{id}/schedules/{sid}/run`: runs every group of the schedule now (also
/// when it is paused). Answers every job id.
pub async fn run_schedule(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, sid)): Path<(String, String)>,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let s = one_schedule(&state, &host_id, &sid).await?;
    let ids: Vec<String> =
        serde_json::from_value(s["source_group_ids"].clone()).unwrap_or_default();
    let mut jobs = Vec::new();
    for gid in ids {
        jobs.push(
            flows::run_group(&state, actor(&me), &host_id, &gid, RunOverrides::default()).await?,
        );
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job_id": jobs.first(), "job_ids": jobs })),
    )
        .into_response())
}

async fn settings(
    state: &AppState,
    host_id: &str,
) -> Result<projections::config::HostSettings, AppError> {
    let hid = host_id.to_string();
    state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            Ok(projections::config::settings(c, &hid)?)
        })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host {host_id}")))
}

/// `GET /api/hosts/{id}/repo-maintenance`.
pub async fn get_maintenance(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Maintenance>, AppError> {
    Ok(Json(settings(&state, &host_id).await?.maintenance))
}

/// `PUT /api/hosts/{id}/repo-maintenance` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    forget_cadence: String,
    prune_cadence: String,
    check_cadence: String,
    #[serde(default)]
    check_subset_pct: u8,
    #[serde(default = "yes")]
    enabled: bool,
}

/// `PUT /api/hosts/{id}/repo-maintenance`.
pub async fn put_maintenance(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<MaintenanceBody>,
) -> Result<Json<Maintenance>, AppError> {
    me.require(EDITORS)?;
    let m = Maintenance {
        forget_cadence: b.forget_cadence.trim().to_string(),
        prune_cadence: b.prune_cadence.trim().to_string(),
        check_cadence: b.check_cadence.trim().to_string(),
        check_subset_pct: b.check_subset_pct,
        enabled: b.enabled,
    };
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SetMaintenance(m),
    )
    .await?;
    Ok(Json(settings(&state, &host_id).await?.maintenance))
}

/// `GET /api/hosts/{id}/bandwidth`.
pub async fn get_bandwidth(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Bandwidth>, AppError> {
    Ok(Json(settings(&state, &host_id).await?.bandwidth))
}

/// `PUT /api/hosts/{id}/bandwidth` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandwidthBody {
    #[serde(default)]
    up_kbps: Option<u64>,
    #[serde(default)]
    down_kbps: Option<u64>,
}

/// `PUT /api/hosts/{id}/bandwidth` (null = unlimited).
pub async fn put_bandwidth(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<BandwidthBody>,
) -> Result<Json<Bandwidth>, AppError> {
    me.require(EDITORS)?;
    let bw = Bandwidth {
        up_kbps: b.up_kbps,
        down_kbps: b.down_kbps,
    };
    flows::configure(
        &state,
        actor(&me),
        &host_id,
        ConfigCommand::SetBandwidth(bw),
    )
    .await?;
    Ok(Json(settings(&state, &host_id).await?.bandwidth))
}

/// `POST /api/hosts/{id}/repo/{op}`.
pub async fn repo_op(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, op)): Path<(String, String)>,
    OptJson(b): OptJson<RepoOpBody>,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let kind = match op.as_str() {
        "forget" => JobKind::Forget,
        "prune" => JobKind::Prune,
        "check" => JobKind::Check,
        "unlock" => JobKind::Unlock,
        "init" => JobKind::Init,
        _ => {
            return Err(AppError::NotFound(format!(
                "no repository operation {op:?}: use forget, prune, check, unlock or init"
            )))
        }
    };
    if kind == JobKind::Init {
        // Re-running init is a danger-zone action: admins only (the page asks for the
        // host name typed in first).
        me.require(ADMINS)?;
    }
    require_host(&state, &host_id).await?;
    let ids = flows::run_repo_op(&state, actor(&me), &host_id, kind, b).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job_id": ids.first(), "job_ids": ids })),
    )
        .into_response())
}

/// `GET /api/hosts/{id}/repo`: the repository panel, settings and pending runs in one.
pub async fn repo(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let hid = host_id.clone();
    let (status, settings, pending) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            Ok((
                projections::config::repo_status(c, &hid)?.unwrap_or_default(),
                projections::config::settings(c, &hid)?,
                projections::config::pending_runs(c, &hid, false)?,
            ))
        })
        .await?;
    Ok(Json(json!({
        "status": status,
        "settings": settings,
        "pending_runs": pending,
    })))
}

/// `GET /api/hosts/{id}/pending-runs`.
pub async fn pending_runs(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let runs = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &host_id)?;
            Ok(projections::config::pending_runs(c, &host_id, false)?)
        })
        .await?;
    Ok(Json(json!({ "pending_runs": runs })))
}

/// Hook scripts as typed (empty or null clears one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksBody {
    #[serde(default)]
    pre_hook: Option<String>,
    #[serde(default)]
    post_hook: Option<String>,
}

/// `GET /api/hosts/{id}/hooks` (admins: scripts may hold secrets).
pub async fn get_host_hooks(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    let h = flows::get_hooks(&state, &host_id, None).await?;
    Ok(Json(json!({ "pre_hook": h.pre, "post_hook": h.post })))
}

/// `PUT /api/hosts/{id}/hooks`: the host-wide defaults (admins only).
pub async fn put_host_hooks(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<HooksBody>,
) -> Result<StatusCode, AppError> {
    me.require(ADMINS)?;
    flows::set_hooks(&state, actor(&me), &host_id, None, b.pre_hook, b.post_hook).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/hosts/{id}/source-groups/{gid}/hooks` (admins).
pub async fn get_group_hooks(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    me.require(ADMINS)?;
    load_group(&state, &host_id, &gid).await?;
    let h = flows::get_hooks(&state, &host_id, Some(gid)).await?;
    Ok(Json(json!({ "pre_hook": h.pre, "post_hook": h.post })))
}

/// `PUT /api/hosts/{id}/source-groups/{gid}/hooks` (admins).
pub async fn put_group_hooks(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
    AppJson(b): AppJson<HooksBody>,
) -> Result<StatusCode, AppError> {
    me.require(ADMINS)?;
    flows::set_hooks(
        &state,
        actor(&me),
        &host_id,
        Some(gid),
        b.pre_hook,
        b.post_hook,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/hosts/{id}/repo-admin-credentials` (redacted).
pub async fn get_admin_credentials(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<Json<flows::AdminCredentialsView>, AppError> {
    me.require(ADMINS)?;
    Ok(Json(flows::admin_credentials_view(&state, &host_id).await?))
}

/// `PUT /api/hosts/{id}/repo-admin-credentials` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminCredsBody {
    repo_url: String,
    #[serde(default)]
    repo_username: Option<String>,
    #[serde(default)]
    repo_password: Option<String>,
}

/// `PUT /api/hosts/{id}/repo-admin-credentials`: the full-access credential for forget and
/// prune, in its own vault slot (admins only).
pub async fn put_admin_credentials(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
    AppJson(b): AppJson<AdminCredsBody>,
) -> Result<Json<flows::AdminCredentialsView>, AppError> {
    me.require(ADMINS)?;
    let input = CredentialsInput::parse(
        &b.repo_url,
        b.repo_username.as_deref(),
        b.repo_password.as_deref(),
    )?;
    flows::set_admin_credentials(&state, actor(&me), &host_id, Some(input)).await?;
    Ok(Json(flows::admin_credentials_view(&state, &host_id).await?))
}

/// `DELETE /api/hosts/{id}/repo-admin-credentials`.
pub async fn delete_admin_credentials(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(host_id): Path<String>,
) -> Result<StatusCode, AppError> {
    me.require(ADMINS)?;
    flows::set_admin_credentials(&state, actor(&me), &host_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/hosts/{id}/source-groups/{gid}/what-if` body: the proposed policy (default:
/// the group's current one).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WhatIfBody {
    #[serde(default)]
    retention_policy: Option<RetentionPolicy>,
}

/// `POST /api/hosts/{id}/source-groups/{gid}/what-if`: which of the host's snapshots of this
/// group a policy would keep and remove — restic's own algorithm over the real snapshot
/// history, before anything is saved.
pub async fn what_if(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path((host_id, gid)): Path<(String, String)>,
    OptJson(b): OptJson<WhatIfBody>,
) -> Result<Json<Value>, AppError> {
    let (hid, g) = (host_id.clone(), gid.clone());
    let (group, snapshots) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            let group =
                projections::config::group(c, &hid, &g)?.ok_or(DomainError::UnknownSourceGroup)?;
            let snaps = projections::jobs::snapshots(c, &hid)?;
            Ok((group, snaps))
        })
        .await?;
    let policy = b
        .retention_policy
        .unwrap_or(group.group.retention_policy.clone());
    policy.validate()?;
    let snaps: Vec<domain::jobs::Snapshot> = snapshots
        .into_iter()
        .map(|s| domain::jobs::Snapshot {
            id: s.id,
            short_id: s.short_id,
            time: s.time,
            paths: s.paths,
            tags: s.tags,
            hostname: s.hostname,
        })
        .collect();
    let groups =
        domain::retention::what_if_at(&snaps, &group.group.name, &policy, state.clock.now())?;
    let keep: usize = groups.iter().map(|g| g.keep.len()).sum();
    let remove: usize = groups.iter().map(|g| g.remove.len()).sum();
    Ok(Json(json!({
        "source_group_id": gid,
        "tag": group.group.name,
        "retention_policy": policy,
        "description": policy.describe(),
        "keep_count": keep,
        "remove_count": remove,
        "groups": groups,
    })))
}

/// `GET /api/hosts/{id}/snapshots/removed` *(as_of)*: every snapshot a forget removed, with
/// the policy version that removed it and who set that policy.
pub async fn removed(
    State(state): State<AppState>,
    _me: CurrentUser,
    Path(host_id): Path<String>,
    super::extract::AppQuery(q): super::extract::AppQuery<super::extract::AsOf>,
) -> Result<Response, AppError> {
    let (list, seq) = state
        .read_as_of(q.get(), move |c| -> Result<_, AppError> {
            if projections::hosts::get(c, &host_id)?.is_none() {
                return Err(AppError::NotFound(format!("no host {host_id}")));
            }
            Ok(projections::history::removals(c, &host_id)?)
        })
        .await?;
    Ok(super::extract::with_as_of(
        seq,
        Json(json!({ "removed": list })),
    ))
}
