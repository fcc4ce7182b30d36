//! Jobs, their logs, and each host's snapshot list.

use domain::jobs::{JobState, JobStatus, JobsState};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::Projection;

/// Folds job events into `jobs` and `job_logs`.
pub struct JobsProjection;

const JOBS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT PRIMARY KEY,
    host_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    params        TEXT NOT NULL,
    queued_at     TEXT NOT NULL,
    queued_seq    INTEGER NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    progress      TEXT,
    stats         TEXT,
    error         TEXT,
    snapshot_id   TEXT,
    warnings      TEXT NOT NULL DEFAULT '[]',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lost_reason   TEXT,
    late_result   INTEGER NOT NULL DEFAULT 0,
    log_lines     INTEGER NOT NULL DEFAULT 0,
    trigger       TEXT NOT NULL DEFAULT 'manual',
    source_group_id TEXT,
    schedule_id   TEXT,
    pending_run_id TEXT,
    error_code    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_host ON jobs(host_id, queued_seq);
CREATE TABLE IF NOT EXISTS job_logs (
    job_id  TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    at      TEXT NOT NULL,
    stream  TEXT NOT NULL,
    text    TEXT NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
";

impl Projection for JobsProjection {
    fn name(&self) -> &'static str {
        "jobs"
    }
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["jobs", "job_logs"]
    }
    fn schema(&self) -> &'static str {
        JOBS_SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        let at = ev.occurred_at.as_str();
        match event {
            Event::JobQueued(q) => {
                conn.prepare_cached(
                    "INSERT INTO jobs (id, host_id, kind, status, params, queued_at, queued_seq,
                                       trigger, source_group_id, schedule_id, pending_run_id)
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    q.job_id,
                    q.host_id,
                    q.kind.as_str(),
                    serde_json::to_string(&q.params).unwrap_or_default(),
                    at,
                    ev.seq,
                    q.trigger.as_str(),
                    q.source_group_id,
                    q.schedule_id,
                    q.pending_run_id
                ])?;
            }
            Event::JobDispatched(r) => {
                conn.prepare_cached(
                    "UPDATE jobs SET status = 'dispatched' WHERE id = ?1 AND status = 'queued'",
                )?
                .execute([&r.job_id])?;
            }
            Event::JobStarted(r) => {
                conn.prepare_cached(
                    "UPDATE jobs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status IN ('queued', 'dispatched')",
                )?
                .execute(params![r.job_id, at])?;
            }
            Event::JobProgressed(p) => {
                conn.prepare_cached("UPDATE jobs SET progress = ?2 WHERE id = ?1")?
                    .execute(params![
                        p.job_id,
                        serde_json::to_string(&p.progress).unwrap_or_default()
                    ])?;
            }
            Event::JobLogged(l) => {
                let start: i64 = conn
                    .prepare_cached("SELECT log_lines FROM jobs WHERE id = ?1")?
                    .query_row([&l.job_id], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0);
                let mut ins = conn.prepare_cached(
                    "INSERT INTO job_logs (job_id, idx, at, stream, text) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (i, line) in l.lines.iter().enumerate() {
                    ins.execute(params![
                        l.job_id,
                        start + i as i64,
                        line.at,
                        line.stream,
                        line.text
                    ])?;
                }
                conn.prepare_cached("UPDATE jobs SET log_lines = log_lines + ?2 WHERE id = ?1")?
                    .execute(params![l.job_id, l.lines.len() as i64])?;
            }
            Event::JobCancelRequested(r) => {
                conn.prepare_cached("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1")?
                    .execute([&r.job_id])?;
            }
            Event::JobFinished(f) => {
                conn.prepare_cached(
                    "UPDATE jobs SET late_result = (status = 'lost'), status = ?2, finished_at = ?3,
                       started_at = coalesce(started_at, ?3), stats = ?4, error = ?5, snapshot_id = ?6, warnings = ?7,
                       error_code = ?8
                     WHERE id = ?1",
                )?
                .execute(params![
                    f.job_id,
                    f.status.as_str(),
                    at,
                    f.stats.as_ref().map(|s| s.to_string()),
                    f.error,
                    f.snapshot_id,
                    serde_json::to_string(&f.warnings).unwrap_or_default(),
                    f.error_code
                ])?;
            }
            Event::JobLost(l) => {
                conn.prepare_cached(
                    "UPDATE jobs SET status = 'lost', finished_at = ?2, lost_reason = ?3, error = ?3
                     WHERE id = ?1 AND status IN ('queued', 'dispatched', 'running')",
                )?
                .execute(params![l.job_id, at, l.reason])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Folds `SnapshotsReported` into `snapshots` (replacing the host's list).
pub struct SnapshotsProjection;

const SNAPSHOTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS snapshots (
    host_id   TEXT NOT NULL,
    id        TEXT NOT NULL,
    short_id  TEXT NOT NULL,
    time      TEXT NOT NULL,
    paths     TEXT NOT NULL,
    tags      TEXT NOT NULL,
    hostname  TEXT NOT NULL,
    PRIMARY KEY (host_id, id)
) WITHOUT ROWID;
";

impl Projection for SnapshotsProjection {
    fn name(&self) -> &'static str {
        "snapshots"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["snapshots"]
    }
    fn schema(&self) -> &'static str {
        SNAPSHOTS_SCHEMA
    }

    fn apply(&self, conn: &Connection, _ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        match event {
            Event::SnapshotsReported(r) => {
                conn.prepare_cached("DELETE FROM snapshots WHERE host_id = ?1")?
                    .execute([&r.host_id])?;
                let mut ins = conn.prepare_cached(
                    "INSERT OR REPLACE INTO snapshots (host_id, id, short_id, time, paths, tags, hostname)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for s in &r.snapshots {
                    ins.execute(params![
                        r.host_id,
                        s.id,
                        s.short_id,
                        s.time,
                        serde_json::to_string(&s.paths).unwrap_or_default(),
                        serde_json::to_string(&s.tags).unwrap_or_default(),
                        s.hostname
                    ])?;
                }
            }
            Event::HostDeleted(d) => {
                conn.prepare_cached("DELETE FROM snapshots WHERE host_id = ?1")?
                    .execute([&d.host_id])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// When queued.
    pub queued_at: String,
    /// When restic started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Last recorded progress.
    pub progress: Option<Value>,
    /// restic's summary.
    pub stats: Option<Value>,
    /// Readable error.
    pub error: Option<String>,
    /// Snapshot made.
    pub snapshot_id: Option<String>,
    /// Unreadable items.
    pub warnings: Vec<String>,
    /// What was asked.
    pub params: Value,
    /// Cancel asked for.
    pub cancel_requested: bool,
    /// The result arrived after the job was declared lost.
    pub late_result: bool,
    /// What started it: manual, schedule, maintenance, pending, auto.
    pub trigger: String,
    /// The source group it ran for.
    pub source_group_id: Option<String>,
    /// The schedule that fired it.
    pub schedule_id: Option<String>,
    /// The pending run it attempted.
    pub pending_run_id: Option<String>,
    /// Why it failed, for machines.
    pub error_code: Option<String>,
}

const JOB_COLS: &str =
    "id, host_id, kind, status, queued_at, started_at, finished_at, progress, stats, error, \
     snapshot_id, warnings, params, cancel_requested, late_result, trigger, source_group_id, \
     schedule_id, pending_run_id, error_code";

fn json_of(s: Option<String>) -> Option<Value> {
    s.and_then(|t| serde_json::from_str(&t).ok())
}

fn job_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        host_id: r.get(1)?,
        kind: r.get(2)?,
        status: r.get(3)?,
        queued_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        progress: json_of(r.get(7)?),
        stats: json_of(r.get(8)?),
        error: r.get(9)?,
        snapshot_id: r.get(10)?,
        warnings: json_of(r.get(11)?)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        params: json_of(r.get(12)?).unwrap_or(Value::Null),
        cancel_requested: r.get(13)?,
        late_result: r.get(14)?,
        trigger: r.get(15)?,
        source_group_id: r.get(16)?,
        schedule_id: r.get(17)?,
        pending_run_id: r.get(18)?,
        error_code: r.get(19)?,
    })
}

/// One job.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Job>> {
    conn.prepare_cached(&format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"))?
        .query_row([id], job_from_row)
        .optional()
}

/// A host's jobs, newest first.
pub fn list_for_host(conn: &Connection, host_id: &str, limit: usize) -> rusqlite::Result<Vec<Job>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLS} FROM jobs WHERE host_id = ?1 ORDER BY queued_seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![host_id, limit as i64], job_from_row)?;
    rows.collect()
}

/// Ids of a host's jobs that are not over.
pub fn open_for_host(conn: &Connection, host_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM jobs WHERE host_id = ?1 AND status IN ('queued', 'dispatched', 'running') ORDER BY queued_seq",
    )?;
    let rows = stmt.query_map([host_id], |r| r.get(0))?;
    rows.collect()
}

/// A job sent to an agent but not started.
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// Id.
    pub id: String,
    /// Kind (API name).
    pub kind: String,
    /// Params (JSON).
    pub params: String,
    /// Group.
    pub source_group_id: Option<String>,
}

/// A host's jobs that were sent but not started, oldest first, with what to run.
pub fn undelivered_for_host(
    conn: &Connection,
    host_id: &str,
) -> rusqlite::Result<Vec<Undelivered>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, params, source_group_id FROM jobs WHERE host_id = ?1 AND status IN ('queued', 'dispatched') ORDER BY queued_seq",
    )?;
    let rows = stmt.query_map([host_id], |r| {
        Ok(Undelivered {
            id: r.get(0)?,
            kind: r.get(1)?,
            params: r.get(2)?,
            source_group_id: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Whether the host ever had a job of this kind.
pub fn host_has_kind(conn: &Connection, host_id: &str, kind: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM jobs WHERE host_id = ?1 AND kind = ?2)")?
        .query_row(params![host_id, kind], |r| r.get(0))
}

/// When the host's last successful backup finished.
pub fn last_success(conn: &Connection, host_id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT max(finished_at) FROM jobs WHERE host_id = ?1 AND kind = 'backup'
           AND status IN ('succeeded', 'succeeded_with_warnings')",
    )?
    .query_row([host_id], |r| r.get(0))
}

/// When a schedule's last job was queued, if any since `since` (RFC 3339).
pub fn schedule_ran_since(
    conn: &Connection,
    host_id: &str,
    schedule_id: &str,
    since: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM jobs WHERE host_id = ?1 AND schedule_id = ?2 AND queued_at >= ?3)",
    )?
    .query_row(params![host_id, schedule_id, since], |r| r.get(0))
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredLine {
    /// Position in the job's log, from 0.
    pub idx: i64,
    /// When.
    pub at: String,
    /// Stream.
    pub stream: String,
    /// Text.
    pub text: String,
}

/// A job's log, from `from` on.
pub fn logs(conn: &Connection, job_id: &str, from: i64) -> rusqlite::Result<Vec<StoredLine>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, at, stream, text FROM job_logs WHERE job_id = ?1 AND idx >= ?2 ORDER BY idx",
    )?;
    let rows = stmt.query_map(params![job_id, from], |r| {
        Ok(StoredLine {
            idx: r.get(0)?,
            at: r.get(1)?,
            stream: r.get(2)?,
            text: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Number of stored log lines of a job.
pub fn log_count(conn: &Connection, job_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce((SELECT log_lines FROM jobs WHERE id = ?1), 0)")?
        .query_row([job_id], |r| r.get(0))
}

/// The state one job's decisions need.
pub fn load_state(conn: &Connection, job_id: &str) -> rusqlite::Result<JobsState> {
    let row = conn
        .prepare_cached("SELECT host_id, kind, status, cancel_requested FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| {
            let kind: String = r.get(1)?;
            let status: String = r.get(2)?;
            Ok(JobState {
                host_id: r.get(0)?,
                kind: serde_json::from_value(Value::String(kind))
                    .unwrap_or(domain::jobs::JobKind::Backup),
                status: serde_json::from_value(Value::String(status)).unwrap_or(JobStatus::Queued),
                cancel_requested: r.get(3)?,
            })
        })
        .optional()?;
    let mut s = JobsState::default();
    if let Some(j) = row {
        s.jobs.insert(job_id.to_string(), j);
    }
    Ok(s)
}

/// A snapshot as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotView {
    /// Id.
    pub id: String,
    /// Short id.
    pub short_id: String,
    /// Time.
    pub time: String,
    /// Paths.
    pub paths: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Host name recorded by restic.
    pub hostname: String,
}

/// A host's snapshots, newest first.
pub fn snapshots(conn: &Connection, host_id: &str) -> rusqlite::Result<Vec<SnapshotView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, short_id, time, paths, tags, hostname FROM snapshots WHERE host_id = ?1 ORDER BY time DESC, id",
    )?;
    let rows = stmt.query_map([host_id], |r| {
        let paths: String = r.get(3)?;
        let tags: String = r.get(4)?;
        Ok(SnapshotView {
            id: r.get(0)?,
            short_id: r.get(1)?,
            time: r.get(2)?,
            paths: serde_json::from_str(&paths).unwrap_or_default(),
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            hostname: r.get(5)?,
        })
    })?;
    rows.collect()
}
