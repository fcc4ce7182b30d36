//! What a host backs up and when: source groups, schedules, repository maintenance,
//! bandwidth caps and hooks — the host's *backup configuration*.
//!
//! Every change is an event on the host's stream. Changes that the agent needs for its
//! local scheduler (groups, schedules, bandwidth, hooks) bump the host's *schedule version*;
//! the server pushes the resolved set and the agent acknowledges the version it applied,
//! which is how the UI can say "agent in sync" or "agent at vN".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::event::Event;
use crate::jobs::JobKind;

/// restic's `--keep-*` rules. Each is optional; a policy with none keeps everything (and
/// `forget` refuses to run with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RetentionPolicy {
    /// `--keep-last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// `--keep-hourly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    /// `--keep-daily`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    /// `--keep-weekly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    /// `--keep-monthly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    /// `--keep-yearly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// `--keep-within`, a restic duration such as `7d` or `1y2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

impl RetentionPolicy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.keep_rules().is_empty() && self.keep_within.is_none()
    }

    fn keep_rules(&self) -> Vec<(&'static str, u32)> {
        [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// restic's `forget` flags for this policy.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .keep_rules()
            .into_iter()
            .map(|(k, v)| format!("--keep-{k}={v}"))
            .collect();
        if let Some(w) = &self.keep_within {
            a.push(format!("--keep-within={w}"));
        }
        a
    }

    /// One line for people: "last 3 · daily 7 · within 30d".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .keep_rules()
            .into_iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if let Some(w) = &self.keep_within {
            parts.push(format!("within {w}"));
        }
        if parts.is_empty() {
            "keep everything".into()
        } else {
            parts.join(" · ")
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), DomainError> {
        for (k, v) in self.keep_rules() {
            if v == 0 || v > 100_000 {
                return Err(DomainError::invalid(
                    "retention_policy",
                    format!("keep_{k} must be between 1 and 100000 (leave it empty to not use it)"),
                ));
            }
        }
        if let Some(w) = &self.keep_within {
            if !valid_restic_duration(w) {
                return Err(DomainError::invalid(
                    "retention_policy",
                    "keep_within must be a restic duration such as 30d, 12h or 1y6m (units y, m, d, h)",
                ));
            }
        }
        Ok(())
    }
}

/// restic's duration: one or more `<number><unit>` with units y, m, d, h.
fn valid_restic_duration(s: &str) -> bool {
    if s.is_empty() || s.len() > 32 {
        return false;
    }
    let mut digits = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
        } else if matches!(c, 'y' | 'm' | 'd' | 'h') && digits > 0 {
            digits = 0;
        } else {
            return false;
        }
    }
    digits == 0
}

/// What to back up together: its name is also the snapshot tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroup {
    /// Id.
    pub id: String,
    /// Unique per host; the snapshot tag.
    pub name: String,
    /// Paths to back up.
    pub includes: Vec<String>,
    /// Exclude patterns.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Which snapshots `forget` keeps.
    #[serde(default)]
    pub retention_policy: RetentionPolicy,
    /// How often a run that could not happen (host offline) or failed is tried again.
    #[serde(default)]
    pub retry_max: u32,
    /// Wait before a retry, multiplied by the attempt number.
    #[serde(default)]
    pub retry_backoff_seconds: u64,
}

impl SourceGroup {
    /// The group every new host starts with.
    pub fn default_for_enrolment(id: String, includes: Vec<String>) -> Self {
        SourceGroup {
            id,
            name: "default".into(),
            includes,
            excludes: vec![],
            retention_policy: RetentionPolicy {
                keep_daily: Some(7),
                keep_weekly: Some(4),
                keep_monthly: Some(6),
                ..Default::default()
            },
            retry_max: 3,
            retry_backoff_seconds: 300,
        }
    }

    /// Checks what an operator typed (the id is the server's).
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_group_name(&self.name)?;
        if self.includes.is_empty() {
            return Err(DomainError::invalid(
                "includes",
                "needs at least one path to back up",
            ));
        }
        let bad = |s: &String| s.is_empty() || s.len() > 4096 || s.chars().any(char::is_control);
        if self.includes.len() > 1000 || self.includes.iter().any(bad) {
            return Err(DomainError::invalid(
                "includes",
                "each path must be one non-empty line",
            ));
        }
        if self.excludes.len() > 1000 || self.excludes.iter().any(bad) {
            return Err(DomainError::invalid(
                "excludes",
                "each pattern must be one non-empty line",
            ));
        }
        self.retention_policy.validate()?;
        if self.retry_max > 100 {
            return Err(DomainError::invalid(
                "retry_max",
                "must be between 0 and 100",
            ));
        }
        if self.retry_backoff_seconds > 7 * 86_400 {
            return Err(DomainError::invalid(
                "retry_backoff_seconds",
                "must be at most 604800 (a week)",
            ));
        }
        Ok(())
    }
}

/// A group name: it becomes a restic tag, so 1–64 of letters, digits, `.`, `-`, `_`.
pub fn validate_group_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() || name.len() > 64 {
        return Err(DomainError::invalid("name", "must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(DomainError::invalid(
            "name",
            "is also the snapshot tag: letters, digits, '.', '-' and '_' only",
        ));
    }
    Ok(())
}

/// When to back up which groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Id.
    pub id: String,
    /// Five-field cron expression (minute hour day-of-month month day-of-week), UTC.
    pub cron: String,
    /// Paused schedules do not fire.
    pub enabled: bool,
    /// Groups of the same host.
    pub source_group_ids: Vec<String>,
}

/// Repository maintenance cadences, driven by the server's ticker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// How often `forget` runs (per group, with the group's retention).
    pub forget_cadence: String,
    /// How often `prune` runs.
    pub prune_cadence: String,
    /// How often `check` runs.
    pub check_cadence: String,
    /// `check --read-data-subset N%` (0 reads no pack data).
    pub check_subset_pct: u8,
    /// Off: the ticker leaves this host alone.
    pub enabled: bool,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            forget_cadence: "daily".into(),
            prune_cadence: "weekly".into(),
            check_cadence: "weekly".into(),
            check_subset_pct: 5,
            enabled: true,
        }
    }
}

impl Maintenance {
    /// Checks what an operator typed.
    pub fn validate(&self) -> Result<(), DomainError> {
        for (field, v) in [
            ("forget_cadence", &self.forget_cadence),
            ("prune_cadence", &self.prune_cadence),
            ("check_cadence", &self.check_cadence),
        ] {
            parse_cadence(v).map_err(|m| DomainError::invalid(field, m))?;
        }
        if self.check_subset_pct > 100 {
            return Err(DomainError::invalid(
                "check_subset_pct",
                "must be between 0 and 100",
            ));
        }
        Ok(())
    }

    /// The cadence of a kind, in seconds; `None` when off (or not a maintenance kind).
    pub fn period(&self, kind: JobKind) -> Option<u64> {
        let c = match kind {
            JobKind::Forget => &self.forget_cadence,
            JobKind::Prune => &self.prune_cadence,
            JobKind::Check => &self.check_cadence,
            _ => return None,
        };
        parse_cadence(c).ok().flatten()
    }
}

/// A cadence: `off`, `hourly`, `daily`, `weekly`, `monthly` (30 days), or `<n><unit>` with
/// unit s, m, h, d, w (at least 60 seconds). `Ok(None)` is off.
pub fn parse_cadence(s: &str) -> Result<Option<u64>, String> {
    let s = s.trim();
    let named = match s {
        "off" | "" => return Ok(None),
        "hourly" => Some(3600),
        "daily" => Some(86_400),
        "weekly" => Some(7 * 86_400),
        "monthly" => Some(30 * 86_400),
        _ => None,
    };
    if let Some(n) = named {
        return Ok(Some(n));
    }
    let err = || {
        "use off, hourly, daily, weekly, monthly or a number with a unit (s, m, h, d, w), e.g. 12h"
            .to_string()
    };
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    let secs = n.checked_mul(mult).ok_or_else(err)?;
    if !(60..=366 * 86_400).contains(&secs) {
        return Err("must be between 60 seconds and a year".into());
    }
    Ok(Some(secs))
}

/// Host-wide bandwidth caps for every restic run (KiB/s; `None` is unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Bandwidth {
    /// `--limit-upload`.
    pub up_kbps: Option<u64>,
    /// `--limit-download`.
    pub down_kbps: Option<u64>,
}

impl Bandwidth {
    /// Checks what an operator typed.
    pub fn validate(&self) -> Result<(), DomainError> {
        for (f, v) in [("up_kbps", self.up_kbps), ("down_kbps", self.down_kbps)] {
            if v.is_some_and(|v| v == 0 || v > 100_000_000) {
                return Err(DomainError::invalid(
                    f,
                    "must be between 1 and 100000000 KiB/s (empty for unlimited)",
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Cron

/// Turns a five-field cron expression into the `cron` crate's form (seconds first, days of
/// week by name so that `0`/`7` both mean Sunday as in crontab(5)).
pub fn to_cron_crate(expr: &str) -> Result<String, DomainError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let err = |m: &str| DomainError::invalid("cron", m.to_string());
    if fields.len() != 5 {
        return Err(err(
            "needs five fields: minute hour day-of-month month day-of-week (e.g. 0 3 * * *)",
        ));
    }
    const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut dow_parts = Vec::new();
    for part in fields[4].split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let day = |t: &str| -> Result<String, DomainError> {
            match t.parse::<usize>() {
                Ok(n) if n <= 7 => Ok(DAYS[n].to_string()),
                Ok(_) => Err(err(
                    "day-of-week numbers run from 0 to 7 (0 and 7 are Sunday)",
                )),
                Err(_) => Ok(t.to_string()),
            }
        };
        let mapped = match range.split_once('-') {
            // crontab's `5-7` (Fri–Sun) wraps past Saturday; the cron crate wants `Fri-Sat,Sun`.
            Some((a, "7")) if a != "0" => format!("{}-Sat,Sun", day(a)?),
            Some((a, b)) => format!("{}-{}", day(a)?, day(b)?),
            None => day(range)?,
        };
        dow_parts.push(match step {
            Some(s) => format!("{mapped}/{s}"),
            None => mapped,
        });
    }
    Ok(format!(
        "0 {} {} {} {} {}",
        fields[0],
        fields[1],
        fields[2],
        fields[3],
        dow_parts.join(",")
    ))
}

/// Parses a five-field cron expression.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, DomainError> {
    let s = to_cron_crate(expr)?;
    s.parse::<cron::Schedule>()
        .map_err(|e| DomainError::invalid("cron", format!("is not a valid cron expression: {e}")))
}

/// The first time strictly after `after_unix` (seconds) at which the expression fires.
pub fn next_fire(expr: &str, after_unix: i64) -> Option<i64> {
    let s = parse_cron(expr).ok()?;
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp(after_unix, 0)?;
    s.after(&after).next().map(|t| t.timestamp())
}

/// A cron expression in words, for the common shapes (the UI's quick-pick chips).
pub fn describe_cron(expr: &str) -> String {
    let f: Vec<&str> = expr.split_whitespace().collect();
    if f.len() != 5 {
        return expr.to_string();
    }
    let num = |s: &str| s.parse::<u32>().ok();
    let at = |h: &str, m: &str| match (num(h), num(m)) {
        (Some(h), Some(m)) => Some(format!("{h:02}:{m:02} UTC")),
        _ => None,
    };
    const DAYS: [&str; 8] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    match (f[0], f[1], f[2], f[3], f[4]) {
        ("*", "*", "*", "*", "*") => "every minute".into(),
        (m, "*", "*", "*", "*") if m.starts_with("*/") => {
            format!("every {} minutes", &m[2..])
        }
        (m, "*", "*", "*", "*") if num(m).is_some() => format!("every hour at :{m:0>2}"),
        (m, h, "*", "*", "*") if h.starts_with("*/") && num(m).is_some() => {
            format!("every {} hours at :{m:0>2}", &h[2..])
        }
        (m, h, "*", "*", "*") => at(h, m)
            .map(|t| format!("every day at {t}"))
            .unwrap_or_else(|| expr.into()),
        (m, h, "*", "*", "1-5") => at(h, m)
            .map(|t| format!("weekdays at {t}"))
            .unwrap_or_else(|| expr.into()),
        (m, h, "*", "*", d) if num(d).is_some_and(|d| d <= 7) => at(h, m)
            .map(|t| format!("every {} at {t}", DAYS[num(d).unwrap_or(0) as usize]))
            .unwrap_or_else(|| expr.into()),
        (m, h, dom, "*", "*") if num(dom).is_some() => at(h, m)
            .map(|t| format!("monthly on day {dom} at {t}"))
            .unwrap_or_else(|| expr.into()),
        _ => format!("cron {expr} (UTC)"),
    }
}

/// The quick-pick chips of the schedule editor: (expression, words).
pub fn cron_presets() -> Vec<(&'static str, String)> {
    [
        "0 * * * *",
        "0 3 * * *",
        "30 1 * * 1-5",
        "0 4 * * 0",
        "0 5 1 * *",
    ]
    .into_iter()
    .map(|e| (e, describe_cron(e)))
    .collect()
}

// ---------------------------------------------------------------------------------------
// Events

/// `SourceGroupSaved`: a group was created or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroupSaved {
    /// Host.
    pub host_id: String,
    /// The whole group.
    pub group: SourceGroup,
    /// The host's schedule version after this change.
    pub schedule_version: u64,
}

/// `SourceGroupDeleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceGroupDeleted {
    /// Host.
    pub host_id: String,
    /// Group.
    pub group_id: String,
    /// Its name, for the audit trail.
    pub name: String,
    /// The host's schedule version after this change.
    pub schedule_version: u64,
}

/// `ScheduleSaved`: a schedule was created or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSaved {
    /// Host.
    pub host_id: String,
    /// The whole schedule.
    pub schedule: Schedule,
    /// The host's schedule version after this change.
    pub schedule_version: u64,
}

/// `ScheduleDeleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleDeleted {
    /// Host.
    pub host_id: String,
    /// Schedule.
    pub schedule_id: String,
    /// The host's schedule version after this change.
    pub schedule_version: u64,
}

/// `ScheduleSetApplied`: the agent armed schedule version N.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSetApplied {
    /// Host.
    pub host_id: String,
    /// The version armed.
    pub version: u64,
}

/// `MaintenanceChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceChanged {
    /// Host.
    pub host_id: String,
    /// The new settings.
    pub maintenance: Maintenance,
}

/// `BandwidthChanged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandwidthChanged {
    /// Host.
    pub host_id: String,
    /// The new caps.
    pub bandwidth: Bandwidth,
    /// The host's schedule version after this change (local runs use the caps too).
    pub schedule_version: u64,
}

/// `HooksChanged`: a group's (or the host's default) pre/post hooks were set. The scripts
/// are in the vault (`hooks_ref`); the event says only which exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HooksChanged {
    /// Host.
    pub host_id: String,
    /// The group, or `None` for the host-wide defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// A pre-hook is set.
    pub has_pre: bool,
    /// A post-hook is set.
    pub has_post: bool,
    /// Vault row.
    pub hooks_ref: String,
    /// The host's schedule version after this change.
    pub schedule_version: u64,
}

/// `AdminCredentialsChanged`: the host's full-access credential for forget and prune (kept
/// in its own vault slot) was set or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCredentialsChanged {
    /// Host.
    pub host_id: String,
    /// Vault row, `None` when removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_ref: Option<String>,
}

/// `PendingRunQueued`: a maintenance run fell due while its host was offline; it waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRunQueued {
    /// Run.
    pub run_id: String,
    /// Host.
    pub host_id: String,
    /// What to run.
    pub kind: JobKind,
    /// For forget: the group whose retention applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Attempts allowed before it is dropped.
    pub retry_max: u32,
    /// Wait before attempt n+1, times n.
    pub retry_backoff_seconds: u64,
    /// Why it waits.
    pub reason: String,
}

/// `PendingRunAttempted`: a pending run was sent as a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRunAttempted {
    /// Run.
    pub run_id: String,
    /// Host.
    pub host_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The job.
    pub job_id: String,
}

/// `PendingRunRetryScheduled`: an attempt failed; the next waits until `not_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRunRetryScheduled {
    /// Run.
    pub run_id: String,
    /// Host.
    pub host_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// RFC 3339.
    pub not_before: String,
}

/// `PendingRunCompleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRunCompleted {
    /// Run.
    pub run_id: String,
    /// Host.
    pub host_id: String,
    /// The job that did it.
    pub job_id: String,
}

/// `PendingRunDropped`: given up (retries used up, host deleted, group gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRunDropped {
    /// Run.
    pub run_id: String,
    /// Host.
    pub host_id: String,
    /// Why.
    pub reason: String,
}

// ---------------------------------------------------------------------------------------
// State and decisions

/// A host's backup configuration as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostConfig {
    /// Groups by id.
    pub groups: BTreeMap<String, SourceGroup>,
    /// Schedules by id.
    pub schedules: BTreeMap<String, Schedule>,
    /// Bumped by every change the agent must know.
    pub schedule_version: u64,
    /// What the agent confirmed.
    pub applied_version: u64,
    /// Maintenance settings.
    pub maintenance: Maintenance,
    /// Caps.
    pub bandwidth: Bandwidth,
    /// Hooks set, by group id (`None` = host default): (has_pre, has_post).
    pub hooks: BTreeMap<Option<String>, (bool, bool)>,
    /// Admin credential vault row.
    pub admin_credentials_ref: Option<String>,
}

impl HostConfig {
    /// Applies one event of this host.
    pub fn evolve(&mut self, e: &Event) {
        match e {
            Event::SourceGroupSaved(x) => {
                self.groups.insert(x.group.id.clone(), x.group.clone());
                self.schedule_version = x.schedule_version;
            }
            Event::SourceGroupDeleted(x) => {
                self.groups.remove(&x.group_id);
                self.hooks.remove(&Some(x.group_id.clone()));
                self.schedule_version = x.schedule_version;
            }
            Event::ScheduleSaved(x) => {
                self.schedules
                    .insert(x.schedule.id.clone(), x.schedule.clone());
                self.schedule_version = x.schedule_version;
            }
            Event::ScheduleDeleted(x) => {
                self.schedules.remove(&x.schedule_id);
                self.schedule_version = x.schedule_version;
            }
            Event::ScheduleSetApplied(x) => {
                self.applied_version = self.applied_version.max(x.version);
            }
            Event::MaintenanceChanged(x) => self.maintenance = x.maintenance.clone(),
            Event::BandwidthChanged(x) => {
                self.bandwidth = x.bandwidth;
                self.schedule_version = x.schedule_version;
            }
            Event::HooksChanged(x) => {
                if x.has_pre || x.has_post {
                    self.hooks
                        .insert(x.group_id.clone(), (x.has_pre, x.has_post));
                } else {
                    self.hooks.remove(&x.group_id);
                }
                self.schedule_version = x.schedule_version;
            }
            Event::AdminCredentialsChanged(x) => {
                self.admin_credentials_ref = x.credentials_ref.clone();
            }
            _ => {}
        }
    }

    /// The schedules that use a group.
    pub fn schedules_using(&self, group_id: &str) -> Vec<String> {
        self.schedules
            .values()
            .filter(|s| s.source_group_ids.iter().any(|g| g == group_id))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The host's shortest schedule interval, in seconds (for the stale-backup alert):
    /// the gap between the next two fires of each enabled schedule, smallest first.
    pub fn expected_interval(&self, now_unix: i64) -> Option<i64> {
        self.schedules
            .values()
            .filter(|s| s.enabled)
            .filter_map(|s| {
                let a = next_fire(&s.cron, now_unix)?;
                let b = next_fire(&s.cron, a)?;
                Some(b - a)
            })
            .min()
    }
}

/// A change to a host's backup configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCommand {
    /// Create (`create`) or replace a group.
    SaveGroup {
        /// The group (id chosen by the server for a new one).
        group: SourceGroup,
        /// New, rather than an edit.
        create: bool,
    },
    /// Delete a group.
    DeleteGroup {
        /// Group.
        group_id: String,
    },
    /// Create or replace a schedule.
    SaveSchedule {
        /// The schedule.
        schedule: Schedule,
        /// New, rather than an edit.
        create: bool,
    },
    /// Delete a schedule.
    DeleteSchedule {
        /// Schedule.
        schedule_id: String,
    },
    /// The agent armed a version.
    RecordApplied {
        /// Version.
        version: u64,
    },
    /// New maintenance settings.
    SetMaintenance(Maintenance),
    /// New caps.
    SetBandwidth(Bandwidth),
    /// Hooks set (scripts already in the vault).
    SetHooks {
        /// Group, or `None` for the host default.
        group_id: Option<String>,
        /// Pre-hook set.
        has_pre: bool,
        /// Post-hook set.
        has_post: bool,
        /// Vault row.
        hooks_ref: String,
    },
    /// Admin credential set (`Some`, already in the vault) or removed.
    SetAdminCredentials(Option<String>),
}

/// Decides a configuration change for `host_id`.
pub fn decide(
    cfg: &HostConfig,
    host_id: &str,
    cmd: &ConfigCommand,
) -> Result<Vec<Event>, DomainError> {
    let host_id = host_id.to_string();
    let next = cfg.schedule_version + 1;
    Ok(match cmd {
        ConfigCommand::SaveGroup { group, create } => {
            group.validate()?;
            match (cfg.groups.get(&group.id), create) {
                (Some(_), true) => return Err(DomainError::invalid("id", "is already in use")),
                (None, false) => return Err(DomainError::UnknownSourceGroup),
                (Some(old), false) if old == group => return Ok(vec![]),
                _ => {}
            }
            if cfg
                .groups
                .values()
                .any(|g| g.name == group.name && g.id != group.id)
            {
                return Err(DomainError::invalid(
                    "name",
                    format!("this host already has a group called {:?}", group.name),
                ));
            }
            vec![SourceGroupSaved {
                host_id,
                group: group.clone(),
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::DeleteGroup { group_id } => {
            let g = cfg
                .groups
                .get(group_id)
                .ok_or(DomainError::UnknownSourceGroup)?;
            let users = cfg.schedules_using(group_id);
            if !users.is_empty() {
                return Err(DomainError::GroupInUse(users));
            }
            if cfg.groups.len() == 1 {
                return Err(DomainError::LastSourceGroup);
            }
            vec![SourceGroupDeleted {
                host_id,
                group_id: group_id.clone(),
                name: g.name.clone(),
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::SaveSchedule { schedule, create } => {
            parse_cron(&schedule.cron)?;
            if schedule.source_group_ids.is_empty() {
                return Err(DomainError::invalid(
                    "source_group_ids",
                    "pick at least one source group",
                ));
            }
            if let Some(g) = schedule
                .source_group_ids
                .iter()
                .find(|g| !cfg.groups.contains_key(*g))
            {
                return Err(DomainError::invalid(
                    "source_group_ids",
                    format!("{g} is not a source group of this host"),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if !schedule.source_group_ids.iter().all(|g| seen.insert(g)) {
                return Err(DomainError::invalid(
                    "source_group_ids",
                    "lists a group twice",
                ));
            }
            match (cfg.schedules.get(&schedule.id), create) {
                (Some(_), true) => return Err(DomainError::invalid("id", "is already in use")),
                (None, false) => return Err(DomainError::UnknownSchedule),
                (Some(old), false) if old == schedule => return Ok(vec![]),
                _ => {}
            }
            let mut schedule = schedule.clone();
            schedule.cron = schedule
                .cron
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            vec![ScheduleSaved {
                host_id,
                schedule,
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::DeleteSchedule { schedule_id } => {
            if !cfg.schedules.contains_key(schedule_id) {
                return Err(DomainError::UnknownSchedule);
            }
            vec![ScheduleDeleted {
                host_id,
                schedule_id: schedule_id.clone(),
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::RecordApplied { version } => {
            if *version <= cfg.applied_version || *version > cfg.schedule_version {
                return Ok(vec![]);
            }
            vec![ScheduleSetApplied {
                host_id,
                version: *version,
            }
            .into()]
        }
        ConfigCommand::SetMaintenance(m) => {
            m.validate()?;
            if &cfg.maintenance == m {
                return Ok(vec![]);
            }
            vec![MaintenanceChanged {
                host_id,
                maintenance: m.clone(),
            }
            .into()]
        }
        ConfigCommand::SetBandwidth(b) => {
            b.validate()?;
            if &cfg.bandwidth == b {
                return Ok(vec![]);
            }
            vec![BandwidthChanged {
                host_id,
                bandwidth: *b,
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::SetHooks {
            group_id,
            has_pre,
            has_post,
            hooks_ref,
        } => {
            if let Some(g) = group_id {
                if !cfg.groups.contains_key(g) {
                    return Err(DomainError::UnknownSourceGroup);
                }
            }
            vec![HooksChanged {
                host_id,
                group_id: group_id.clone(),
                has_pre: *has_pre,
                has_post: *has_post,
                hooks_ref: hooks_ref.clone(),
                schedule_version: next,
            }
            .into()]
        }
        ConfigCommand::SetAdminCredentials(r) => vec![AdminCredentialsChanged {
            host_id,
            credentials_ref: r.clone(),
        }
        .into()],
    })
}

// ---------------------------------------------------------------------------------------
// Maintenance windows

/// A maintenance kind's current window for a host: windows are `period` long and offset by
/// a per-host amount, so a fleet's daily forgets do not all start at midnight.
/// Returns (window index, window start in unix seconds).
pub fn maintenance_window(host_id: &str, period: u64, now_unix: i64) -> (i64, i64) {
    let period = period.max(1) as i64;
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in host_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let offset = (h % period as u64) as i64;
    let idx = (now_unix - offset).div_euclid(period);
    (idx, idx * period + offset)
}

/// Which maintenance kinds are due for a host now: enabled, a cadence set, and no run of
/// that kind queued since the current window started. `last_queued` gives, per kind, when
/// the last job of that kind was queued (unix seconds).
pub fn due_maintenance(
    host_id: &str,
    m: &Maintenance,
    now_unix: i64,
    last_queued: &BTreeMap<JobKind, i64>,
) -> Vec<(JobKind, i64)> {
    if !m.enabled {
        return vec![];
    }
    [JobKind::Forget, JobKind::Prune, JobKind::Check]
        .into_iter()
        .filter_map(|k| {
            let period = m.period(k)?;
            let (idx, start) = maintenance_window(host_id, period, now_unix);
            match last_queued.get(&k) {
                Some(t) if *t >= start => None,
                _ => Some((k, idx)),
            }
        })
        .collect()
}

/// When attempt `attempts + 1` of a pending run may start, `None` when it is given up.
pub fn next_attempt_after(
    attempts: u32,
    retry_max: u32,
    backoff_secs: u64,
    failed_at_unix: i64,
) -> Option<i64> {
    // retry_max counts retries: the first attempt plus retry_max more.
    if attempts > retry_max {
        return None;
    }
    Some(failed_at_unix + (backoff_secs as i64).saturating_mul(i64::from(attempts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str) -> SourceGroup {
        SourceGroup::default_for_enrolment(id.into(), vec!["/etc".into()]).tap_name(name)
    }

    trait TapName {
        fn tap_name(self, n: &str) -> Self;
    }
    impl TapName for SourceGroup {
        fn tap_name(mut self, n: &str) -> Self {
            self.name = n.into();
            self
        }
    }

    fn fold(events: &[Event]) -> HostConfig {
        let mut c = HostConfig::default();
        for e in events {
            c.evolve(e);
        }
        c
    }

    #[test]
    fn cron_five_fields_and_sundays() {
        assert_eq!(to_cron_crate("0 3 * * *").unwrap(), "0 0 3 * * *");
        assert_eq!(to_cron_crate("0 3 * * 0").unwrap(), "0 0 3 * * Sun");
        assert_eq!(to_cron_crate("0 3 * * 7").unwrap(), "0 0 3 * * Sun");
        assert_eq!(to_cron_crate("0 3 * * 1-5").unwrap(), "0 0 3 * * Mon-Fri");
        assert_eq!(
            to_cron_crate("0 3 * * 5-7").unwrap(),
            "0 0 3 * * Fri-Sat,Sun"
        );
        assert!(parse_cron("* * * *").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("0 3 * * 9").is_err());
        for e in [
            "*/5 * * * *",
            "0 3 * * 1-5",
            "15 2 1 * *",
            "0 4 * * 5-7",
            "0 0 * * mon",
        ] {
            assert!(parse_cron(e).is_ok(), "{e}");
        }
        // 2026-11-29 is a Sunday.
        let sun_0000 = 1_795_910_400;
        assert_eq!(next_fire("0 3 * * 0", sun_0000), Some(sun_0000 + 3 * 3600));
        assert_eq!(next_fire("0 3 * * 1", sun_0000), Some(sun_0000 + 27 * 3600));
        assert_eq!(next_fire("* * * * *", sun_0000), Some(sun_0000 + 60));
    }

    #[test]
    fn cron_in_words() {
        assert_eq!(describe_cron("* * * * *"), "every minute");
        assert_eq!(describe_cron("*/15 * * * *"), "every 15 minutes");
        assert_eq!(describe_cron("0 3 * * *"), "every day at 03:00 UTC");
        assert_eq!(describe_cron("30 1 * * 1-5"), "weekdays at 01:30 UTC");
        assert_eq!(describe_cron("0 4 * * 0"), "every Sunday at 04:00 UTC");
        assert_eq!(describe_cron("0 5 1 * *"), "monthly on day 1 at 05:00 UTC");
        assert_eq!(describe_cron("7 * * * *"), "every hour at :07");
    }

    #[test]
    fn groups_names_are_unique_and_the_last_one_stays() {
        let g1 = group("g1", "default");
        let mut cfg = fold(
            &decide(
                &HostConfig::default(),
                "h",
                &ConfigCommand::SaveGroup {
                    group: g1.clone(),
                    create: true,
                },
            )
            .unwrap(),
        );
        assert_eq!(cfg.schedule_version, 1);
        let dup = group("g2", "default");
        assert!(matches!(
            decide(
                &cfg,
                "h",
                &ConfigCommand::SaveGroup {
                    group: dup,
                    create: true
                }
            ),
            Err(DomainError::Invalid { field: "name", .. })
        ));
        assert_eq!(
            decide(
                &cfg,
                "h",
                &ConfigCommand::DeleteGroup {
                    group_id: "g1".into()
                }
            ),
            Err(DomainError::LastSourceGroup)
        );
        let g2 = group("g2", "db");
        for e in decide(
            &cfg,
            "h",
            &ConfigCommand::SaveGroup {
                group: g2,
                create: true,
            },
        )
        .unwrap()
        {
            cfg.evolve(&e);
        }
        let s = Schedule {
            id: "s1".into(),
            cron: "0  3 * * *".into(),
            enabled: true,
            source_group_ids: vec!["g1".into()],
        };
        let ev = decide(
            &cfg,
            "h",
            &ConfigCommand::SaveSchedule {
                schedule: s,
                create: true,
            },
        )
        .unwrap();
        for e in &ev {
            cfg.evolve(e);
        }
        assert_eq!(cfg.schedules["s1"].cron, "0 3 * * *");
        assert_eq!(cfg.schedule_version, 3);
        assert_eq!(
            decide(
                &cfg,
                "h",
                &ConfigCommand::DeleteGroup {
                    group_id: "g1".into()
                }
            ),
            Err(DomainError::GroupInUse(vec!["s1".into()]))
        );
        assert!(decide(
            &cfg,
            "h",
            &ConfigCommand::DeleteGroup {
                group_id: "g2".into()
            }
        )
        .is_ok());
        // Saving the same thing twice is no change.
        let same = cfg.groups["g1"].clone();
        assert!(decide(
            &cfg,
            "h",
            &ConfigCommand::SaveGroup {
                group: same,
                create: false
            }
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn schedules_need_groups_of_this_host() {
        let cfg = fold(
            &decide(
                &HostConfig::default(),
                "h",
                &ConfigCommand::SaveGroup {
                    group: group("g1", "a"),
                    create: true,
                },
            )
            .unwrap(),
        );
        let mk = |ids: Vec<&str>, cron: &str| ConfigCommand::SaveSchedule {
            schedule: Schedule {
                id: "s".into(),
                cron: cron.into(),
                enabled: true,
                source_group_ids: ids.into_iter().map(String::from).collect(),
            },
            create: true,
        };
        assert!(matches!(
            decide(&cfg, "h", &mk(vec![], "* * * * *")),
            Err(DomainError::Invalid {
                field: "source_group_ids",
                ..
            })
        ));
        assert!(matches!(
            decide(&cfg, "h", &mk(vec!["other"], "* * * * *")),
            Err(DomainError::Invalid {
                field: "source_group_ids",
                ..
            })
        ));
        assert!(matches!(
            decide(&cfg, "h", &mk(vec!["g1"], "every day")),
            Err(DomainError::Invalid { field: "cron", .. })
        ));
        assert!(decide(&cfg, "h", &mk(vec!["g1"], "*/5 * * * *")).is_ok());
    }

    #[test]
    fn applied_versions_only_move_forward() {
        let mut cfg = fold(
            &decide(
                &HostConfig::default(),
                "h",
                &ConfigCommand::SaveGroup {
                    group: group("g1", "a"),
                    create: true,
                },
            )
            .unwrap(),
        );
        let e = decide(&cfg, "h", &ConfigCommand::RecordApplied { version: 1 }).unwrap();
        assert_eq!(e.len(), 1);
        cfg.evolve(&e[0]);
        assert!(
            decide(&cfg, "h", &ConfigCommand::RecordApplied { version: 1 })
                .unwrap()
                .is_empty()
        );
        assert!(
            decide(&cfg, "h", &ConfigCommand::RecordApplied { version: 9 })
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn retention_and_cadences() {
        let p = RetentionPolicy {
            keep_last: Some(3),
            keep_within: Some("30d".into()),
            ..Default::default()
        };
        assert_eq!(p.to_args(), vec!["--keep-last=3", "--keep-within=30d"]);
        assert!(p.validate().is_ok());
        assert!(RetentionPolicy {
            keep_within: Some("30 days".into()),
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(RetentionPolicy {
            keep_daily: Some(0),
            ..Default::default()
        }
        .validate()
        .is_err());
        assert_eq!(parse_cadence("daily"), Ok(Some(86_400)));
        assert_eq!(parse_cadence("12h"), Ok(Some(43_200)));
        assert_eq!(parse_cadence("90s"), Ok(Some(90)));
        assert_eq!(parse_cadence("off"), Ok(None));
        assert!(parse_cadence("10s").is_err());
        assert!(parse_cadence("sometimes").is_err());
    }

    #[test]
    fn maintenance_runs_once_per_window() {
        let m = Maintenance {
            forget_cadence: "off".into(),
            prune_cadence: "off".into(),
            check_cadence: "1h".into(),
            ..Default::default()
        };
        let now = 1_795_910_400 + 1234;
        let due = due_maintenance("h1", &m, now, &BTreeMap::new());
        assert_eq!(due.len(), 1);
        let (idx, start) = maintenance_window("h1", 3600, now);
        assert_eq!(due[0], (JobKind::Check, idx));
        assert!(start <= now && now < start + 3600);
        let mut last = BTreeMap::new();
        last.insert(JobKind::Check, start);
        assert!(due_maintenance("h1", &m, now, &last).is_empty());
        // The next window is due again.
        assert_eq!(due_maintenance("h1", &m, start + 3600, &last)[0].1, idx + 1);
        assert!(due_maintenance(
            "h1",
            &Maintenance {
                enabled: false,
                ..m
            },
            now,
            &BTreeMap::new()
        )
        .is_empty());
    }

    #[test]
    fn retries_back_off_and_give_up() {
        assert_eq!(next_attempt_after(1, 2, 60, 1000), Some(1060));
        assert_eq!(next_attempt_after(2, 2, 60, 1000), Some(1120));
        assert_eq!(next_attempt_after(3, 2, 60, 1000), None);
        assert_eq!(next_attempt_after(1, 0, 60, 1000), None);
    }
}
