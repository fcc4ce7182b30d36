//! Job flows: creating and dispatching jobs, what agents report about them, the live fan-out
//! to browsers, and the bounded rate at which progress enters the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::jobs::{
    self, JobDispatched, JobFinished, JobKind, JobParams, JobProgressed, JobQueued, JobReport,
    Trigger,
};
use domain::protocol::{
    Hooks, JobCancelMsg, JobFinishedMsg, JobLogMsg, JobProgressMsg, JobRunMsg, ServerMessage,
    SnapshotsReportMsg,
};
use domain::{Actor, DomainError, Event};
use serde_json::json;
use tokio::sync::broadcast;

use crate::agents::registry::Outgoing;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{AppendRequest, ExpectedVersion};

/// At most one `JobProgressed` per job per this interval enters the log (browsers get every
/// update live).
pub const PROGRESS_APPEND_EVERY: Duration = Duration::from_secs(5);

/// Per-job live channels for browsers. Sending never waits: a slow subscriber lags and loses
/// the oldest frames (it can re-read the stored log), the agent's read loop never blocks.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    last_progress_append: Mutex<HashMap<String, Instant>>,
}

/// Frames a subscriber may fall behind before losing the oldest.
pub const SUBSCRIBER_BUFFER: usize = 256;

impl Hub {
    /// Subscribes to a job's live frames.
    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<Arc<str>> {
        let mut m = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(job_id.to_string())
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe()
    }

    /// Sends a frame to a job's subscribers, if any.
    pub fn publish(&self, job_id: &str, frame: serde_json::Value) {
        let m = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = m.get(job_id) {
            let _ = tx.send(Arc::from(frame.to_string()));
        }
    }

    /// Forgets a finished job's channel (subscribers see it close).
    pub fn close(&self, job_id: &str) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job_id);
        self.last_progress_append
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(job_id);
    }

    fn progress_due(&self, job_id: &str) -> bool {
        let mut m = self
            .last_progress_append
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match m.get(job_id) {
            Some(t) if t.elapsed() < PROGRESS_APPEND_EVERY => false,
            _ => {
                m.insert(job_id.to_string(), Instant::now());
                true
            }
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The job a command created, if that command ran before (the event log's `command_id` is
/// the store's idempotency key).
fn job_of_command(
    conn: &rusqlite::Connection,
    command_id: &str,
) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(
        "SELECT json_extract(data, '$.job_id') FROM events WHERE command_id = ?1 AND type = 'JobQueued' LIMIT 1",
    )?
    .query_row([command_id], |r| r.get(0))
    .optional()
}

/// What to create: the job and what started it.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Kind.
    pub kind: JobKind,
    /// What to run (bandwidth caps default to the host's).
    pub params: JobParams,
    /// What started it.
    pub trigger: Trigger,
    /// The source group it runs for.
    pub source_group_id: Option<String>,
    /// The pending run it attempts.
    pub pending_run_id: Option<String>,
    /// Makes a repeated creation (a restarted ticker) a no-op.
    pub command_id: Option<String>,
}

impl JobSpec {
    /// A manual job.
    pub fn manual(kind: JobKind, params: JobParams) -> Self {
        JobSpec {
            kind,
            params,
            trigger: Trigger::Manual,
            source_group_id: None,
            pending_run_id: None,
            command_id: None,
        }
    }
}

/// Creates a job and sends it to the host's agent. 409 when the agent is not connected.
pub async fn create(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    kind: JobKind,
    params: JobParams,
) -> Result<String, AppError> {
    create_spec(state, actor, host_id, JobSpec::manual(kind, params))
        .await
        .map(|(id, _)| id)
}

/// Creates a job from a spec. Returns the job id and whether it is new (a repeated
/// `command_id` returns the first job's id and `false`, and sends nothing).
pub async fn create_spec(
    state: &AppState,
    actor: Actor,
    host_id: &str,
    spec: JobSpec,
) -> Result<(String, bool), AppError> {
    let kind = spec.kind;
    if kind == JobKind::Backup {
        jobs::validate_backup(&spec.params)?;
    }
    if kind == JobKind::Forget && spec.params.retention.as_ref().is_none_or(|r| r.is_empty()) {
        return Err(DomainError::invalid(
            "retention_policy",
            "forget needs a retention policy with at least one keep rule",
        )
        .into());
    }
    let id = host_id.to_string();
    let exists = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::hosts::get(c, &id)?.is_some()) })
        .await?;
    if !exists {
        return Err(AppError::NotFound(format!("no host {host_id}")));
    }
    if !state.agents.is_connected(host_id) {
        return Err(DomainError::HostOffline.into());
    }
    let job_id = new_id();
    let (jid, hid) = (job_id.clone(), host_id.to_string());
    let vault = state.vault.clone();
    let (job_id, fresh, msg) = state
        .store
        .write(move |uow| -> Result<(String, bool, JobRunMsg), AppError> {
            crate::sources::require_live_host(uow.conn(), &hid)?;
            if let Some(cmd) = &spec.command_id {
                if let Some(prev) = job_of_command(uow.conn(), cmd)? {
                    return Ok((
                        prev,
                        false,
                        JobRunMsg {
                            job_id: String::new(),
                            kind,
                            params: JobParams::default(),
                            hooks: Hooks::default(),
                            admin_repo: None,
                            source_repo: None,
                        },
                    ));
                }
            }
            let mut params = spec.params;
            if let Some(s) = projections::config::settings(uow.conn(), &hid)? {
                params.limit_upload_kbps = params.limit_upload_kbps.or(s.bandwidth.up_kbps);
                params.limit_download_kbps = params.limit_download_kbps.or(s.bandwidth.down_kbps);
            }
            let hooks = if kind == JobKind::Backup {
                crate::sources::hooks_for(
                    &vault,
                    uow.conn(),
                    &hid,
                    spec.source_group_id.as_deref(),
                )?
            } else {
                Hooks::default()
            };
            let admin_repo = if matches!(kind, JobKind::Forget | JobKind::Prune) {
                crate::sources::admin_repo(&vault, uow.conn(), &hid)?
            } else {
                None
            };
            let mut req = AppendRequest::new(
                format!("job-{jid}"),
                actor,
                vec![
                    JobQueued {
                        job_id: jid.clone(),
                        host_id: hid.clone(),
                        kind,
                        params: params.clone(),
                        trigger: spec.trigger,
                        source_group_id: spec.source_group_id,
                        schedule_id: None,
                        pending_run_id: spec.pending_run_id,
                    }
                    .into(),
                    JobDispatched {
                        job_id: jid.clone(),
                        host_id: hid.clone(),
                    }
                    .into(),
                ],
            )
            .expecting(ExpectedVersion::NoStream);
            if let Some(cmd) = spec.command_id {
                req = req.command(cmd);
            }
            uow.append(req)?;
            Ok((
                jid.clone(),
                true,
                JobRunMsg {
                    job_id: jid,
                    kind,
                    params,
                    hooks,
                    admin_repo,
                    source_repo: None,
                },
            ))
        })
        .await?;
    if fresh {
        let frame = ServerMessage::JobRun(msg).to_frame(new_id(), None);
        state.agents.send(host_id, Outgoing::Frame(frame));
    }
    Ok((job_id, fresh))
}

/// Asks the agent to stop a job.
pub async fn cancel(state: &AppState, actor: Actor, job_id: &str) -> Result<(), AppError> {
    let id = job_id.to_string();
    let host = state
        .store
        .write(move |uow| -> Result<String, AppError> {
            let s = projections::jobs::load_state(uow.conn(), &id)?;
            let host = s
                .jobs
                .get(&id)
                .map(|j| j.host_id.clone())
                .ok_or(DomainError::UnknownJob)?;
            let events = jobs::decide_cancel(&s, &id)?;
            if !events.is_empty() {
                uow.append(AppendRequest::new(format!("job-{id}"), actor, events))?;
            }
            Ok(host)
        })
        .await?;
    let frame = ServerMessage::JobCancel(JobCancelMsg {
        job_id: job_id.to_string(),
    })
    .to_frame(new_id(), None);
    state.agents.send(&host, Outgoing::Frame(frame));
    state
        .hub
        .publish(job_id, json!({"type": "cancel_requested"}));
    Ok(())
}

/// `job.started` / `job.finished` from an agent (durable: `command_id` makes a resend a no-op).
pub async fn record_report(
    state: &AppState,
    host_id: &str,
    msg_id: &str,
    job_id: &str,
    report: JobReport,
) -> Result<(), AppError> {
    let (hid, jid) = (host_id.to_string(), job_id.to_string());
    let command_id = format!("agent:{host_id}:{msg_id}");
    let finished = matches!(report, JobReport::Finished(_));
    let appended = state
        .store
        .write(move |uow| -> Result<Vec<Event>, AppError> {
            let s = projections::jobs::load_state(uow.conn(), &jid)?;
            let events = match jobs::decide_report(&s, &hid, &jid, &report) {
                Ok(e) => e,
                Err(DomainError::UnknownJob) => {
                    tracing::warn!(host_id = %hid, job_id = %jid, "report about an unknown job ignored");
                    vec![]
                }
                Err(e) => return Err(e.into()),
            };
            if !events.is_empty() {
                uow.append(
                    AppendRequest::new(format!("job-{jid}"), Actor::Agent(hid.clone()), events.clone())
                        .command(command_id),
                )?;
            }
            Ok(events)
        })
        .await?;
    for e in appended {
        match e {
            Event::JobStarted(_) => state.hub.publish(job_id, json!({"type": "started"})),
            Event::JobFinished(f) => {
                state.hub.publish(job_id, json!({"type": "finished", "status": f.status.as_str(), "error": f.error, "stats": f.stats}));
                if let Err(e) =
                    crate::maintenance::job_ended(state, job_id, f.status, f.error.clone()).await
                {
                    tracing::warn!(job_id, error = %e, "could not settle the job's pending run");
                }
                crate::restore::job_ended(state, job_id, f.status).await;
            }
            _ => {}
        }
    }
    if finished {
        state.hub.close(job_id);
    }
    Ok(())
}

/// The `JobFinished` of an agent's message. The agent does not know the job's kind; the
/// decision fills it in from the job (see `domain::jobs::decide_report`).
pub fn finished_report(host_id: &str, m: JobFinishedMsg) -> JobReport {
    JobReport::Finished(JobFinished {
        job_id: m.job_id,
        host_id: host_id.to_string(),
        kind: JobKind::Backup,
        status: m.status,
        stats: m.stats,
        error: m.error,
        snapshot_id: m.snapshot_id,
        warnings: m.warnings,
        error_code: m.error_code,
    })
}

/// `job.progress`: to browsers now; into the log at most every [`PROGRESS_APPEND_EVERY`].
pub async fn progress(state: &AppState, host_id: &str, m: JobProgressMsg) -> Result<(), AppError> {
    state.hub.publish(
        &m.job_id,
        json!({"type": "progress", "progress": m.progress}),
    );
    if !state.hub.progress_due(&m.job_id) {
        return Ok(());
    }
    let hid = host_id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let s = projections::jobs::load_state(uow.conn(), &m.job_id)?;
            match s.jobs.get(&m.job_id) {
                Some(j) if j.host_id == hid && !j.status.is_final() => {
                    uow.append(AppendRequest::new(
                        format!("job-{}", m.job_id),
                        Actor::Agent(hid),
                        vec![JobProgressed {
                            job_id: m.job_id.clone(),
                            progress: m.progress,
                        }
                        .into()],
                    ))?;
                }
                _ => {}
            }
            Ok(())
        })
        .await
}

/// `job.log`: one event per batch, then to browsers with the lines' positions.
pub async fn log(state: &AppState, host_id: &str, m: JobLogMsg) -> Result<(), AppError> {
    if m.lines.is_empty() {
        return Ok(());
    }
    let hid = host_id.to_string();
    let (jid, lines) = (m.job_id.clone(), m.lines.clone());
    let first = state
        .store
        .write(move |uow| -> Result<Option<i64>, AppError> {
            let s = projections::jobs::load_state(uow.conn(), &jid)?;
            if s.jobs.get(&jid).is_none_or(|j| j.host_id != hid) {
                return Ok(None);
            }
            let first = projections::jobs::log_count(uow.conn(), &jid)?;
            let lines = lines
                .into_iter()
                .map(|mut l| {
                    l.text = l.text.chars().take(8192).collect();
                    l.stream = l.stream.chars().take(16).collect();
                    l
                })
                .collect();
            uow.append(AppendRequest::new(
                format!("job-{jid}"),
                Actor::Agent(hid),
                vec![domain::jobs::JobLogged {
                    job_id: jid.clone(),
                    lines,
                }
                .into()],
            ))?;
            Ok(Some(first))
        })
        .await?;
    if let Some(first) = first {
        state.hub.publish(
            &m.job_id,
            json!({"type": "log", "first_idx": first, "lines": m.lines}),
        );
    }
    Ok(())
}

/// `snapshots.report`: replaces the host's snapshot list.
pub async fn snapshots(
    state: &AppState,
    host_id: &str,
    msg_id: &str,
    m: SnapshotsReportMsg,
) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let command_id = format!("agent:{host_id}:{msg_id}");
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            uow.append(
                AppendRequest::new(
                    format!("host-{hid}"),
                    Actor::Agent(hid.clone()),
                    vec![domain::jobs::SnapshotsReported {
                        host_id: hid.clone(),
                        snapshots: m.snapshots,
                        repo_size_bytes: m.repo_size_bytes,
                        restore_size_bytes: m.restore_size_bytes,
                    }
                    .into()],
                )
                .command(command_id),
            )?;
            Ok(())
        })
        .await
}

/// Jobs sent to an agent that went away before starting them: sent again when it says hello
/// (the agent ignores a job id it already has).
pub async fn redeliver(state: &AppState, host_id: &str) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let vault = state.vault.clone();
    let msgs = state
        .store
        .read(move |c| -> Result<Vec<JobRunMsg>, AppError> {
            let mut out = Vec::new();
            for job in projections::jobs::undelivered_for_host(c, &hid)? {
                let kind: JobKind = serde_json::from_value(serde_json::Value::String(job.kind))
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let params: JobParams = serde_json::from_str(&job.params).unwrap_or_default();
                let hooks = if kind == JobKind::Backup {
                    crate::sources::hooks_for(&vault, c, &hid, job.source_group_id.as_deref())?
                } else {
                    Hooks::default()
                };
                let admin_repo = if matches!(kind, JobKind::Forget | JobKind::Prune) {
                    crate::sources::admin_repo(&vault, c, &hid)?
                } else {
                    None
                };
                let source_repo = crate::restore::source_repo(&vault, c, &job.id, kind)?;
                out.push(JobRunMsg {
                    job_id: job.id,
                    kind,
                    params,
                    hooks,
                    admin_repo,
                    source_repo,
                });
            }
            Ok(out)
        })
        .await?;
    for m in msgs {
        let frame = ServerMessage::JobRun(m).to_frame(new_id(), None);
        state.agents.send(host_id, Outgoing::Frame(frame));
    }
    Ok(())
}

/// After the agent first stores credentials, the repository is initialised by an ordinary
/// `init` job (once per host; "already initialised" is a soft success).
pub async fn auto_init(state: &AppState, host_id: &str) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let has = state
        .store
        .read(move |c| -> Result<_, AppError> {
            Ok(projections::jobs::host_has_kind(c, &hid, "init")?)
        })
        .await?;
    if has {
        return Ok(());
    }
    let mut spec = JobSpec::manual(JobKind::Init, JobParams::default());
    spec.trigger = Trigger::Auto;
    create_spec(state, Actor::System("auto-init".into()), host_id, spec)
        .await
        .map(|_| ())
}

/// The host's agent stayed away: its unfinished jobs end `lost`.
pub async fn mark_lost(state: &AppState, host_id: &str, reason: &str) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let reason = format!("the agent went away ({reason}) before reporting a result");
    let why = reason.clone();
    let lost = state
        .store
        .write(move |uow| -> Result<Vec<String>, AppError> {
            let mut lost = Vec::new();
            for job_id in projections::jobs::open_for_host(uow.conn(), &hid)? {
                let s = projections::jobs::load_state(uow.conn(), &job_id)?;
                let events = jobs::decide_lost(&s, &job_id, &reason);
                if !events.is_empty() {
                    uow.append(AppendRequest::new(
                        format!("job-{job_id}"),
                        Actor::System("sweeper".into()),
                        events,
                    ))?;
                    lost.push(job_id);
                }
            }
            Ok(lost)
        })
        .await?;
    for job_id in lost {
        state
            .hub
            .publish(&job_id, json!({"type": "finished", "status": "lost"}));
        state.hub.close(&job_id);
        if let Err(e) = crate::maintenance::job_ended(
            state,
            &job_id,
            domain::jobs::JobStatus::Lost,
            Some(why.clone()),
        )
        .await
        {
            tracing::warn!(job_id, error = %e, "could not settle the job's pending run");
        }
        crate::restore::job_ended(state, &job_id, domain::jobs::JobStatus::Lost).await;
    }
    Ok(())
}
