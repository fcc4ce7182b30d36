//! Alerts, notification channels and notification deliveries.

use domain::alerts::{AlertKind, AlertState, AlertsState, ChannelKind};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::Projection;

/// Folds alert, channel and notification events.
pub struct AlertsProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id              TEXT PRIMARY KEY,
    host_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    state           TEXT NOT NULL,
    message         TEXT NOT NULL,
    subject         TEXT,
    job_id          TEXT,
    raised_at       TEXT NOT NULL,
    raised_seq      INTEGER NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_reason TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, raised_seq);
CREATE INDEX IF NOT EXISTS alerts_host ON alerts(host_id, state);
CREATE TABLE IF NOT EXISTS channels (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    alert_kinds TEXT NOT NULL,
    has_secret  INTEGER NOT NULL,
    created_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notifications (
    id              TEXT PRIMARY KEY,
    channel_id      TEXT NOT NULL,
    alert_id        TEXT,
    what            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TEXT,
    queued_at       TEXT NOT NULL,
    queued_seq      INTEGER NOT NULL,
    delivered_at    TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS notifications_state ON notifications(state, queued_seq);
";

impl Projection for AlertsProjection {
    fn name(&self) -> &'static str {
        "alerts"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["alerts", "channels", "notifications"]
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        let at = ev.occurred_at.as_str();
        match event {
            Event::AlertRaised(a) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO alerts (id, host_id, kind, severity, state, message, subject, job_id, raised_at, raised_seq)
                     VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    a.alert_id,
                    a.host_id,
                    a.kind.as_str(),
                    a.severity.as_str(),
                    a.message,
                    a.subject,
                    a.job_id,
                    at,
                    ev.seq
                ])?;
            }
            Event::AlertAcknowledged(a) => {
                conn.prepare_cached(
                    "UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?2, acknowledged_by = ?3
                     WHERE id = ?1 AND state = 'open'",
                )?
                .execute(params![a.alert_id, at, ev.actor])?;
            }
            Event::AlertResolved(a) => {
                conn.prepare_cached(
                    "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_reason = ?3
                     WHERE id = ?1 AND state <> 'resolved'",
                )?
                .execute(params![a.alert_id, at, a.reason])?;
            }
            Event::ChannelSaved(c) => {
                conn.prepare_cached(
                    "INSERT INTO channels (id, kind, name, config, alert_kinds, has_secret, created_seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
                       config = excluded.config, alert_kinds = excluded.alert_kinds, has_secret = excluded.has_secret",
                )?
                .execute(params![
                    c.channel_id,
                    c.kind.as_str(),
                    c.name,
                    c.config.to_string(),
                    serde_json::to_string(&c.alert_kinds).unwrap_or_default(),
                    c.has_secret,
                    ev.seq
                ])?;
            }
            Event::ChannelDeleted(c) => {
                conn.prepare_cached("DELETE FROM channels WHERE id = ?1")?
                    .execute([&c.channel_id])?;
                conn.prepare_cached(
                    "UPDATE notifications SET state = 'dropped', next_attempt_at = NULL
                     WHERE channel_id = ?1 AND state IN ('queued', 'retrying')",
                )?
                .execute([&c.channel_id])?;
            }
            Event::NotificationQueued(n) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO notifications (id, channel_id, alert_id, what, state, queued_at, queued_seq)
                     VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
                )?
                .execute(params![n.notification_id, n.channel_id, n.alert_id, n.what, at, ev.seq])?;
            }
            Event::NotificationAttempted(n) => {
                let state = if n.ok {
                    "delivered"
                } else if n.next_attempt_at.is_some() {
                    "retrying"
                } else {
                    "failed"
                };
                conn.prepare_cached(
                    "UPDATE notifications SET state = ?2, attempts = ?3, last_error = ?4, next_attempt_at = ?5,
                       delivered_at = CASE WHEN ?6 THEN ?7 ELSE delivered_at END
                     WHERE id = ?1",
                )?
                .execute(params![
                    n.notification_id,
                    state,
                    n.attempt,
                    n.error,
                    n.next_attempt_at,
                    n.ok,
                    at
                ])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// An alert as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Id.
    pub id: String,
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: String,
    /// warning, critical.
    pub severity: String,
    /// open, acknowledged, resolved.
    pub state: String,
    /// When raised.
    pub raised_at: String,
    /// When resolved.
    pub resolved_at: Option<String>,
    /// Words.
    pub message: String,
    /// What within the host.
    pub subject: Option<String>,
    /// Causing job.
    pub job_id: Option<String>,
    /// When acknowledged.
    pub acknowledged_at: Option<String>,
    /// Who acknowledged.
    pub acknowledged_by: Option<String>,
    /// Why resolved.
    pub resolved_reason: Option<String>,
}

const ALERT_COLS: &str = "id, host_id, kind, severity, state, raised_at, resolved_at, message, subject, job_id, acknowledged_at, acknowledged_by, resolved_reason";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: r.get(0)?,
        host_id: r.get(1)?,
        kind: r.get(2)?,
        severity: r.get(3)?,
        state: r.get(4)?,
        raised_at: r.get(5)?,
        resolved_at: r.get(6)?,
        message: r.get(7)?,
        subject: r.get(8)?,
        job_id: r.get(9)?,
        acknowledged_at: r.get(10)?,
        acknowledged_by: r.get(11)?,
        resolved_reason: r.get(12)?,
    })
}

/// Alerts, newest first; `state` filters (open, acknowledged, resolved), `host` too.
pub fn list(
    conn: &Connection,
    state: Option<&str>,
    host: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLS} FROM alerts WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR host_id = ?2)
         ORDER BY raised_seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![state, host, limit as i64], alert_row)?;
    rows.collect()
}

/// One alert.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Alert>> {
    conn.prepare_cached(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?1"))?
        .query_row([id], alert_row)
        .optional()
}

/// Unresolved alerts per host (for dashboard rows).
pub fn unresolved_counts(
    conn: &Connection,
) -> rusqlite::Result<std::collections::HashMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT host_id, count(*) FROM alerts WHERE state <> 'resolved' GROUP BY host_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    rows.collect()
}

/// The state alert decisions need: every unresolved alert (resolved ones never matter).
pub fn load_state(conn: &Connection) -> rusqlite::Result<AlertsState> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host_id, kind, subject, state FROM alerts WHERE state <> 'resolved'",
    )?;
    let rows = stmt.query_map([], |r| {
        let kind: String = r.get(2)?;
        Ok((
            r.get::<_, String>(0)?,
            AlertState {
                host_id: r.get(1)?,
                kind: AlertKind::parse(&kind).unwrap_or(AlertKind::BackupFailed),
                subject: r.get(3)?,
                state: r.get(4)?,
            },
        ))
    })?;
    let mut s = AlertsState::default();
    for row in rows {
        let (id, a) = row?;
        s.alerts.insert(id, a);
    }
    Ok(s)
}

/// The state of one alert (for acknowledge / resolve), including a resolved one.
pub fn load_one(conn: &Connection, id: &str) -> rusqlite::Result<AlertsState> {
    let mut s = AlertsState::default();
    if let Some(a) = get(conn, id)? {
        s.alerts.insert(
            a.id.clone(),
            AlertState {
                host_id: a.host_id,
                kind: AlertKind::parse(&a.kind).unwrap_or(AlertKind::BackupFailed),
                subject: a.subject,
                state: a.state,
            },
        );
    }
    Ok(s)
}

/// A channel as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Id.
    pub id: String,
    /// webhook, ntfy, email.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Settings without secrets.
    pub config: Value,
    /// Kinds it receives (empty: all).
    pub alert_kinds: Vec<String>,
    /// A secret is stored.
    pub has_secret: bool,
}

/// Every channel, oldest first.
pub fn channels(conn: &Connection) -> rusqlite::Result<Vec<Channel>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, name, config, alert_kinds, has_secret FROM channels ORDER BY created_seq",
    )?;
    let rows = stmt.query_map([], |r| {
        let config: String = r.get(3)?;
        let kinds: String = r.get(4)?;
        Ok(Channel {
            id: r.get(0)?,
            kind: r.get(1)?,
            name: r.get(2)?,
            config: serde_json::from_str(&config).unwrap_or(Value::Null),
            alert_kinds: serde_json::from_str(&kinds).unwrap_or_default(),
            has_secret: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// One channel.
pub fn channel(conn: &Connection, id: &str) -> rusqlite::Result<Option<Channel>> {
    Ok(channels(conn)?.into_iter().find(|c| c.id == id))
}

/// The channel kind of a stored name.
pub fn channel_kind(s: &str) -> Option<ChannelKind> {
    match s {
        "webhook" => Some(ChannelKind::Webhook),
        "ntfy" => Some(ChannelKind::Ntfy),
        "email" => Some(ChannelKind::Email),
        _ => None,
    }
}

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Id.
    pub id: String,
    /// Channel.
    pub channel_id: String,
    /// Alert.
    pub alert_id: Option<String>,
    /// raised, resolved, test.
    pub what: String,
    /// queued, retrying, delivered, failed, dropped.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Last failure.
    pub last_error: Option<String>,
    /// Next attempt.
    pub next_attempt_at: Option<String>,
    /// When queued.
    pub queued_at: String,
    /// When delivered.
    pub delivered_at: Option<String>,
}

const NOTE_COLS: &str = "id, channel_id, alert_id, what, state, attempts, last_error, next_attempt_at, queued_at, delivered_at";

fn note_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        alert_id: r.get(2)?,
        what: r.get(3)?,
        state: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        next_attempt_at: r.get(7)?,
        queued_at: r.get(8)?,
        delivered_at: r.get(9)?,
    })
}

/// Notifications waiting to be sent (queued, or retrying and due by `now`), oldest first.
pub fn due_notifications(conn: &Connection, now: &str) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTE_COLS} FROM notifications
         WHERE state = 'queued' OR (state = 'retrying' AND next_attempt_at <= ?1)
         ORDER BY queued_seq"
    ))?;
    let rows = stmt.query_map([now], note_row)?;
    rows.collect()
}

/// Recent notifications, newest first.
pub fn recent_notifications(
    conn: &Connection,
    limit: usize,
) -> rusqlite::Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {NOTE_COLS} FROM notifications ORDER BY queued_seq DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], note_row)?;
    rows.collect()
}

/// The earliest time a retrying notification is due.
pub fn next_retry_at(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT min(next_attempt_at) FROM notifications WHERE state = 'retrying'")?
        .query_row([], |r| r.get(0))
}
