//! Host backup configuration flows: source groups, schedules, maintenance settings,
//! bandwidth caps, hooks and the admin credential — and keeping the agent's copy of the
//! schedule set in step (push on change and on hello; the agent acknowledges a version).

use domain::jobs::{JobDispatched, JobKind, JobQueued, Trigger};
use domain::protocol::{
    Hooks, JobScheduledMsg, RepoCredentials, ScheduleSpec, ScheduledGroup, SchedulesUpdate,
    ServerMessage,
};
use domain::sources::{self, ConfigCommand, HostConfig, SourceGroup};
use domain::{Actor, DomainError, Event};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::agents::registry::Outgoing;
use crate::hosts::CredentialsInput;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{AppendRequest, Uow};
use crate::vault::Vault;

/// Paths of the default group when the enrolment token names none.
pub const DEFAULT_PATHS: &[&str] = &["/etc", "/home", "/root", "/srv"];

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn hooks_ref(host_id: &str, group_id: Option<&str>) -> String {
    format!("hooks-{host_id}-{}", group_id.unwrap_or("default"))
}

fn admin_ref(host_id: &str) -> String {
    format!("repo-admin-{host_id}")
}

/// Fails unless the host exists and is not deleted.
pub(crate) fn require_live_host(conn: &Connection, host_id: &str) -> Result<(), AppError> {
    let s = projections::hosts::load_state(conn, host_id)?;
    match s.hosts.get(host_id) {
        Some(h) if h.deleted => Err(DomainError::HostDeleted.into()),
        Some(_) => Ok(()),
        None => Err(AppError::NotFound(format!("no host {host_id}"))),
    }
}

/// Decides and appends a configuration change inside a write.
pub(crate) fn apply(
    uow: &mut Uow<'_>,
    actor: Actor,
    host_id: &str,
    cmd: &ConfigCommand,
) -> Result<Vec<Event>, AppError> {
    require_live_host(uow.conn(), host_id)?;
    let cfg = projections::config::load_config(uow.conn(), host_id)?;
    let events = sources::decide(&cfg, host_id, cmd)?;
    if !events.is_empty() {
        uow.append(AppendRequest::new(
            format!("host-{host_id}"),
            actor,
            events.clone(),
        ))?;
    }
    Ok(events)
}

fn bumps_version(events: &[Event]) -> bool {
    events.iter().any(|e| {
        matches!(
            e,
            Event::SourceGroupSaved(_)
                | Event::SourceGroupDeleted(_)
                | Event::ScheduleSaved(_)
                | Event::ScheduleDeleted(_)
                | Event::BandwidthChanged(_)
                | Event::HooksChanged(_)
        )
    })
}

/// Applies a change and, when the agent's schedule set changed, pushes the new set.
pub async fn configure(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    cmd: ConfigCommand,
) -> Result<Vec<Event>, AppError> {
    let hid = host_id.to_string();
    let events = state
        .store
        .write(move |uow| apply(uow, actor, &hid, &cmd))
        .await?;
    if bumps_version(&events) {
        push_schedules(state, host_id).await?;
    }
    Ok(events)
}

/// The group every new host starts with, appended in the enrolment's transaction.
pub(crate) fn seed_default_group(
    uow: &mut Uow<'_>,
    host_id: &str,
    paths: Option<Vec<String>>,
) -> Result<(), AppError> {
    let includes = paths
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATHS.iter().map(|s| s.to_string()).collect());
    let group = SourceGroup::default_for_enrolment(new_id(), includes);
    apply(
        uow,
        Actor::System("enrolment".into()),
        host_id,
        &ConfigCommand::SaveGroup {
            group,
            create: true,
        },
    )?;
    Ok(())
}

/// Hooks as stored in the vault.
#[derive(Serialize, Deserialize, Default)]
struct StoredHooks {
    pre: Option<String>,
    post: Option<String>,
}

fn load_hooks(vault: &Vault, conn: &Connection, id: &str) -> Result<StoredHooks, AppError> {
    match vault.get(conn, id)? {
        None => Ok(StoredHooks::default()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| AppError::Internal(e.to_string())),
    }
}

/// The hooks a group's backups run: the group's own, each falling back to the host's
/// default.
pub fn hooks_for(
    vault: &Vault,
    conn: &Connection,
    host_id: &str,
    group_id: Option<&str>,
) -> Result<Hooks, AppError> {
    let default = load_hooks(vault, conn, &hooks_ref(host_id, None))?;
    let own = match group_id {
        Some(g) => load_hooks(vault, conn, &hooks_ref(host_id, Some(g)))?,
        None => StoredHooks::default(),
    };
    Ok(Hooks {
        pre: own.pre.or(default.pre),
        post: own.post.or(default.post),
    })
}

/// What an admin sees of a hook pair (scripts are shown to admins only).
#[derive(Debug, Serialize)]
pub struct HooksView {
    /// Pre-hook script.
    pub pre: Option<String>,
    /// Post-hook script.
    pub post: Option<String>,
}

/// Reads the hooks of a group (or the host default) for the admin editor.
pub async fn get_hooks(
    state: &AppState,
    host_id: &str,
    group_id: Option<String>,
) -> Result<HooksView, AppError> {
    let vault = state.vault.clone();
    let hid = host_id.to_string();
    state
        .store
        .read(move |c| -> Result<HooksView, AppError> {
            require_live_host(c, &hid)?;
            let h = load_hooks(&vault, c, &hooks_ref(&hid, group_id.as_deref()))?;
            Ok(HooksView {
                pre: h.pre,
                post: h.post,
            })
        })
        .await
}

fn clean_hook(field: &'static str, s: Option<String>) -> Result<Option<String>, DomainError> {
    let s = s
        .map(|s| s.replace("\r\n", "\n"))
        .filter(|s| !s.trim().is_empty());
    if s.as_ref().is_some_and(|s| s.len() > 16 * 1024) {
        return Err(DomainError::invalid(field, "is too long (16 KiB at most)"));
    }
    if s.as_ref().is_some_and(|s| s.contains('\0')) {
        return Err(DomainError::invalid(field, "must not contain NUL bytes"));
    }
    Ok(s)
}

/// Sets (or clears, with empty scripts) a group's hooks or the host's defaults. The scripts
/// go to the vault; the event records only which exist.
pub async fn set_hooks(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    group_id: Option<String>,
    pre: Option<String>,
    post: Option<String>,
) -> Result<(), AppError> {
    let pre = clean_hook("pre_hook", pre)?;
    let post = clean_hook("post_hook", post)?;
    let vault = state.vault.clone();
    let hid = host_id.to_string();
    let events = state
        .store
        .write(move |uow| -> Result<Vec<Event>, AppError> {
            require_live_host(uow.conn(), &hid)?;
            let r = hooks_ref(&hid, group_id.as_deref());
            let (has_pre, has_post) = (pre.is_some(), post.is_some());
            if has_pre || has_post {
                let body = serde_json::to_vec(&StoredHooks { pre, post })
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let now = uow.now().to_string();
                vault.put(uow.conn(), &r, &format!("host-{hid}"), "hooks", &body, &now)?;
            } else {
                vault.delete(uow.conn(), &r)?;
            }
            apply(
                uow,
                actor,
                &hid,
                &ConfigCommand::SetHooks {
                    group_id,
                    has_pre,
                    has_post,
                    hooks_ref: r,
                },
            )
        })
        .await?;
    if bumps_version(&events) {
        push_schedules(state, host_id).await?;
    }
    Ok(())
}

/// Sets (`Some`) or removes the full-access credential used by forget and prune.
pub async fn set_admin_credentials(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    input: Option<CredentialsInput>,
) -> Result<(), AppError> {
    let vault = state.vault.clone();
    let hid = host_id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            require_live_host(uow.conn(), &hid)?;
            let r = admin_ref(&hid);
            let reference = match input {
                Some(input) => {
                    let old = crate::hosts::open(&vault, uow.conn(), &r)?;
                    let password = match (input.password, old) {
                        (Some(p), _) => p,
                        (None, Some(o)) => o.password,
                        (None, None) => {
                            return Err(DomainError::invalid("repo_password", "is required").into())
                        }
                    };
                    let creds = RepoCredentials {
                        url: input.url,
                        username: input.username,
                        password,
                    };
                    let now = uow.now().to_string();
                    crate::hosts::seal(
                        &vault,
                        uow.conn(),
                        &r,
                        &format!("host-{hid}"),
                        &creds,
                        &now,
                    )?;
                    Some(r)
                }
                None => {
                    vault.delete(uow.conn(), &r)?;
                    None
                }
            };
            apply(
                uow,
                actor,
                &hid,
                &ConfigCommand::SetAdminCredentials(reference),
            )?;
            Ok(())
        })
        .await
}

/// The admin credential's redacted view.
#[derive(Debug, Serialize)]
pub struct AdminCredentialsView {
    /// Set at all.
    pub configured: bool,
    /// URL.
    pub repo_url: Option<String>,
    /// Backend user.
    pub repo_username: Option<String>,
    /// A password is stored.
    pub has_password: bool,
}

/// `GET …/repo-admin-credentials`.
pub async fn admin_credentials_view(
    state: &AppState,
    host_id: &str,
) -> Result<AdminCredentialsView, AppError> {
    let vault = state.vault.clone();
    let hid = host_id.to_string();
    state
        .store
        .read(move |c| -> Result<AdminCredentialsView, AppError> {
            require_live_host(c, &hid)?;
            let creds = crate::hosts::open(&vault, c, &admin_ref(&hid))?;
            Ok(AdminCredentialsView {
                configured: creds.is_some(),
                repo_url: creds.as_ref().map(|c| c.url.clone()),
                repo_username: creds.as_ref().and_then(|c| c.username.clone()),
                has_password: creds.is_some(),
            })
        })
        .await
}

/// The full-access credential for a forget/prune job, when the host has one.
pub fn admin_repo(
    vault: &Vault,
    conn: &Connection,
    host_id: &str,
) -> Result<Option<RepoCredentials>, AppError> {
    crate::hosts::open(vault, conn, &admin_ref(host_id))
}

/// The resolved schedule set for a host (`None` for an unknown host).
pub fn schedules_update(
    vault: &Vault,
    conn: &Connection,
    host_id: &str,
) -> Result<Option<SchedulesUpdate>, AppError> {
    let Some(settings) = projections::config::settings(conn, host_id)? else {
        return Ok(None);
    };
    let cfg: HostConfig = projections::config::load_config(conn, host_id)?;
    let mut schedules = Vec::new();
    for s in projections::config::schedules(conn, host_id)? {
        let mut groups = Vec::new();
        for gid in &s.schedule.source_group_ids {
            let Some(g) = cfg.groups.get(gid) else {
                continue;
            };
            groups.push(ScheduledGroup {
                source_group_id: g.id.clone(),
                name: g.name.clone(),
                includes: g.includes.clone(),
                excludes: g.excludes.clone(),
                retention_policy: g.retention_policy.clone(),
                retry_max: g.retry_max,
                retry_backoff_seconds: g.retry_backoff_seconds,
                hooks: hooks_for(vault, conn, host_id, Some(&g.id))?,
            });
        }
        schedules.push(ScheduleSpec {
            schedule_id: s.schedule.id,
            cron: s.schedule.cron,
            enabled: s.schedule.enabled,
            groups,
        });
    }
    Ok(Some(SchedulesUpdate {
        version: settings.schedule_version,
        schedules,
        bandwidth: settings.bandwidth,
    }))
}

/// Sends the host's schedule set to its agent, if connected.
pub async fn push_schedules(state: &AppState, host_id: &str) -> Result<(), AppError> {
    if !state.agents.is_connected(host_id) {
        return Ok(());
    }
    let vault = state.vault.clone();
    let hid = host_id.to_string();
    let update = state
        .store
        .read(move |c| schedules_update(&vault, c, &hid))
        .await?;
    if let Some(u) = update {
        let frame = ServerMessage::SchedulesUpdate(u).to_frame(new_id(), None);
        state.agents.send(host_id, Outgoing::Frame(frame));
    }
    Ok(())
}

/// `schedules.applied` from an agent (durable; the message id dedups a resend).
pub async fn record_applied(
    state: &AppState,
    host_id: &str,
    msg_id: &str,
    version: u64,
) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let command_id = format!("agent:{host_id}:{msg_id}");
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            require_live_host(uow.conn(), &hid)?;
            let cfg = projections::config::load_config(uow.conn(), &hid)?;
            let events = sources::decide(&cfg, &hid, &ConfigCommand::RecordApplied { version })?;
            if !events.is_empty() {
                uow.append(
                    AppendRequest::new(format!("host-{hid}"), Actor::Agent(hid.clone()), events)
                        .command(command_id),
                )?;
            }
            Ok(())
        })
        .await
}

/// `job.scheduled`: the agent's scheduler started a backup on its own; the job enters the
/// log as queued and dispatched (its `job.started` follows through the same outbox).
pub async fn record_scheduled(
    state: &AppState,
    host_id: &str,
    msg_id: &str,
    m: JobScheduledMsg,
) -> Result<(), AppError> {
    if m.kind != JobKind::Backup || uuid::Uuid::parse_str(&m.job_id).is_err() {
        return Err(DomainError::invalid(
            "job_id",
            "a scheduled job is a backup with a UUID job id",
        )
        .into());
    }
    let hid = host_id.to_string();
    let command_id = format!("agent:{host_id}:{msg_id}");
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            require_live_host(uow.conn(), &hid)?;
            if projections::jobs::get(uow.conn(), &m.job_id)?.is_some() {
                return Ok(());
            }
            let mut params = m.params;
            params.retention = None;
            params.check_subset_pct = None;
            uow.append(
                AppendRequest::new(
                    format!("job-{}", m.job_id),
                    Actor::Agent(hid.clone()),
                    vec![
                        JobQueued {
                            job_id: m.job_id.clone(),
                            host_id: hid.clone(),
                            kind: JobKind::Backup,
                            params,
                            trigger: Trigger::Schedule,
                            source_group_id: Some(m.source_group_id),
                            schedule_id: Some(m.schedule_id),
                            pending_run_id: None,
                        }
                        .into(),
                        JobDispatched {
                            job_id: m.job_id.clone(),
                            host_id: hid.clone(),
                        }
                        .into(),
                    ],
                )
                .command(command_id),
            )?;
            Ok(())
        })
        .await
}

/// When a schedule fires next (RFC 3339), `None` when paused.
pub fn next_run_at(cron: &str, enabled: bool, now: domain::Timestamp) -> Option<String> {
    if !enabled {
        return None;
    }
    let secs = now.unix_micros().div_euclid(1_000_000);
    let t = sources::next_fire(cron, secs)?;
    domain::Timestamp::from_unix_micros(t * 1_000_000).map(|t| t.to_string())
}

/// Per-run bandwidth overrides (Run-now).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOverrides {
    /// KiB/s up, instead of the host's cap.
    #[serde(default)]
    pub limit_upload_kbps: Option<u64>,
    /// KiB/s down, instead of the host's cap.
    #[serde(default)]
    pub limit_download_kbps: Option<u64>,
}

impl RunOverrides {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), DomainError> {
        domain::sources::Bandwidth {
            up_kbps: self.limit_upload_kbps,
            down_kbps: self.limit_download_kbps,
        }
        .validate()
        .map_err(|e| match e {
            DomainError::Invalid {
                field: "up_kbps",
                message,
            } => DomainError::invalid("limit_upload_kbps", message),
            DomainError::Invalid {
                field: "down_kbps",
                message,
            } => DomainError::invalid("limit_download_kbps", message),
            e => e,
        })
    }
}

async fn group_of(
    state: &AppState,
    host_id: &str,
    group_id: &str,
) -> Result<SourceGroup, AppError> {
    let (hid, gid) = (host_id.to_string(), group_id.to_string());
    state
        .store
        .read(move |c| -> Result<_, AppError> {
            require_live_host(c, &hid)?;
            Ok(projections::config::group(c, &hid, &gid)?)
        })
        .await?
        .map(|g| g.group)
        .ok_or_else(|| DomainError::UnknownSourceGroup.into())
}

/// Run-now for one group: a backup of its paths, tagged with its name.
pub async fn run_group(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    group_id: &str,
    o: RunOverrides,
) -> Result<String, AppError> {
    o.validate()?;
    let g = group_of(state, host_id, group_id).await?;
    let params = domain::jobs::JobParams {
        paths: g.includes,
        excludes: g.excludes,
        tags: vec![g.name],
        limit_upload_kbps: o.limit_upload_kbps,
        limit_download_kbps: o.limit_download_kbps,
        ..Default::default()
    };
    let spec = crate::jobs::JobSpec {
        source_group_id: Some(g.id),
        ..crate::jobs::JobSpec::manual(JobKind::Backup, params)
    };
    Ok(crate::jobs::create_spec(state, actor, host_id, spec)
        .await?
        .0)
}

/// What `POST /api/hosts/{id}/repo/{op}` takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoOpBody {
    /// forget: only this group (default: every group with a retention policy).
    #[serde(default)]
    pub source_group_id: Option<String>,
    /// check: instead of the host's setting.
    #[serde(default)]
    pub check_subset_pct: Option<u8>,
    /// KiB/s up for this run.
    #[serde(default)]
    pub limit_upload_kbps: Option<u64>,
    /// KiB/s down for this run.
    #[serde(default)]
    pub limit_download_kbps: Option<u64>,
}

/// An operator-started forget, prune, check or unlock. forget without a group runs one job
/// per group that has a retention policy; the answer lists them all.
pub async fn run_repo_op(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    kind: JobKind,
    body: RepoOpBody,
) -> Result<Vec<String>, AppError> {
    let o = RunOverrides {
        limit_upload_kbps: body.limit_upload_kbps,
        limit_download_kbps: body.limit_download_kbps,
    };
    o.validate()?;
    if body.check_subset_pct.is_some_and(|p| p > 100) {
        return Err(DomainError::invalid("check_subset_pct", "must be between 0 and 100").into());
    }
    let hid = host_id.to_string();
    let (groups, settings) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            require_live_host(c, &hid)?;
            Ok((
                projections::config::groups(c, &hid)?,
                projections::config::settings(c, &hid)?,
            ))
        })
        .await?;
    let base = domain::jobs::JobParams {
        limit_upload_kbps: o.limit_upload_kbps,
        limit_download_kbps: o.limit_download_kbps,
        ..Default::default()
    };
    let mut specs = Vec::new();
    match kind {
        JobKind::Forget => {
            let chosen: Vec<_> = match &body.source_group_id {
                Some(gid) => vec![groups
                    .into_iter()
                    .find(|g| &g.group.id == gid)
                    .ok_or(DomainError::UnknownSourceGroup)?],
                None => groups
                    .into_iter()
                    .filter(|g| !g.group.retention_policy.is_empty())
                    .collect(),
            };
            if chosen.is_empty() {
                return Err(DomainError::invalid(
                    "retention_policy",
                    "no source group of this host has a retention policy: set keep rules first",
                )
                .into());
            }
            for g in chosen {
                let mut p = crate::maintenance::forget_params(&g.group);
                p.limit_upload_kbps = base.limit_upload_kbps;
                p.limit_download_kbps = base.limit_download_kbps;
                specs.push(crate::jobs::JobSpec {
                    source_group_id: Some(g.group.id.clone()),
                    ..crate::jobs::JobSpec::manual(kind, p)
                });
            }
        }
        JobKind::Check => {
            let pct = body
                .check_subset_pct
                .or(settings.map(|s| s.maintenance.check_subset_pct));
            specs.push(crate::jobs::JobSpec::manual(
                kind,
                domain::jobs::JobParams {
                    check_subset_pct: pct,
                    ..base
                },
            ));
        }
        JobKind::Prune | JobKind::Unlock | JobKind::Init => {
            specs.push(crate::jobs::JobSpec::manual(kind, base))
        }
        _ => {
            return Err(DomainError::invalid("op", "must be forget, prune, check or unlock").into())
        }
    }
    let mut ids = Vec::new();
    for spec in specs {
        ids.push(
            crate::jobs::create_spec(state, actor.clone(), host_id, spec)
                .await?
                .0,
        );
    }
    Ok(ids)
}
