//! The alert evaluator: a consumer of the event log (and of the clock) that raises and
//! resolves alerts. It keeps its checkpoint in `consumer_checkpoints`, written in the same
//! transaction as the alerts it appends, so a restart neither loses nor repeats a decision.
//! It is a process manager: it never runs during a replay.

use std::time::Duration;

use domain::alerts::{self, AlertKind, AlertsState, Observation};
use domain::jobs::{JobKind, JobStatus, Trigger};
use domain::{Actor, Event, RecordedEvent, Timestamp};
use rusqlite::{params, Connection, OptionalExtension};

use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{query_events, AppendRequest, EventQuery, Uow};

/// The evaluator's name in `consumer_checkpoints`.
pub const CONSUMER: &str = "alerts";

/// Reads a consumer's checkpoint.
pub fn checkpoint(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT seq FROM consumer_checkpoints WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Moves a consumer's checkpoint (inside the caller's write transaction).
pub fn set_checkpoint(conn: &Connection, name: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO consumer_checkpoints (name, seq) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET seq = max(seq, excluded.seq)",
    )?
    .execute(params![name, seq])?;
    Ok(())
}

fn unix(t: Timestamp) -> i64 {
    t.unix_micros().div_euclid(1_000_000)
}

fn parse_unix(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(unix)
}

fn at(unix_secs: i64) -> String {
    Timestamp::from_unix_micros(unix_secs * 1_000_000)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Runs until shutdown: after every commit, and every `tick` for the clock-driven checks.
pub async fn run(state: AppState, tick: Duration) {
    let mut committed = state.store.subscribe();
    let shutdown = state.shutdown.clone();
    let mut timer = tokio::time::interval(tick);
    loop {
        let clock_check = tokio::select! {
            _ = shutdown.wait() => return,
            _ = timer.tick() => true,
            r = committed.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    return;
                }
                false
            }
        };
        if let Err(e) = catch_up(&state).await {
            tracing::warn!(error = %e, "alert evaluator could not read the log");
        }
        if clock_check {
            if let Err(e) = check_clock(&state).await {
                tracing::warn!(error = %e, "alert evaluator clock check failed");
            }
        }
    }
}

/// What an event says about alert conditions.
fn observations(e: &Event) -> Vec<Observation> {
    let bad = |host: &str, kind, message: String, job: Option<&str>| Observation::Bad {
        host_id: host.to_string(),
        kind,
        subject: None,
        message,
        job_id: job.map(str::to_string),
    };
    let good = |host: &str, kind, reason: &str| Observation::Good {
        host_id: host.to_string(),
        kind,
        subject: None,
        reason: reason.to_string(),
    };
    match e {
        Event::JobFinished(f) => {
            let ok = matches!(
                f.status,
                JobStatus::Succeeded | JobStatus::SucceededWithWarnings
            );
            let failed = f.status == JobStatus::Failed;
            let why = f.error.clone().unwrap_or_else(|| "no error text".into());
            let mut out = Vec::new();
            match f.kind {
                JobKind::Backup if failed => out.push(bad(
                    &f.host_id,
                    AlertKind::BackupFailed,
                    format!("backup failed: {why}"),
                    Some(&f.job_id),
                )),
                JobKind::Backup if ok => {
                    out.push(good(
                        &f.host_id,
                        AlertKind::BackupFailed,
                        "a later backup succeeded",
                    ));
                    out.push(good(
                        &f.host_id,
                        AlertKind::BackupStale,
                        "a backup succeeded",
                    ));
                }
                JobKind::Check if failed && f.error_code.as_deref() == Some("check_failed") => out
                    .push(bad(
                        &f.host_id,
                        AlertKind::CheckFailed,
                        format!("repository check found problems: {why}"),
                        Some(&f.job_id),
                    )),
                JobKind::Check if ok => out.push(good(
                    &f.host_id,
                    AlertKind::CheckFailed,
                    "a later check passed",
                )),
                _ => {}
            }
            if f.error_code.as_deref() == Some("repo_locked") {
                out.push(bad(
                    &f.host_id,
                    AlertKind::RepoLocked,
                    format!("the repository is locked: {why}"),
                    Some(&f.job_id),
                ));
            } else if ok && f.kind != JobKind::Restore {
                out.push(good(
                    &f.host_id,
                    AlertKind::RepoLocked,
                    "a job took the lock again",
                ));
            }
            out
        }
        Event::HostWentOffline(h) => vec![bad(
            &h.host_id,
            AlertKind::AgentOffline,
            format!("the agent is offline: {}", h.reason),
            None,
        )],
        Event::HostCameOnline(h) => vec![good(
            &h.host_id,
            AlertKind::AgentOffline,
            "the agent is back",
        )],
        Event::JobQueued(q) if q.trigger == Trigger::Schedule => vec![Observation::Good {
            host_id: q.host_id.clone(),
            kind: AlertKind::ScheduleMissed,
            subject: q.schedule_id.clone(),
            reason: "the schedule ran again".into(),
        }],
        Event::HostDeleted(d) => AlertKind::ALL
            .into_iter()
            .map(|k| good(&d.host_id, k, "the host was deleted"))
            .collect(),
        _ => vec![],
    }
}

/// Applies observations: decides against the current alerts and appends.
fn apply_observations(
    uow: &mut Uow<'_>,
    alerts: &mut AlertsState,
    obs: &[Observation],
    command_base: Option<String>,
) -> Result<usize, AppError> {
    let mut n = 0;
    for (i, o) in obs.iter().enumerate() {
        let events = alerts::observe(alerts, o, &uuid::Uuid::now_v7().to_string());
        for e in &events {
            alerts.evolve(e);
        }
        for e in events {
            let mut req = AppendRequest::new(e.stream(), Actor::System("alerts".into()), vec![e]);
            if let Some(b) = &command_base {
                req = req.command(format!("{b}:{i}:{n}"));
            }
            uow.append(req)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Folds every event after the checkpoint, in batches.
pub async fn catch_up(state: &AppState) -> Result<(), AppError> {
    loop {
        let more = state
            .store
            .write(|uow| -> Result<bool, AppError> {
                let from = checkpoint(uow.conn(), CONSUMER)?;
                let batch: Vec<RecordedEvent> = query_events(
                    uow.conn(),
                    &EventQuery {
                        after: Some(from),
                        limit: Some(500),
                        ..Default::default()
                    },
                )?;
                let Some(last) = batch.last().map(|e| e.seq) else {
                    return Ok(false);
                };
                let mut alerts = projections::alerts::load_state(uow.conn())?;
                for rec in &batch {
                    let Ok(e) = rec.decode() else { continue };
                    let obs = observations(&e);
                    if !obs.is_empty() {
                        apply_observations(
                            uow,
                            &mut alerts,
                            &obs,
                            Some(format!("alerts:{}", rec.seq)),
                        )?;
                    }
                }
                set_checkpoint(uow.conn(), CONSUMER, last)?;
                Ok(batch.len() == 500)
            })
            .await?;
        if !more {
            return Ok(());
        }
    }
}

/// The clock-driven checks: stale backups and missed schedule fires.
pub async fn check_clock(state: &AppState) -> Result<(), AppError> {
    let now = unix(state.clock.now());
    let grace = state.config.alert_grace_secs as i64;
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let c = uow.conn();
            let schedules = projections::config::active_schedules(c)?;
            let mut obs = Vec::new();
            let mut hosts: std::collections::BTreeMap<
                String,
                Vec<&projections::config::ActiveSchedule>,
            > = Default::default();
            for s in &schedules {
                hosts.entry(s.host_id.clone()).or_default().push(s);
            }
            for (host_id, list) in &hosts {
                let deleted = projections::hosts::load_state(c, host_id)?
                    .hosts
                    .get(host_id)
                    .is_none_or(|h| h.deleted);
                if deleted {
                    continue;
                }
                // Missed fires: the last fire before now − grace, after the schedule existed,
                // with no job of that schedule since.
                for s in list {
                    let created = parse_unix(&s.created_at).unwrap_or(now);
                    let Some(prev) = alerts::prev_fire(&s.cron, now - grace) else {
                        continue;
                    };
                    if prev <= created {
                        continue;
                    }
                    if !projections::jobs::schedule_ran_since(c, host_id, &s.id, &at(prev - 60))? {
                        obs.push(Observation::Bad {
                            host_id: host_id.clone(),
                            kind: AlertKind::ScheduleMissed,
                            subject: Some(s.id.clone()),
                            message: format!(
                                "schedule \"{}\" ({}) should have run at {} and did not",
                                s.cron,
                                domain::sources::describe_cron(&s.cron),
                                at(prev)
                            ),
                            job_id: None,
                        });
                    }
                }
                // Stale: no success within twice the shortest interval (plus grace).
                let interval = list
                    .iter()
                    .filter_map(|s| {
                        let a = domain::sources::next_fire(&s.cron, now)?;
                        let b = domain::sources::next_fire(&s.cron, a)?;
                        Some(b - a)
                    })
                    .min();
                let since = list
                    .iter()
                    .filter_map(|s| parse_unix(&s.created_at))
                    .min()
                    .unwrap_or(now);
                let last = projections::jobs::last_success(c, host_id)?
                    .as_deref()
                    .and_then(parse_unix);
                if let Some(interval) = interval {
                    if alerts::is_stale(last, since, interval, grace, now) {
                        obs.push(Observation::Bad {
                            host_id: host_id.clone(),
                            kind: AlertKind::BackupStale,
                            subject: None,
                            message: match last {
                                Some(l) => format!(
                                    "no successful backup since {} (expected every {} s)",
                                    at(l),
                                    interval
                                ),
                                None => format!(
                                    "no successful backup yet (expected every {interval} s)"
                                ),
                            },
                            job_id: None,
                        });
                    }
                }
            }
            if !obs.is_empty() {
                let mut alerts = projections::alerts::load_state(c)?;
                apply_observations(uow, &mut alerts, &obs, None)?;
            }
            Ok(())
        })
        .await
}

/// An operator acknowledges an alert.
pub async fn acknowledge(state: &AppState, actor: Actor, alert_id: &str) -> Result<(), AppError> {
    let id = alert_id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let s = projections::alerts::load_one(uow.conn(), &id)?;
            let events = alerts::acknowledge(&s, &id)?;
            if !events.is_empty() {
                uow.append(AppendRequest::new(format!("alert-{id}"), actor, events))?;
            }
            Ok(())
        })
        .await
}

/// An operator resolves an alert by hand (it is raised again if the condition persists).
pub async fn resolve(state: &AppState, actor: Actor, alert_id: &str) -> Result<(), AppError> {
    let id = alert_id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let s = projections::alerts::load_one(uow.conn(), &id)?;
            let events = alerts::resolve(&s, &id, "resolved by an operator")?;
            if !events.is_empty() {
                uow.append(AppendRequest::new(format!("alert-{id}"), actor, events))?;
            }
            Ok(())
        })
        .await
}
