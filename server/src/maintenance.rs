//! The maintenance ticker and the pending-run queue (process managers: they react to the
//! clock and to committed events, and never run during a replay).
//!
//! Every tick, for each host with maintenance on, the kinds whose cadence window has no run
//! yet are due (`domain::sources::due_maintenance`). A due run becomes a job when the agent is
//! connected and a *pending run* when it is not. Each is created with a command id naming
//! the host, kind and window, so a restarted server (or two ticks racing) never runs one
//! twice inside its window. Pending runs are drained in order when the agent says hello and
//! on later ticks; a failed attempt waits `retry_backoff_seconds × attempt` and the run is
//! dropped after `retry_max` retries. Every step is an event.

use std::time::Duration;

use domain::jobs::{JobKind, JobParams, JobStatus, Trigger};
use domain::sources::{
    self, PendingRunAttempted, PendingRunCompleted, PendingRunDropped, PendingRunQueued,
    PendingRunRetryScheduled,
};
use domain::{Actor, DomainError, Event, Timestamp};

use crate::http::error::AppError;
use crate::http::AppState;
use crate::jobs::JobSpec;
use crate::store::AppendRequest;

fn unix(t: Timestamp) -> i64 {
    t.unix_micros().div_euclid(1_000_000)
}

fn parse_unix(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(unix)
}

/// Runs until shutdown; `every` is the tick.
pub async fn run(state: AppState, every: Duration) {
    let shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return,
        }
        if let Err(e) = tick(&state).await {
            tracing::warn!(error = %e, "maintenance tick failed");
        }
    }
}

/// One run that fell due.
struct DueRun {
    kind: JobKind,
    group_id: Option<String>,
    params: JobParams,
    retry_max: u32,
    retry_backoff_seconds: u64,
    command_id: String,
}

/// One pass: queue what is due, then drain due pending runs of connected hosts.
pub async fn tick(state: &AppState) -> Result<(), AppError> {
    let now = unix(state.clock.now());
    let plan = state
        .store
        .read(move |c| -> Result<Vec<(String, Vec<DueRun>)>, AppError> {
            let mut plan = Vec::new();
            for (host_id, m) in projections::config::maintained_hosts(c)? {
                let last = projections::config::last_maintenance(c, &host_id)?
                    .into_iter()
                    .filter_map(|(k, at)| parse_unix(&at).map(|t| (k, t)))
                    .collect();
                let due = sources::due_maintenance(&host_id, &m, now, &last);
                if due.is_empty() {
                    continue;
                }
                let groups = projections::config::groups(c, &host_id)?;
                let (retry_max, backoff) = groups
                    .first()
                    .map(|g| (g.group.retry_max, g.group.retry_backoff_seconds))
                    .unwrap_or((0, 0));
                let mut runs = Vec::new();
                for (kind, window) in due {
                    let base = format!("maintenance:{host_id}:{}:{window}", kind.as_str());
                    match kind {
                        JobKind::Forget => {
                            for g in &groups {
                                if g.group.retention_policy.is_empty() {
                                    continue;
                                }
                                runs.push(DueRun {
                                    kind,
                                    group_id: Some(g.group.id.clone()),
                                    params: forget_params(&g.group),
                                    retry_max: g.group.retry_max,
                                    retry_backoff_seconds: g.group.retry_backoff_seconds,
                                    command_id: format!("{base}:{}", g.group.id),
                                });
                            }
                        }
                        _ => runs.push(DueRun {
                            kind,
                            group_id: None,
                            params: JobParams {
                                check_subset_pct: (kind == JobKind::Check)
                                    .then_some(m.check_subset_pct),
                                ..Default::default()
                            },
                            retry_max,
                            retry_backoff_seconds: backoff,
                            command_id: base,
                        }),
                    }
                }
                plan.push((host_id, runs));
            }
            Ok(plan)
        })
        .await?;
    for (host_id, runs) in plan {
        for run in runs {
            if let Err(e) = start_or_queue(state, &host_id, run).await {
                tracing::warn!(host_id, error = %e, "could not start a maintenance run");
            }
        }
    }
    for host_id in state.agents.connected_ids() {
        if let Err(e) = drain(state, &host_id).await {
            tracing::warn!(host_id, error = %e, "could not drain pending runs");
        }
    }
    Ok(())
}

/// forget's parameters for a group: its retention, scoped to its tag.
pub fn forget_params(g: &domain::sources::SourceGroup) -> JobParams {
    JobParams {
        tags: vec![g.name.clone()],
        retention: Some(g.retention_policy.clone()),
        ..Default::default()
    }
}

async fn start_or_queue(state: &AppState, host_id: &str, run: DueRun) -> Result<(), AppError> {
    let actor = Actor::System("maintenance".into());
    if state.agents.is_connected(host_id) {
        let spec = JobSpec {
            kind: run.kind,
            params: run.params.clone(),
            trigger: Trigger::Maintenance,
            source_group_id: run.group_id.clone(),
            pending_run_id: None,
            command_id: Some(run.command_id.clone()),
        };
        match crate::jobs::create_spec(state, actor.clone(), host_id, spec).await {
            Ok(_) => return Ok(()),
            Err(AppError::Domain(DomainError::HostOffline)) => {}
            Err(e) => return Err(e),
        }
    }
    let hid = host_id.to_string();
    let run_id = uuid::Uuid::now_v7().to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            crate::sources::require_live_host(uow.conn(), &hid)?;
            uow.append(
                AppendRequest::new(
                    format!("pending-{run_id}"),
                    actor,
                    vec![PendingRunQueued {
                        run_id: run_id.clone(),
                        host_id: hid.clone(),
                        kind: run.kind,
                        group_id: run.group_id,
                        retry_max: run.retry_max,
                        retry_backoff_seconds: run.retry_backoff_seconds,
                        reason: format!("the host was offline when {} fell due", run.kind.as_str()),
                    }
                    .into()],
                )
                .command(run.command_id),
            )?;
            Ok(())
        })
        .await
}

/// Sends a connected host's due pending runs, oldest first.
pub async fn drain(state: &AppState, host_id: &str) -> Result<(), AppError> {
    let hid = host_id.to_string();
    let now = state.clock.now();
    let (runs, busy) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            let all = projections::config::pending_runs(c, &hid, true)?;
            let busy = all.iter().any(|p| p.state == "running");
            let mut out = Vec::new();
            for p in all.into_iter().filter(|p| p.state == "waiting") {
                if p.not_before
                    .as_deref()
                    .and_then(parse_unix)
                    .is_some_and(|t| t > unix(now))
                {
                    continue;
                }
                let kind: JobKind =
                    serde_json::from_value(serde_json::Value::String(p.kind.clone()))
                        .map_err(|e| AppError::Internal(e.to_string()))?;
                let group = match &p.group_id {
                    Some(g) => projections::config::group(c, &hid, g)?.map(|g| g.group),
                    None => None,
                };
                out.push((p, kind, group));
            }
            Ok((out, busy))
        })
        .await?;
    // One at a time keeps "in order" meaningful: the next goes when this one ends.
    if busy {
        return Ok(());
    }
    let Some((p, kind, group)) = runs.into_iter().next() else {
        return Ok(());
    };
    if p.group_id.is_some() && group.is_none() {
        return drop_run(state, host_id, &p.id, "its source group was deleted".into()).await;
    }
    let settings_pct = {
        let hid = host_id.to_string();
        state
            .store
            .read(move |c| -> Result<_, AppError> {
                Ok(projections::config::settings(c, &hid)?.map(|s| s.maintenance.check_subset_pct))
            })
            .await?
    };
    let params = match (&kind, &group) {
        (JobKind::Forget, Some(g)) => forget_params(g),
        (JobKind::Check, _) => JobParams {
            check_subset_pct: settings_pct,
            ..Default::default()
        },
        _ => JobParams::default(),
    };
    let attempt = p.attempts + 1;
    let spec = JobSpec {
        kind,
        params,
        trigger: Trigger::Pending,
        source_group_id: p.group_id.clone(),
        pending_run_id: Some(p.id.clone()),
        command_id: Some(format!("pending:{}:{attempt}", p.id)),
    };
    let actor = Actor::System("pending-runs".into());
    let (job_id, _) = match crate::jobs::create_spec(state, actor.clone(), host_id, spec).await {
        Ok(r) => r,
        Err(AppError::Domain(DomainError::HostOffline)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let (hid, run_id) = (host_id.to_string(), p.id.clone());
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            uow.append(
                AppendRequest::new(
                    format!("pending-{run_id}"),
                    actor,
                    vec![PendingRunAttempted {
                        run_id: run_id.clone(),
                        host_id: hid,
                        attempt,
                        job_id,
                    }
                    .into()],
                )
                .command(format!("pending-attempt:{run_id}:{attempt}")),
            )?;
            Ok(())
        })
        .await
}

async fn drop_run(
    state: &AppState,
    host_id: &str,
    run_id: &str,
    reason: String,
) -> Result<(), AppError> {
    let (hid, rid) = (host_id.to_string(), run_id.to_string());
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            uow.append(AppendRequest::new(
                format!("pending-{rid}"),
                Actor::System("pending-runs".into()),
                vec![PendingRunDropped {
                    run_id: rid.clone(),
                    host_id: hid,
                    reason,
                }
                .into()],
            ))?;
            Ok(())
        })
        .await
}

/// A job ended (finished or lost): if it attempted a pending run, the run is completed,
/// scheduled for another attempt, or dropped. Then the host's next pending run goes.
pub async fn job_ended(
    state: &AppState,
    job_id: &str,
    status: JobStatus,
    error: Option<String>,
) -> Result<(), AppError> {
    let jid = job_id.to_string();
    let now = state.clock.now();
    let host = state
        .store
        .write(move |uow| -> Result<Option<String>, AppError> {
            let Some(p) = projections::config::pending_run_of_job(uow.conn(), &jid)? else {
                return Ok(None);
            };
            let ok = matches!(
                status,
                JobStatus::Succeeded | JobStatus::SucceededWithWarnings
            );
            let event: Event = if ok {
                PendingRunCompleted {
                    run_id: p.id.clone(),
                    host_id: p.host_id.clone(),
                    job_id: jid.clone(),
                }
                .into()
            } else {
                match sources::next_attempt_after(
                    p.attempts,
                    p.retry_max,
                    p.retry_backoff_seconds,
                    unix(now),
                ) {
                    Some(t) => PendingRunRetryScheduled {
                        run_id: p.id.clone(),
                        host_id: p.host_id.clone(),
                        attempts: p.attempts,
                        not_before: Timestamp::from_unix_micros(t * 1_000_000)
                            .unwrap_or(now)
                            .to_string(),
                    }
                    .into(),
                    None => PendingRunDropped {
                        run_id: p.id.clone(),
                        host_id: p.host_id.clone(),
                        reason: format!(
                            "gave up after {} attempt(s); the last ended {}{}",
                            p.attempts,
                            status.as_str(),
                            error.map(|e| format!(": {e}")).unwrap_or_default()
                        ),
                    }
                    .into(),
                }
            };
            uow.append(
                AppendRequest::new(
                    format!("pending-{}", p.id),
                    Actor::System("pending-runs".into()),
                    vec![event],
                )
                .command(format!("pending-end:{}:{}", p.id, jid)),
            )?;
            Ok(Some(p.host_id))
        })
        .await?;
    if let Some(h) = host {
        if state.agents.is_connected(&h) {
            drain(state, &h).await?;
        }
    }
    Ok(())
}
