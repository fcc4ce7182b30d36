//! Each host's backup configuration (source groups, schedules, maintenance, caps, hooks),
//! its pending runs, and its repository's status panel.

use std::collections::BTreeMap;

use domain::jobs::{JobKind, JobStatus, Trigger};
use domain::sources::{Bandwidth, HostConfig, Maintenance, RetentionPolicy, Schedule, SourceGroup};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::Projection;

/// Folds configuration, pending-run and repository events.
pub struct ConfigProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS source_groups (
    host_id     TEXT NOT NULL,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    body        TEXT NOT NULL,
    has_pre     INTEGER NOT NULL DEFAULT 0,
    has_post    INTEGER NOT NULL DEFAULT 0,
    created_seq INTEGER NOT NULL,
    PRIMARY KEY (host_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    host_id         TEXT NOT NULL,
    id              TEXT NOT NULL,
    cron            TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    group_ids       TEXT NOT NULL,
    created_seq     INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    last_job_id     TEXT,
    last_run_at     TEXT,
    last_run_status TEXT,
    PRIMARY KEY (host_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS host_config (
    host_id           TEXT PRIMARY KEY,
    schedule_version  INTEGER NOT NULL DEFAULT 0,
    applied_version   INTEGER NOT NULL DEFAULT 0,
    maintenance       TEXT NOT NULL,
    up_kbps           INTEGER,
    down_kbps         INTEGER,
    default_has_pre   INTEGER NOT NULL DEFAULT 0,
    default_has_post  INTEGER NOT NULL DEFAULT 0,
    admin_credentials_ref TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_runs (
    id            TEXT PRIMARY KEY,
    host_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    group_id      TEXT,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry_max     INTEGER NOT NULL,
    retry_backoff_seconds INTEGER NOT NULL,
    not_before    TEXT,
    job_id        TEXT,
    reason        TEXT NOT NULL,
    queued_at     TEXT NOT NULL,
    queued_seq    INTEGER NOT NULL,
    ended_at      TEXT,
    end_reason    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_runs_host ON pending_runs(host_id, state, queued_seq);
CREATE TABLE IF NOT EXISTS repo_status (
    host_id            TEXT PRIMARY KEY,
    repo_size_bytes    INTEGER,
    restore_size_bytes INTEGER,
    snapshot_count     INTEGER NOT NULL DEFAULT 0,
    last_check_at      TEXT,
    last_check_status  TEXT,
    last_check_error   TEXT,
    last_check_job     TEXT,
    last_prune_at      TEXT,
    last_prune_status  TEXT,
    last_prune_job     TEXT,
    bytes_freed        INTEGER,
    lock_state         TEXT NOT NULL DEFAULT 'unknown',
    lock_seen_at       TEXT,
    last_init_at       TEXT,
    last_init_status   TEXT,
    last_init_job      TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS maintenance_runs (
    host_id   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    last_queued_at TEXT NOT NULL,
    PRIMARY KEY (host_id, kind)
) WITHOUT ROWID;
";

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Projection for ConfigProjection {
    fn name(&self) -> &'static str {
        "config"
    }
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &[
            "source_groups",
            "schedules",
            "host_config",
            "pending_runs",
            "repo_status",
            "maintenance_runs",
        ]
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        let at = ev.occurred_at.as_str();
        match event {
            Event::HostEnrolled(h) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO host_config (host_id, maintenance) VALUES (?1, ?2)",
                )?
                .execute(params![h.host_id, json(&Maintenance::default())])?;
                conn.prepare_cached("INSERT OR IGNORE INTO repo_status (host_id) VALUES (?1)")?
                    .execute([&h.host_id])?;
            }
            Event::SourceGroupSaved(x) => {
                conn.prepare_cached(
                    "INSERT INTO source_groups (host_id, id, name, body, created_seq) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (host_id, id) DO UPDATE SET name = excluded.name, body = excluded.body",
                )?
                .execute(params![x.host_id, x.group.id, x.group.name, json(&x.group), ev.seq])?;
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::SourceGroupDeleted(x) => {
                conn.prepare_cached("DELETE FROM source_groups WHERE host_id = ?1 AND id = ?2")?
                    .execute(params![x.host_id, x.group_id])?;
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::ScheduleSaved(x) => {
                let s = &x.schedule;
                conn.prepare_cached(
                    "INSERT INTO schedules (host_id, id, cron, enabled, group_ids, created_seq, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (host_id, id) DO UPDATE SET cron = excluded.cron, enabled = excluded.enabled, group_ids = excluded.group_ids",
                )?
                .execute(params![x.host_id, s.id, s.cron, s.enabled, json(&s.source_group_ids), ev.seq, at])?;
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::ScheduleDeleted(x) => {
                conn.prepare_cached("DELETE FROM schedules WHERE host_id = ?1 AND id = ?2")?
                    .execute(params![x.host_id, x.schedule_id])?;
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::ScheduleSetApplied(x) => {
                conn.prepare_cached(
                    "UPDATE host_config SET applied_version = max(applied_version, ?2) WHERE host_id = ?1",
                )?
                .execute(params![x.host_id, x.version])?;
            }
            Event::MaintenanceChanged(x) => {
                conn.prepare_cached("UPDATE host_config SET maintenance = ?2 WHERE host_id = ?1")?
                    .execute(params![x.host_id, json(&x.maintenance)])?;
            }
            Event::BandwidthChanged(x) => {
                conn.prepare_cached(
                    "UPDATE host_config SET up_kbps = ?2, down_kbps = ?3 WHERE host_id = ?1",
                )?
                .execute(params![
                    x.host_id,
                    x.bandwidth.up_kbps.map(|v| v as i64),
                    x.bandwidth.down_kbps.map(|v| v as i64)
                ])?;
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::HooksChanged(x) => {
                match &x.group_id {
                    Some(g) => conn
                        .prepare_cached(
                            "UPDATE source_groups SET has_pre = ?3, has_post = ?4 WHERE host_id = ?1 AND id = ?2",
                        )?
                        .execute(params![x.host_id, g, x.has_pre, x.has_post])?,
                    None => conn
                        .prepare_cached(
                            "UPDATE host_config SET default_has_pre = ?2, default_has_post = ?3 WHERE host_id = ?1",
                        )?
                        .execute(params![x.host_id, x.has_pre, x.has_post])?,
                };
                set_version(conn, &x.host_id, x.schedule_version)?;
            }
            Event::AdminCredentialsChanged(x) => {
                conn.prepare_cached(
                    "UPDATE host_config SET admin_credentials_ref = ?2 WHERE host_id = ?1",
                )?
                .execute(params![x.host_id, x.credentials_ref])?;
            }
            Event::JobQueued(q) => {
                if q.trigger == Trigger::Schedule {
                    if let Some(sid) = &q.schedule_id {
                        conn.prepare_cached(
                            "UPDATE schedules SET last_job_id = ?3, last_run_at = ?4, last_run_status = 'queued'
                             WHERE host_id = ?1 AND id = ?2",
                        )?
                        .execute(params![q.host_id, sid, q.job_id, at])?;
                    }
                }
                if matches!(q.kind, JobKind::Forget | JobKind::Prune | JobKind::Check) {
                    conn.prepare_cached(
                        "INSERT INTO maintenance_runs (host_id, kind, last_queued_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (host_id, kind) DO UPDATE SET last_queued_at = excluded.last_queued_at",
                    )?
                    .execute(params![q.host_id, q.kind.as_str(), at])?;
                }
            }
            Event::JobFinished(f) => {
                conn.prepare_cached(
                    "UPDATE schedules SET last_run_status = ?3 WHERE host_id = ?1 AND last_job_id = ?2",
                )?
                .execute(params![f.host_id, f.job_id, f.status.as_str()])?;
                let ok = matches!(
                    f.status,
                    JobStatus::Succeeded | JobStatus::SucceededWithWarnings
                );
                match f.kind {
                    JobKind::Check => {
                        conn.prepare_cached(
                            "UPDATE repo_status SET last_check_at = ?2, last_check_status = ?3, last_check_error = ?4, last_check_job = ?5 WHERE host_id = ?1",
                        )?
                        .execute(params![f.host_id, at, f.status.as_str(), f.error, f.job_id])?;
                    }
                    JobKind::Prune => {
                        let freed = f
                            .stats
                            .as_ref()
                            .and_then(|s| s.get("bytes_freed"))
                            .and_then(Value::as_u64)
                            .map(|v| v as i64);
                        conn.prepare_cached(
                            "UPDATE repo_status SET last_prune_at = ?2, last_prune_status = ?3, last_prune_job = ?4,
                               bytes_freed = CASE WHEN ?5 IS NULL AND ?3 NOT IN ('succeeded', 'succeeded_with_warnings') THEN bytes_freed ELSE ?5 END
                             WHERE host_id = ?1",
                        )?
                        .execute(params![f.host_id, at, f.status.as_str(), f.job_id, freed])?;
                    }
                    JobKind::Init => {
                        conn.prepare_cached(
                            "UPDATE repo_status SET last_init_at = ?2, last_init_status = ?3, last_init_job = ?4 WHERE host_id = ?1",
                        )?
                        .execute(params![f.host_id, at, f.status.as_str(), f.job_id])?;
                    }
                    _ => {}
                }
                // Lock state: a lock failure says locked; a job that took the lock (or an
                // unlock) says free.
                let lock = if f.error_code.as_deref() == Some("repo_locked") {
                    Some("locked")
                } else if ok && f.kind != JobKind::Restore {
                    Some("free")
                } else {
                    None
                };
                if let Some(l) = lock {
                    conn.prepare_cached(
                        "UPDATE repo_status SET lock_state = ?2, lock_seen_at = ?3 WHERE host_id = ?1",
                    )?
                    .execute(params![f.host_id, l, at])?;
                }
            }
            Event::SnapshotsReported(r) => {
                conn.prepare_cached(
                    "UPDATE repo_status SET snapshot_count = ?2,
                       repo_size_bytes = coalesce(?3, repo_size_bytes),
                       restore_size_bytes = coalesce(?4, restore_size_bytes)
                     WHERE host_id = ?1",
                )?
                .execute(params![
                    r.host_id,
                    r.snapshots.len() as i64,
                    r.repo_size_bytes.map(|v| v as i64),
                    r.restore_size_bytes.map(|v| v as i64)
                ])?;
            }
            Event::PendingRunQueued(p) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO pending_runs (id, host_id, kind, group_id, state, retry_max, retry_backoff_seconds, reason, queued_at, queued_seq)
                     VALUES (?1, ?2, ?3, ?4, 'waiting', ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    p.run_id,
                    p.host_id,
                    p.kind.as_str(),
                    p.group_id,
                    p.retry_max,
                    p.retry_backoff_seconds as i64,
                    p.reason,
                    at,
                    ev.seq
                ])?;
                conn.prepare_cached(
                    "INSERT INTO maintenance_runs (host_id, kind, last_queued_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (host_id, kind) DO UPDATE SET last_queued_at = excluded.last_queued_at",
                )?
                .execute(params![p.host_id, p.kind.as_str(), at])?;
            }
            Event::PendingRunAttempted(p) => {
                conn.prepare_cached(
                    "UPDATE pending_runs SET state = 'running', attempts = ?2, job_id = ?3 WHERE id = ?1",
                )?
                .execute(params![p.run_id, p.attempt, p.job_id])?;
            }
            Event::PendingRunRetryScheduled(p) => {
                conn.prepare_cached(
                    "UPDATE pending_runs SET state = 'waiting', attempts = ?2, not_before = ?3 WHERE id = ?1",
                )?
                .execute(params![p.run_id, p.attempts, p.not_before])?;
            }
            Event::PendingRunCompleted(p) => {
                conn.prepare_cached(
                    "UPDATE pending_runs SET state = 'done', job_id = ?2, ended_at = ?3 WHERE id = ?1",
                )?
                .execute(params![p.run_id, p.job_id, at])?;
            }
            Event::PendingRunDropped(p) => {
                conn.prepare_cached(
                    "UPDATE pending_runs SET state = 'dropped', ended_at = ?2, end_reason = ?3 WHERE id = ?1",
                )?
                .execute(params![p.run_id, at, p.reason])?;
            }
            Event::HostDeleted(d) => {
                for t in [
                    "source_groups",
                    "schedules",
                    "host_config",
                    "repo_status",
                    "maintenance_runs",
                ] {
                    conn.prepare_cached(&format!("DELETE FROM {t} WHERE host_id = ?1"))?
                        .execute([&d.host_id])?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn set_version(conn: &Connection, host_id: &str, v: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE host_config SET schedule_version = ?2 WHERE host_id = ?1")?
        .execute(params![host_id, v as i64])?;
    Ok(())
}

/// A source group as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupView {
    /// Host.
    pub host_id: String,
    /// The group.
    #[serde(flatten)]
    pub group: SourceGroup,
    /// A pre-hook is set for this group.
    pub has_pre_hook: bool,
    /// A post-hook is set for this group.
    pub has_post_hook: bool,
}

/// A host's groups, oldest first.
pub fn groups(conn: &Connection, host_id: &str) -> rusqlite::Result<Vec<GroupView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT body, has_pre, has_post FROM source_groups WHERE host_id = ?1 ORDER BY created_seq",
    )?;
    let rows = stmt.query_map([host_id], |r| {
        let body: String = r.get(0)?;
        Ok((body, r.get::<_, bool>(1)?, r.get::<_, bool>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (body, has_pre_hook, has_post_hook) = row?;
        if let Ok(group) = serde_json::from_str::<SourceGroup>(&body) {
            out.push(GroupView {
                host_id: host_id.to_string(),
                group,
                has_pre_hook,
                has_post_hook,
            });
        }
    }
    Ok(out)
}

/// One group.
pub fn group(conn: &Connection, host_id: &str, id: &str) -> rusqlite::Result<Option<GroupView>> {
    Ok(groups(conn, host_id)?
        .into_iter()
        .find(|g| g.group.id == id))
}

/// A schedule as the API shows it (the server adds `next_run_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleView {
    /// Host.
    pub host_id: String,
    /// The schedule.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// The last job it fired.
    pub last_job_id: Option<String>,
    /// When.
    pub last_run_at: Option<String>,
    /// How that went.
    pub last_run_status: Option<String>,
}

/// A host's schedules, oldest first.
pub fn schedules(conn: &Connection, host_id: &str) -> rusqlite::Result<Vec<ScheduleView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, cron, enabled, group_ids, last_job_id, last_run_at, last_run_status
         FROM schedules WHERE host_id = ?1 ORDER BY created_seq",
    )?;
    let rows = stmt.query_map([host_id], |r| {
        let ids: String = r.get(3)?;
        Ok(ScheduleView {
            host_id: host_id.to_string(),
            schedule: Schedule {
                id: r.get(0)?,
                cron: r.get(1)?,
                enabled: r.get(2)?,
                source_group_ids: serde_json::from_str(&ids).unwrap_or_default(),
            },
            last_job_id: r.get(4)?,
            last_run_at: r.get(5)?,
            last_run_status: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// Host-wide settings as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSettings {
    /// Bumped by every change the agent must know.
    pub schedule_version: u64,
    /// What the agent confirmed.
    pub applied_version: u64,
    /// Maintenance.
    pub maintenance: Maintenance,
    /// Caps.
    pub bandwidth: Bandwidth,
    /// Host-wide pre-hook set.
    pub default_has_pre_hook: bool,
    /// Host-wide post-hook set.
    pub default_has_post_hook: bool,
    /// A full-access credential for forget/prune is stored.
    pub has_admin_credentials: bool,
}

/// A host's settings (`None` for an unknown or deleted host).
pub fn settings(conn: &Connection, host_id: &str) -> rusqlite::Result<Option<HostSettings>> {
    conn.prepare_cached(
        "SELECT schedule_version, applied_version, maintenance, up_kbps, down_kbps,
                default_has_pre, default_has_post, admin_credentials_ref
         FROM host_config WHERE host_id = ?1",
    )?
    .query_row([host_id], |r| {
        let m: String = r.get(2)?;
        Ok(HostSettings {
            schedule_version: r.get::<_, i64>(0)? as u64,
            applied_version: r.get::<_, i64>(1)? as u64,
            maintenance: serde_json::from_str(&m).unwrap_or_default(),
            bandwidth: Bandwidth {
                up_kbps: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                down_kbps: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            },
            default_has_pre_hook: r.get(5)?,
            default_has_post_hook: r.get(6)?,
            has_admin_credentials: r.get::<_, Option<String>>(7)?.is_some(),
        })
    })
    .optional()
}

/// The state configuration decisions need.
pub fn load_config(conn: &Connection, host_id: &str) -> rusqlite::Result<HostConfig> {
    let mut cfg = HostConfig::default();
    let Some(s) = settings(conn, host_id)? else {
        return Ok(cfg);
    };
    cfg.schedule_version = s.schedule_version;
    cfg.applied_version = s.applied_version;
    cfg.maintenance = s.maintenance;
    cfg.bandwidth = s.bandwidth;
    cfg.admin_credentials_ref = conn
        .prepare_cached("SELECT admin_credentials_ref FROM host_config WHERE host_id = ?1")?
        .query_row([host_id], |r| r.get(0))?;
    if s.default_has_pre_hook || s.default_has_post_hook {
        cfg.hooks
            .insert(None, (s.default_has_pre_hook, s.default_has_post_hook));
    }
    for g in groups(conn, host_id)? {
        if g.has_pre_hook || g.has_post_hook {
            cfg.hooks
                .insert(Some(g.group.id.clone()), (g.has_pre_hook, g.has_post_hook));
        }
        cfg.groups.insert(g.group.id.clone(), g.group);
    }
    for s in schedules(conn, host_id)? {
        cfg.schedules.insert(s.schedule.id.clone(), s.schedule);
    }
    Ok(cfg)
}

/// A pending run as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRun {
    /// Id.
    pub id: String,
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: String,
    /// Group, for forget.
    pub group_id: Option<String>,
    /// waiting, running, done, dropped.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Retries allowed.
    pub retry_max: u32,
    /// Backoff unit.
    pub retry_backoff_seconds: u64,
    /// Earliest next attempt.
    pub not_before: Option<String>,
    /// Current or last job.
    pub job_id: Option<String>,
    /// Why it waited.
    pub reason: String,
    /// When it was queued.
    pub queued_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Why it was dropped.
    pub end_reason: Option<String>,
}

/// A host's pending runs; `open_only` leaves out done and dropped ones.
pub fn pending_runs(
    conn: &Connection,
    host_id: &str,
    open_only: bool,
) -> rusqlite::Result<Vec<PendingRun>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host_id, kind, group_id, state, attempts, retry_max, retry_backoff_seconds,
                not_before, job_id, reason, queued_at, ended_at, end_reason
         FROM pending_runs WHERE host_id = ?1 AND (?2 = 0 OR state IN ('waiting', 'running'))
         ORDER BY queued_seq",
    )?;
    let rows = stmt.query_map(params![host_id, open_only], |r| {
        Ok(PendingRun {
            id: r.get(0)?,
            host_id: r.get(1)?,
            kind: r.get(2)?,
            group_id: r.get(3)?,
            state: r.get(4)?,
            attempts: r.get(5)?,
            retry_max: r.get(6)?,
            retry_backoff_seconds: r.get::<_, i64>(7)? as u64,
            not_before: r.get(8)?,
            job_id: r.get(9)?,
            reason: r.get(10)?,
            queued_at: r.get(11)?,
            ended_at: r.get(12)?,
            end_reason: r.get(13)?,
        })
    })?;
    rows.collect()
}

/// The pending run a job attempts, if any.
pub fn pending_run_of_job(conn: &Connection, job_id: &str) -> rusqlite::Result<Option<PendingRun>> {
    let id: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT id, host_id FROM pending_runs WHERE job_id = ?1 AND state = 'running'",
        )?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match id {
        Some((id, host)) => Ok(pending_runs(conn, &host, true)?
            .into_iter()
            .find(|p| p.id == id)),
        None => Ok(None),
    }
}

/// When each maintenance kind last queued a job or pending run on a host (RFC 3339).
pub fn last_maintenance(
    conn: &Connection,
    host_id: &str,
) -> rusqlite::Result<BTreeMap<JobKind, String>> {
    let mut stmt = conn
        .prepare_cached("SELECT kind, last_queued_at FROM maintenance_runs WHERE host_id = ?1")?;
    let rows = stmt.query_map([host_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (k, at) = row?;
        if let Ok(kind) = serde_json::from_value::<JobKind>(Value::String(k)) {
            out.insert(kind, at);
        }
    }
    Ok(out)
}

/// Hosts whose maintenance is on.
pub fn maintained_hosts(conn: &Connection) -> rusqlite::Result<Vec<(String, Maintenance)>> {
    let mut stmt =
        conn.prepare_cached("SELECT host_id, maintenance FROM host_config ORDER BY host_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (h, m) = row?;
        let m: Maintenance = serde_json::from_str(&m).unwrap_or_default();
        if m.enabled {
            out.push((h, m));
        }
    }
    Ok(out)
}

/// The repository panel.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RepoStatus {
    /// Raw data size.
    pub repo_size_bytes: Option<u64>,
    /// Size of the snapshots' contents before deduplication.
    pub restore_size_bytes: Option<u64>,
    /// restore size ÷ raw size.
    pub dedup_ratio: Option<f64>,
    /// Snapshots.
    pub snapshot_count: u64,
    /// Last check.
    pub last_check_at: Option<String>,
    /// Its status.
    pub last_check_status: Option<String>,
    /// Its error.
    pub last_check_error: Option<String>,
    /// Its job.
    pub last_check_job: Option<String>,
    /// Last prune.
    pub last_prune_at: Option<String>,
    /// Its status.
    pub last_prune_status: Option<String>,
    /// Its job.
    pub last_prune_job: Option<String>,
    /// What the last successful prune freed.
    pub bytes_freed: Option<u64>,
    /// `unknown`, `locked`, `free`.
    pub lock_state: String,
    /// When the lock state was last seen.
    pub lock_seen_at: Option<String>,
    /// Last init.
    pub last_init_at: Option<String>,
    /// Its status.
    pub last_init_status: Option<String>,
    /// Its job.
    pub last_init_job: Option<String>,
}

/// A host's repository panel.
pub fn repo_status(conn: &Connection, host_id: &str) -> rusqlite::Result<Option<RepoStatus>> {
    conn.prepare_cached(
        "SELECT repo_size_bytes, restore_size_bytes, snapshot_count, last_check_at, last_check_status,
                last_check_error, last_check_job, last_prune_at, last_prune_status, last_prune_job,
                bytes_freed, lock_state, lock_seen_at, last_init_at, last_init_status, last_init_job
         FROM repo_status WHERE host_id = ?1",
    )?
    .query_row([host_id], |r| {
        let size: Option<i64> = r.get(0)?;
        let restore: Option<i64> = r.get(1)?;
        Ok(RepoStatus {
            repo_size_bytes: size.map(|v| v as u64),
            restore_size_bytes: restore.map(|v| v as u64),
            dedup_ratio: match (restore, size) {
                (Some(r), Some(s)) if s > 0 => Some(r as f64 / s as f64),
                _ => None,
            },
            snapshot_count: r.get::<_, i64>(2)? as u64,
            last_check_at: r.get(3)?,
            last_check_status: r.get(4)?,
            last_check_error: r.get(5)?,
            last_check_job: r.get(6)?,
            last_prune_at: r.get(7)?,
            last_prune_status: r.get(8)?,
            last_prune_job: r.get(9)?,
            bytes_freed: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
            lock_state: r.get(11)?,
            lock_seen_at: r.get(12)?,
            last_init_at: r.get(13)?,
            last_init_status: r.get(14)?,
            last_init_job: r.get(15)?,
        })
    })
    .optional()
}

/// Retention of a group, for forget jobs.
pub fn retention_of(
    conn: &Connection,
    host_id: &str,
    group_id: &str,
) -> rusqlite::Result<Option<RetentionPolicy>> {
    Ok(group(conn, host_id, group_id)?.map(|g| g.group.retention_policy))
}

/// One host's schedules in short, for the dashboard and the host overview.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ScheduleDigest {
    /// Schedules in all, paused ones included.
    pub count: u32,
    /// Cron expressions of the enabled schedules (the caller works out the next fire).
    pub enabled_crons: Vec<String>,
    /// The most recent scheduled run, over all the host's schedules.
    pub last_run_at: Option<String>,
    /// How it went.
    pub last_run_status: Option<String>,
    /// Its job.
    pub last_job_id: Option<String>,
}

/// Every host's schedule digest, keyed by host id, in one query (hosts without schedules
/// are absent).
pub fn schedule_digests(
    conn: &Connection,
) -> rusqlite::Result<std::collections::HashMap<String, ScheduleDigest>> {
    let mut stmt = conn.prepare_cached(
        "SELECT host_id, cron, enabled, last_run_at, last_run_status, last_job_id FROM schedules",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut out: std::collections::HashMap<String, ScheduleDigest> =
        std::collections::HashMap::new();
    for row in rows {
        let (host, cron, enabled, at, status, job) = row?;
        let d = out.entry(host).or_default();
        d.count += 1;
        if enabled {
            d.enabled_crons.push(cron);
        }
        // Stored times share one fixed-width RFC 3339 form, so they order as text.
        if at.is_some() && at > d.last_run_at {
            d.last_run_at = at;
            d.last_run_status = status;
            d.last_job_id = job;
        }
    }
    Ok(out)
}

/// One host's schedule digest (`None` without schedules).
pub fn schedule_digest(
    conn: &Connection,
    host_id: &str,
) -> rusqlite::Result<Option<ScheduleDigest>> {
    let mut d = ScheduleDigest::default();
    for s in schedules(conn, host_id)? {
        d.count += 1;
        if s.schedule.enabled {
            d.enabled_crons.push(s.schedule.cron);
        }
        if s.last_run_at.is_some() && s.last_run_at > d.last_run_at {
            d.last_run_at = s.last_run_at;
            d.last_run_status = s.last_run_status;
            d.last_job_id = s.last_job_id;
        }
    }
    Ok((d.count > 0).then_some(d))
}

/// An enabled schedule with when it was created, for the alert evaluator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSchedule {
    /// Host.
    pub host_id: String,
    /// Schedule.
    pub id: String,
    /// Cron.
    pub cron: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// Every enabled schedule of every host.
pub fn active_schedules(conn: &Connection) -> rusqlite::Result<Vec<ActiveSchedule>> {
    let mut stmt = conn.prepare_cached(
        "SELECT host_id, id, cron, created_at FROM schedules WHERE enabled = 1 ORDER BY host_id, created_seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ActiveSchedule {
            host_id: r.get(0)?,
            id: r.get(1)?,
            cron: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?;
    rows.collect()
}
