//! "Why was this deleted?": for every snapshot a forget removed, the retention policy
//! version that removed it and who last changed that policy, with the events to link to.

use domain::jobs::{JobKind, JobStatus};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::Projection;

/// Folds policy changes, forget jobs and their results.
pub struct HistoryProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_versions (
    host_id    TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    changed_at TEXT NOT NULL,
    actor      TEXT NOT NULL,
    retention  TEXT NOT NULL,
    PRIMARY KEY (host_id, group_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forget_jobs (
    job_id     TEXT PRIMARY KEY,
    host_id    TEXT NOT NULL,
    group_id   TEXT,
    policy_seq INTEGER,
    retention  TEXT NOT NULL,
    actor      TEXT NOT NULL,
    queued_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot_removals (
    host_id     TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    removed_at  TEXT NOT NULL,
    removed_seq INTEGER NOT NULL,
    PRIMARY KEY (host_id, snapshot_id)
) WITHOUT ROWID;
";

impl Projection for HistoryProjection {
    fn name(&self) -> &'static str {
        "history"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["policy_versions", "forget_jobs", "snapshot_removals"]
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        match event {
            Event::SourceGroupSaved(g) => {
                let retention =
                    serde_json::to_string(&g.group.retention_policy).unwrap_or_default();
                // A new version only when the policy itself changed.
                let last: Option<String> = conn
                    .prepare_cached(
                        "SELECT retention FROM policy_versions WHERE host_id = ?1 AND group_id = ?2 ORDER BY seq DESC LIMIT 1",
                    )?
                    .query_row(params![g.host_id, g.group.id], |r| r.get(0))
                    .optional()?;
                if last.as_deref() != Some(retention.as_str()) {
                    conn.prepare_cached(
                        "INSERT INTO policy_versions (host_id, group_id, seq, changed_at, actor, retention) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![g.host_id, g.group.id, ev.seq, ev.occurred_at, ev.actor, retention])?;
                }
            }
            Event::JobQueued(q) if q.kind == JobKind::Forget => {
                let policy_seq: Option<i64> = match &q.source_group_id {
                    Some(gid) => conn
                        .prepare_cached(
                            "SELECT max(seq) FROM policy_versions WHERE host_id = ?1 AND group_id = ?2",
                        )?
                        .query_row(params![q.host_id, gid], |r| r.get(0))?,
                    None => None,
                };
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO forget_jobs (job_id, host_id, group_id, policy_seq, retention, actor, queued_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    q.job_id,
                    q.host_id,
                    q.source_group_id,
                    policy_seq,
                    serde_json::to_string(&q.params.retention).unwrap_or_default(),
                    ev.actor,
                    ev.seq
                ])?;
            }
            Event::JobFinished(f)
                if f.kind == JobKind::Forget
                    && matches!(
                        f.status,
                        JobStatus::Succeeded | JobStatus::SucceededWithWarnings
                    ) =>
            {
                let removed = f
                    .stats
                    .as_ref()
                    .and_then(|s| s.get("removed"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut ins = conn.prepare_cached(
                    "INSERT OR IGNORE INTO snapshot_removals (host_id, snapshot_id, job_id, removed_at, removed_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for id in removed.iter().filter_map(Value::as_str) {
                    ins.execute(params![f.host_id, id, f.job_id, ev.occurred_at, ev.seq])?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a snapshot is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// Snapshot (full id).
    pub snapshot_id: String,
    /// The forget job that removed it.
    pub job_id: String,
    /// When.
    pub removed_at: String,
    /// The event that recorded it.
    pub removed_seq: i64,
    /// Who started the forget (`system:maintenance`, `user:<id>`).
    pub forget_actor: String,
    /// The group whose policy applied.
    pub group_id: Option<String>,
    /// The policy the forget ran with.
    pub retention: Value,
    /// The event that set that policy version.
    pub policy_seq: Option<i64>,
    /// When it was set.
    pub policy_changed_at: Option<String>,
    /// Who set it.
    pub policy_actor: Option<String>,
}

/// The snapshots forget removed from a host, newest removal first.
pub fn removals(conn: &Connection, host_id: &str) -> rusqlite::Result<Vec<Removal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.snapshot_id, r.job_id, r.removed_at, r.removed_seq, f.actor, f.group_id, f.retention,
                f.policy_seq, p.changed_at, p.actor
         FROM snapshot_removals r
         LEFT JOIN forget_jobs f ON f.job_id = r.job_id
         LEFT JOIN policy_versions p ON p.host_id = f.host_id AND p.group_id = f.group_id AND p.seq = f.policy_seq
         WHERE r.host_id = ?1
         ORDER BY r.removed_seq DESC, r.snapshot_id",
    )?;
    let rows = stmt.query_map([host_id], |r| {
        let retention: Option<String> = r.get(6)?;
        Ok(Removal {
            snapshot_id: r.get(0)?,
            job_id: r.get(1)?,
            removed_at: r.get(2)?,
            removed_seq: r.get(3)?,
            forget_actor: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            group_id: r.get(5)?,
            retention: retention
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null),
            policy_seq: r.get(7)?,
            policy_changed_at: r.get(8)?,
            policy_actor: r.get(9)?,
        })
    })?;
    rows.collect()
}
