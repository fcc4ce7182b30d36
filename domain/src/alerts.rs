//! Alerts and notification channels.
//!
//! Alerts are raised and resolved by the server's alert evaluator from what happens (a failed
//! backup, a host going offline) and from the clock (no successful backup within the
//! schedules' interval, a schedule that should have fired and did not). Operators acknowledge
//! them. Every step is an event; the alerts read model is a fold of them. The decisions here
//! are pure: the evaluator hands in what it saw and the ids to use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::event::Event;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// The last backup failed.
    BackupFailed,
    /// No successful backup within the host's expected interval.
    BackupStale,
    /// A schedule should have fired and did not.
    ScheduleMissed,
    /// The agent is not connected.
    AgentOffline,
    /// `restic check` found problems.
    CheckFailed,
    /// The repository is locked.
    RepoLocked,
}

impl AlertKind {
    /// Every kind.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::BackupFailed,
        AlertKind::BackupStale,
        AlertKind::ScheduleMissed,
        AlertKind::AgentOffline,
        AlertKind::CheckFailed,
        AlertKind::RepoLocked,
    ];

    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::BackupFailed => "backup_failed",
            AlertKind::BackupStale => "backup_stale",
            AlertKind::ScheduleMissed => "schedule_missed",
            AlertKind::AgentOffline => "agent_offline",
            AlertKind::CheckFailed => "check_failed",
            AlertKind::RepoLocked => "repo_locked",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How bad.
    pub fn severity(&self) -> Severity {
        match self {
            AlertKind::BackupFailed | AlertKind::CheckFailed => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Look at it soon.
    Warning,
    /// Backups are at risk now.
    Critical,
}

impl Severity {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// `AlertRaised`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRaised {
    /// Alert.
    pub alert_id: String,
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// What happened, in words.
    pub message: String,
    /// What within the host it is about (a schedule id for missed runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The job that caused it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// `AlertAcknowledged`: an operator has seen it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAcknowledged {
    /// Alert.
    pub alert_id: String,
    /// Host.
    pub host_id: String,
}

/// `AlertResolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertResolved {
    /// Alert.
    pub alert_id: String,
    /// Host.
    pub host_id: String,
    /// Why, in words.
    pub reason: String,
}

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// JSON POST with an HMAC-SHA256 signature header.
    Webhook,
    /// An ntfy topic.
    Ntfy,
    /// SMTP email.
    Email,
}

impl ChannelKind {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Email => "email",
        }
    }
}

/// `ChannelSaved`: a notification channel was created or changed. `config` holds only
/// non-secret settings; the secret (webhook key, ntfy token, SMTP password) is in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSaved {
    /// Channel.
    pub channel_id: String,
    /// Kind.
    pub kind: ChannelKind,
    /// Name.
    pub name: String,
    /// Settings without secrets.
    pub config: Value,
    /// Which alert kinds it receives (empty: all).
    pub alert_kinds: Vec<AlertKind>,
    /// A secret is stored in the vault.
    pub has_secret: bool,
}

/// `ChannelDeleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDeleted {
    /// Channel.
    pub channel_id: String,
}

/// `NotificationQueued`: a notification will be sent on a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationQueued {
    /// Notification.
    pub notification_id: String,
    /// Channel.
    pub channel_id: String,
    /// The alert it is about (`None` for a test send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// `raised`, `resolved` or `test`.
    pub what: String,
}

/// `NotificationAttempted`: one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationAttempted {
    /// Notification.
    pub notification_id: String,
    /// Channel.
    pub channel_id: String,
    /// 1 for the first.
    pub attempt: u32,
    /// Delivered.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt may go (RFC 3339), `None` when done or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// Attempts before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 6;

/// Seconds to wait after failed attempt `n` (1-based): 5, 15, 45, 135, 405.
pub fn backoff_after(attempt: u32) -> Option<i64> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    Some(5 * 3i64.pow(attempt.saturating_sub(1).min(10)))
}

// ---------------------------------------------------------------------------------------

/// One alert as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: AlertKind,
    /// Subject.
    pub subject: Option<String>,
    /// `open`, `acknowledged`, `resolved`.
    pub state: String,
}

/// Alerts by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsState {
    /// By id.
    pub alerts: BTreeMap<String, AlertState>,
}

impl AlertsState {
    /// Applies one event.
    pub fn evolve(&mut self, e: &Event) {
        match e {
            Event::AlertRaised(a) => {
                self.alerts.insert(
                    a.alert_id.clone(),
                    AlertState {
                        host_id: a.host_id.clone(),
                        kind: a.kind,
                        subject: a.subject.clone(),
                        state: "open".into(),
                    },
                );
            }
            Event::AlertAcknowledged(a) => {
                if let Some(s) = self.alerts.get_mut(&a.alert_id) {
                    if s.state == "open" {
                        s.state = "acknowledged".into();
                    }
                }
            }
            Event::AlertResolved(a) => {
                if let Some(s) = self.alerts.get_mut(&a.alert_id) {
                    s.state = "resolved".into();
                }
            }
            _ => {}
        }
    }

    /// The unresolved alert of a host, kind and subject.
    pub fn unresolved(
        &self,
        host_id: &str,
        kind: AlertKind,
        subject: Option<&str>,
    ) -> Option<&str> {
        self.alerts
            .iter()
            .find(|(_, a)| {
                a.host_id == host_id
                    && a.kind == kind
                    && a.subject.as_deref() == subject
                    && a.state != "resolved"
            })
            .map(|(id, _)| id.as_str())
    }
}

/// What the evaluator saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A condition holds: raise unless already raised.
    Bad {
        /// Host.
        host_id: String,
        /// Kind.
        kind: AlertKind,
        /// Subject.
        subject: Option<String>,
        /// Words.
        message: String,
        /// Causing job.
        job_id: Option<String>,
    },
    /// A condition cleared: resolve what is unresolved.
    Good {
        /// Host.
        host_id: String,
        /// Kind.
        kind: AlertKind,
        /// Subject (`None` resolves every subject of the kind).
        subject: Option<String>,
        /// Words.
        reason: String,
    },
}

/// Decides what an observation means. `new_id` names a new alert.
pub fn observe(state: &AlertsState, obs: &Observation, new_id: &str) -> Vec<Event> {
    match obs {
        Observation::Bad {
            host_id,
            kind,
            subject,
            message,
            job_id,
        } => {
            if state
                .unresolved(host_id, *kind, subject.as_deref())
                .is_some()
            {
                return vec![];
            }
            vec![AlertRaised {
                alert_id: new_id.to_string(),
                host_id: host_id.clone(),
                kind: *kind,
                severity: kind.severity(),
                message: message.clone(),
                subject: subject.clone(),
                job_id: job_id.clone(),
            }
            .into()]
        }
        Observation::Good {
            host_id,
            kind,
            subject,
            reason,
        } => state
            .alerts
            .iter()
            .filter(|(_, a)| {
                &a.host_id == host_id
                    && a.kind == *kind
                    && a.state != "resolved"
                    && (subject.is_none() || a.subject == *subject)
            })
            .map(|(id, _)| {
                AlertResolved {
                    alert_id: id.clone(),
                    host_id: host_id.clone(),
                    reason: reason.clone(),
                }
                .into()
            })
            .collect(),
    }
}

/// An operator acknowledges.
pub fn acknowledge(state: &AlertsState, alert_id: &str) -> Result<Vec<Event>, DomainError> {
    let a = state
        .alerts
        .get(alert_id)
        .ok_or(DomainError::UnknownAlert)?;
    Ok(match a.state.as_str() {
        "open" => vec![AlertAcknowledged {
            alert_id: alert_id.to_string(),
            host_id: a.host_id.clone(),
        }
        .into()],
        _ => vec![],
    })
}

/// An operator resolves by hand.
pub fn resolve(
    state: &AlertsState,
    alert_id: &str,
    reason: &str,
) -> Result<Vec<Event>, DomainError> {
    let a = state
        .alerts
        .get(alert_id)
        .ok_or(DomainError::UnknownAlert)?;
    Ok(if a.state == "resolved" {
        vec![]
    } else {
        vec![AlertResolved {
            alert_id: alert_id.to_string(),
            host_id: a.host_id.clone(),
            reason: reason.to_string(),
        }
        .into()]
    })
}

/// Whether a host with schedules is stale: the last success (or, before any, the time
/// the host's first schedule appeared) is older than twice the expected interval plus a
/// grace period.
pub fn is_stale(
    last_success_unix: Option<i64>,
    since_unix: i64,
    interval: i64,
    grace: i64,
    now: i64,
) -> bool {
    let base = last_success_unix.map_or(since_unix, |l| l.max(since_unix));
    now - base > interval.saturating_mul(2) + grace
}

/// The last time strictly before `before_unix` at which a five-field cron expression fired.
pub fn prev_fire(expr: &str, before_unix: i64) -> Option<i64> {
    let s = crate::sources::parse_cron(expr).ok()?;
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp(before_unix, 0)?;
    s.after(&t).next_back().map(|t| t.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(kind: AlertKind) -> Observation {
        Observation::Bad {
            host_id: "h".into(),
            kind,
            subject: None,
            message: "m".into(),
            job_id: None,
        }
    }

    #[test]
    fn one_unresolved_alert_per_condition() {
        let mut s = AlertsState::default();
        let e = observe(&s, &bad(AlertKind::BackupFailed), "a1");
        assert_eq!(e.len(), 1);
        s.evolve(&e[0]);
        assert!(observe(&s, &bad(AlertKind::BackupFailed), "a2").is_empty());
        // Acknowledged is still unresolved.
        for e in acknowledge(&s, "a1").unwrap() {
            s.evolve(&e);
        }
        assert!(observe(&s, &bad(AlertKind::BackupFailed), "a2").is_empty());
        let good = Observation::Good {
            host_id: "h".into(),
            kind: AlertKind::BackupFailed,
            subject: None,
            reason: "ok".into(),
        };
        let e = observe(&s, &good, "x");
        assert_eq!(e.len(), 1);
        s.evolve(&e[0]);
        assert!(observe(&s, &good, "x").is_empty());
        assert_eq!(observe(&s, &bad(AlertKind::BackupFailed), "a3").len(), 1);
        assert_eq!(acknowledge(&s, "nope"), Err(DomainError::UnknownAlert));
    }

    #[test]
    fn backoff_grows_then_gives_up() {
        assert_eq!(backoff_after(1), Some(5));
        assert_eq!(backoff_after(2), Some(15));
        assert_eq!(backoff_after(MAX_ATTEMPTS), None);
    }

    #[test]
    fn previous_fires() {
        let sun_0000 = 1_795_910_400;
        assert_eq!(prev_fire("0 3 * * *", sun_0000), Some(sun_0000 - 21 * 3600));
        assert_eq!(prev_fire("* * * * *", sun_0000 + 30), Some(sun_0000));
    }

    #[test]
    fn staleness() {
        assert!(!is_stale(Some(1000), 0, 100, 10, 1200));
        assert!(is_stale(Some(1000), 0, 100, 10, 1211));
        assert!(!is_stale(None, 1000, 100, 10, 1200));
        assert!(is_stale(None, 1000, 100, 10, 1300));
    }
}
