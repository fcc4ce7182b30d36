//! The hosts read model: one row per enrolled host, its connection state and versions.

use domain::hosts::{AgentFacts, HostState, HostStatus, HostsState};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::Projection;

/// Folds host events into the `hosts` table. The `hostname` is the one the operator chose
/// when minting the enrolment token; what the agent reports lives in the events.
pub struct HostsProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hosts (
    id                          TEXT PRIMARY KEY,
    hostname                    TEXT NOT NULL,
    status                      TEXT NOT NULL,
    os                          TEXT NOT NULL,
    arch                        TEXT NOT NULL,
    agent_version               TEXT NOT NULL,
    restic_version              TEXT NOT NULL,
    protocol_version            INTEGER NOT NULL DEFAULT 0,
    enrolled_at                 TEXT NOT NULL,
    last_seen_at                TEXT,
    credentials_version         INTEGER NOT NULL DEFAULT 0,
    applied_credentials_version INTEGER NOT NULL DEFAULT 0,
    tags                        TEXT NOT NULL DEFAULT '[]',
    snapshot_count              INTEGER NOT NULL DEFAULT 0,
    repo_size_bytes             INTEGER NOT NULL DEFAULT 0,
    last_backup_at              TEXT,
    last_backup_status          TEXT,
    open_alerts                 INTEGER NOT NULL DEFAULT 0,
    deleted_at                  TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hosts_hostname ON hosts(hostname);
";

impl Projection for HostsProjection {
    fn name(&self) -> &'static str {
        "hosts"
    }
    fn version(&self) -> u32 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        &["hosts"]
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        let at = ev.occurred_at.as_str();
        match event {
            Event::HostEnrolled(h) => {
                conn.prepare_cached(
                    "INSERT INTO hosts (id, hostname, status, os, arch, agent_version, restic_version, enrolled_at)
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![h.host_id, h.hostname, h.os, h.arch, h.agent_version, h.restic_version, at])?;
            }
            Event::HostCameOnline(h) => {
                let f = &h.facts;
                conn.prepare_cached(
                    "UPDATE hosts SET status = 'online', os = ?2, arch = ?3,
                       agent_version = ?4, restic_version = ?5, protocol_version = ?6, last_seen_at = ?7
                     WHERE id = ?1",
                )?
                .execute(params![
                    h.host_id,
                    f.os,
                    f.arch,
                    f.agent_version,
                    f.restic_version,
                    f.protocol_version,
                    at
                ])?;
            }
            Event::HostWentOffline(h) => {
                conn.prepare_cached("UPDATE hosts SET status = 'offline' WHERE id = ?1")?
                    .execute([&h.host_id])?;
            }
            Event::RepoCredentialsChanged(c) => {
                conn.prepare_cached("UPDATE hosts SET credentials_version = ?2 WHERE id = ?1")?
                    .execute(params![c.host_id, c.version])?;
            }
            Event::RepoCredentialsApplied(c) => {
                conn.prepare_cached(
                    "UPDATE hosts SET applied_credentials_version = max(applied_credentials_version, ?2) WHERE id = ?1",
                )?
                .execute(params![c.host_id, c.version])?;
            }
            Event::JobFinished(f) if f.kind == domain::jobs::JobKind::Backup => {
                conn.prepare_cached(
                    "UPDATE hosts SET last_backup_at = ?2, last_backup_status = ?3 WHERE id = ?1",
                )?
                .execute(params![f.host_id, at, f.status.as_str()])?;
            }
            Event::SnapshotsReported(r) => {
                conn.prepare_cached(
                    "UPDATE hosts SET snapshot_count = ?2, repo_size_bytes = coalesce(?3, repo_size_bytes) WHERE id = ?1",
                )?
                .execute(params![r.host_id, r.snapshots.len() as i64, r.repo_size_bytes.map(|s| s as i64)])?;
            }
            Event::AlertRaised(a) => {
                conn.prepare_cached(
                    "UPDATE hosts SET open_alerts = open_alerts + 1 WHERE id = ?1",
                )?
                .execute([&a.host_id])?;
            }
            // Decisions resolve only unresolved alerts, so each resolve undoes one raise.
            Event::AlertResolved(a) => {
                conn.prepare_cached(
                    "UPDATE hosts SET open_alerts = max(open_alerts - 1, 0) WHERE id = ?1",
                )?
                .execute([&a.host_id])?;
            }
            Event::HostDeleted(d) => {
                conn.prepare_cached(
                    "UPDATE hosts SET status = 'offline', deleted_at = ?2 WHERE id = ?1",
                )?
                .execute(params![d.host_id, at])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The last backup of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastBackup {
    /// When it finished.
    pub at: String,
    /// Its outcome.
    pub status: String,
}

/// A host as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// `online`, `offline` or `pending`.
    pub status: String,
    /// OS.
    pub os: String,
    /// Architecture.
    pub arch: String,
    /// Agent build.
    pub agent_version: String,
    /// restic version.
    pub restic_version: String,
    /// Last connection transition (the server overlays live heartbeats).
    pub last_seen_at: Option<String>,
    /// Last backup, if any.
    pub last_backup: Option<LastBackup>,
    /// Snapshots in the repository.
    pub snapshot_count: i64,
    /// Repository size.
    pub repo_size_bytes: i64,
    /// Open alerts.
    pub open_alerts: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// When it enrolled.
    pub enrolled_at: String,
    /// Credentials version on the server.
    pub credentials_version: i64,
    /// Credentials version the agent confirmed.
    pub applied_credentials_version: i64,
}

const HOST_COLS: &str =
    "id, hostname, status, os, arch, agent_version, restic_version, last_seen_at, \
    last_backup_at, last_backup_status, snapshot_count, repo_size_bytes, open_alerts, tags, \
    enrolled_at, credentials_version, applied_credentials_version";

fn host_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    let last_at: Option<String> = r.get(8)?;
    let last_status: Option<String> = r.get(9)?;
    let tags: String = r.get(13)?;
    Ok(Host {
        id: r.get(0)?,
        hostname: r.get(1)?,
        status: r.get(2)?,
        os: r.get(3)?,
        arch: r.get(4)?,
        agent_version: r.get(5)?,
        restic_version: r.get(6)?,
        last_seen_at: r.get(7)?,
        last_backup: match (last_at, last_status) {
            (Some(at), Some(status)) => Some(LastBackup { at, status }),
            _ => None,
        },
        snapshot_count: r.get(10)?,
        repo_size_bytes: r.get(11)?,
        open_alerts: r.get(12)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        enrolled_at: r.get(14)?,
        credentials_version: r.get(15)?,
        applied_credentials_version: r.get(16)?,
    })
}

/// Live (not deleted) hosts by hostname.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Host>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {HOST_COLS} FROM hosts WHERE deleted_at IS NULL ORDER BY hostname, id"
    ))?;
    let rows = stmt.query_map([], host_from_row)?;
    rows.collect()
}

/// One live host.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Host>> {
    conn.prepare_cached(&format!(
        "SELECT {HOST_COLS} FROM hosts WHERE id = ?1 AND deleted_at IS NULL"
    ))?
    .query_row([id], host_from_row)
    .optional()
}

/// Fleet totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct FleetSummary {
    /// Live hosts.
    pub hosts: i64,
    /// Online.
    pub online: i64,
    /// Offline (pending hosts count as neither).
    pub offline: i64,
    /// Hosts whose last backup failed.
    pub failing: i64,
    /// Snapshots across the fleet.
    pub snapshots: i64,
    /// Repository bytes across the fleet.
    pub repo_size_bytes: i64,
}

/// Fleet totals over live hosts.
pub fn summary(conn: &Connection) -> rusqlite::Result<FleetSummary> {
    conn.query_row(
        "SELECT count(*),
                coalesce(sum(status = 'online'), 0),
                coalesce(sum(status = 'offline'), 0),
                coalesce(sum(last_backup_status = 'failed'), 0),
                coalesce(sum(snapshot_count), 0),
                coalesce(sum(repo_size_bytes), 0)
         FROM hosts WHERE deleted_at IS NULL",
        [],
        |r| {
            Ok(FleetSummary {
                hosts: r.get(0)?,
                online: r.get(1)?,
                offline: r.get(2)?,
                failing: r.get(3)?,
                snapshots: r.get(4)?,
                repo_size_bytes: r.get(5)?,
            })
        },
    )
}

/// Ids of live hosts the model shows as online.
pub fn online_ids(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT id FROM hosts WHERE status = 'online' AND deleted_at IS NULL")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// The decision state of one host (deleted ones included), or an empty state.
pub fn load_state(conn: &Connection, id: &str) -> rusqlite::Result<HostsState> {
    let row = conn
        .prepare_cached(
            "SELECT status, hostname, os, arch, agent_version, restic_version, protocol_version,
                    credentials_version, applied_credentials_version, deleted_at IS NOT NULL
             FROM hosts WHERE id = ?1",
        )?
        .query_row([id], |r| {
            let status: String = r.get(0)?;
            Ok(HostState {
                status: HostStatus::parse(&status),
                facts: AgentFacts {
                    hostname: r.get(1)?,
                    os: r.get(2)?,
                    arch: r.get(3)?,
                    agent_version: r.get(4)?,
                    restic_version: r.get(5)?,
                    protocol_version: r.get(6)?,
                },
                credentials_version: r.get::<_, i64>(7)? as u64,
                applied_version: r.get::<_, i64>(8)? as u64,
                deleted: r.get(9)?,
            })
        })
        .optional()?;
    let mut state = HostsState::default();
    if let Some(h) = row {
        state.hosts.insert(id.to_string(), h);
    }
    Ok(state)
}
