//! Jobs: one run of restic on a host (init, backup, …), from queued to finished.
//!
//! The life of a job is a small state machine, and every step is an event:
//! `JobQueued` → `JobDispatched` → `JobStarted` → (`JobProgressed`, `JobLogged`)* →
//! `JobFinished` (succeeded, succeeded_with_warnings, failed, cancelled) — or `JobLost` when
//! its agent stayed away too long. A result that arrives after `JobLost` is still recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::DomainError;
use crate::event::Event;

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `restic init`.
    Init,
    /// `restic backup`.
    Backup,
    /// `restic forget`.
    Forget,
    /// `restic prune`.
    Prune,
    /// `restic check`.
    Check,
    /// `restic unlock`.
    Unlock,
    /// `restic restore`.
    Restore,
}

impl JobKind {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Init => "init",
            JobKind::Backup => "backup",
            JobKind::Forget => "forget",
            JobKind::Prune => "prune",
            JobKind::Check => "check",
            JobKind::Unlock => "unlock",
            JobKind::Restore => "restore",
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting to be sent.
    Queued,
    /// Sent to the agent, not started yet.
    Dispatched,
    /// restic is running.
    Running,
    /// Done.
    Succeeded,
    /// Done, but some files could not be read (restic exit 3).
    SucceededWithWarnings,
    /// restic failed.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Its agent went away and did not come back in time.
    Lost,
}

impl JobStatus {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Dispatched => "dispatched",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::SucceededWithWarnings => "succeeded_with_warnings",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Lost => "lost",
        }
    }

    /// Whether the job is over (a late result may still follow `lost`).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded
                | JobStatus::SucceededWithWarnings
                | JobStatus::Failed
                | JobStatus::Cancelled
                | JobStatus::Lost
        )
    }
}

/// What a restore does with a file that already exists at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it (restic before 0.17 knows nothing else).
    #[default]
    Always,
    /// Replace it when its content differs (restic 0.17+).
    IfChanged,
    /// Replace it when the snapshot's copy is newer (restic 0.17+).
    IfNewer,
    /// Leave it (restic 0.17+).
    Never,
}

impl Overwrite {
    /// restic's (and the API's) name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Overwrite::Always => "always",
            Overwrite::IfChanged => "if-changed",
            Overwrite::IfNewer => "if-newer",
            Overwrite::Never => "never",
        }
    }

    /// Parses the API's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(Overwrite::Always),
            "if-changed" => Some(Overwrite::IfChanged),
            "if-newer" => Some(Overwrite::IfNewer),
            "never" => Some(Overwrite::Never),
            _ => None,
        }
    }
}

/// Where a snapshot path lands when restored under `target` (restic restores the full path
/// below the target; `/` puts it back where it was).
pub fn restore_landing(target: &str, path: &str) -> String {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if target == "/" || target.is_empty() {
        path
    } else {
        format!("{}{path}", target.trim_end_matches('/'))
    }
}

/// The paths to hand restic for a restore: duplicates and paths inside another picked
/// directory dropped (restoring the directory restores them), in the order first picked.
pub fn minimal_restore_paths<S: AsRef<str>>(paths: &[S]) -> Vec<String> {
    let norm: Vec<String> = paths
        .iter()
        .map(|p| {
            let p = p.as_ref().trim();
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                "/".to_string()
            } else {
                p.to_string()
            }
        })
        .collect();
    let covered =
        |p: &str, by: &str| by == "/" || p.strip_prefix(by).is_some_and(|r| r.starts_with('/'));
    let mut out: Vec<String> = Vec::new();
    for p in &norm {
        if out.iter().any(|o| o == p || covered(p, o)) {
            continue;
        }
        if norm.iter().any(|o| o != p && covered(p, o)) {
            continue;
        }
        out.push(p.clone());
    }
    out
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobParams {
    /// backup: the paths to back up; restore: the paths to restore (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Exclude patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Snapshot tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Upload limit, KiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_upload_kbps: Option<u64>,
    /// Download limit, KiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_download_kbps: Option<u64>,
    /// forget: which snapshots to keep (scoped to `tags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::sources::RetentionPolicy>,
    /// check: `--read-data-subset N%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_subset_pct: Option<u8>,
    /// restore: the snapshot (full id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// restore: the directory to restore into; `/` puts files back where they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// restore: what to do with files that exist already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrite: Option<Overwrite>,
    /// restore: the host whose repository holds the snapshot, when it is not the host the
    /// job runs on (a cross-host restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host_id: Option<String>,
}

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An operator (Run-now, the API).
    #[default]
    Manual,
    /// The agent's local scheduler.
    Schedule,
    /// The server's maintenance ticker.
    Maintenance,
    /// A pending run drained on reconnect.
    Pending,
    /// Automatic set-up (the first `init`).
    Auto,
}

impl Trigger {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Maintenance => "maintenance",
            Trigger::Pending => "pending",
            Trigger::Auto => "auto",
        }
    }

    fn is_manual(&self) -> bool {
        *self == Trigger::Manual
    }
}

/// `JobQueued`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQueued {
    /// Job.
    pub job_id: String,
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: JobKind,
    /// What to run.
    pub params: JobParams,
    /// What started it.
    #[serde(default, skip_serializing_if = "Trigger::is_manual")]
    pub trigger: Trigger,
    /// The source group it runs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group_id: Option<String>,
    /// The schedule that fired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The pending run it attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_run_id: Option<String>,
}

macro_rules! job_ref {
    ($($(#[$doc:meta])* $name:ident),*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// Job.
            pub job_id: String,
            /// Host.
            pub host_id: String,
        }
    )*};
}

job_ref! {
    /// `JobDispatched`: sent to the agent.
    JobDispatched,
    /// `JobStarted`: restic is running.
    JobStarted,
    /// `JobCancelRequested`: someone asked to stop it.
    JobCancelRequested
}

/// restic's progress, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Progress {
    /// 0–100.
    pub percent: f64,
    /// Bytes processed.
    pub bytes_done: u64,
    /// Bytes to process.
    pub total_bytes: u64,
    /// Files processed.
    pub files_done: u64,
    /// Files to process.
    pub total_files: u64,
    /// restic's estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_remaining: Option<u64>,
}

impl Eq for Progress {}

/// `JobProgressed` (appended at a bounded rate; browsers get every update live).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgressed {
    /// Job.
    pub job_id: String,
    /// Where restic is.
    pub progress: Progress,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the agent saw it (RFC 3339).
    pub at: String,
    /// `stdout`, `stderr` or `agent`.
    pub stream: String,
    /// The text.
    pub text: String,
}

/// `JobLogged`: a batch of log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogged {
    /// Job.
    pub job_id: String,
    /// The lines, in order.
    pub lines: Vec<LogLine>,
}

/// `JobFinished`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFinished {
    /// Job.
    pub job_id: String,
    /// Host.
    pub host_id: String,
    /// What ran.
    pub kind: JobKind,
    /// Outcome: succeeded, succeeded_with_warnings, failed or cancelled.
    pub status: JobStatus,
    /// restic's summary, as it printed it.
    #[serde(default)]
    pub stats: Option<Value>,
    /// A readable error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot made, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Items restic could not read (exit 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why it failed, for machines: `repo_locked`, `repo_missing`, `wrong_password`,
    /// `check_failed`, `hook_failed`, `restic_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// `JobLost`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLost {
    /// Job.
    pub job_id: String,
    /// Host.
    pub host_id: String,
    /// Why.
    pub reason: String,
}

/// One snapshot as restic lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Full id.
    pub id: String,
    /// Short id.
    pub short_id: String,
    /// When it was taken.
    pub time: String,
    /// Paths backed up.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Host name recorded by restic.
    #[serde(default)]
    pub hostname: String,
}

/// `SnapshotsReported`: the host's whole snapshot list (authoritative: it replaces the old
/// one) and the repository size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsReported {
    /// Host.
    pub host_id: String,
    /// Every snapshot in the repository.
    pub snapshots: Vec<Snapshot>,
    /// `restic stats --mode raw-data` total size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_size_bytes: Option<u64>,
    /// `restic stats` (restore-size) total: what the snapshots hold before deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size_bytes: Option<u64>,
}

/// One job as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// Host.
    pub host_id: String,
    /// Kind.
    pub kind: JobKind,
    /// Status.
    pub status: JobStatus,
    /// Cancel asked for.
    pub cancel_requested: bool,
}

/// Jobs by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsState {
    /// By id.
    pub jobs: BTreeMap<String, JobState>,
}

impl JobsState {
    /// Applies one event.
    pub fn evolve(&mut self, e: &Event) {
        match e {
            Event::JobQueued(q) => {
                self.jobs.insert(
                    q.job_id.clone(),
                    JobState {
                        host_id: q.host_id.clone(),
                        kind: q.kind,
                        status: JobStatus::Queued,
                        cancel_requested: false,
                    },
                );
            }
            Event::JobDispatched(r) => self.set(&r.job_id, JobStatus::Dispatched),
            Event::JobStarted(r) => self.set(&r.job_id, JobStatus::Running),
            Event::JobCancelRequested(r) => {
                if let Some(j) = self.jobs.get_mut(&r.job_id) {
                    j.cancel_requested = true;
                }
            }
            Event::JobFinished(f) => {
                if let Some(j) = self.jobs.get_mut(&f.job_id) {
                    j.status = f.status;
                }
            }
            Event::JobLost(l) => self.set(&l.job_id, JobStatus::Lost),
            _ => {}
        }
    }

    fn set(&mut self, id: &str, status: JobStatus) {
        if let Some(j) = self.jobs.get_mut(id) {
            if !j.status.is_final() {
                j.status = status;
            }
        }
    }
}

/// What the agent says about a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReport {
    /// restic started.
    Started,
    /// restic ended.
    Finished(JobFinished),
}

/// Decides what an agent's report about a job means. Duplicates (a resent outbox message)
/// and reports from the wrong host produce nothing.
pub fn decide_report(
    state: &JobsState,
    host_id: &str,
    job_id: &str,
    report: &JobReport,
) -> Result<Vec<Event>, DomainError> {
    let job = state.jobs.get(job_id).ok_or(DomainError::UnknownJob)?;
    if job.host_id != host_id {
        return Err(DomainError::UnknownJob);
    }
    match report {
        JobReport::Started => Ok(match job.status {
            JobStatus::Queued | JobStatus::Dispatched => vec![Event::JobStarted(JobStarted {
                job_id: job_id.to_string(),
                host_id: host_id.to_string(),
            })],
            _ => vec![],
        }),
        JobReport::Finished(f) => {
            if job.status.is_final() && job.status != JobStatus::Lost {
                return Ok(vec![]);
            }
            // The agent does not say what kind of job it ran; the job does.
            let mut f = f.clone();
            f.kind = job.kind;
            Ok(vec![Event::JobFinished(f)])
        }
    }
}

/// Decides a cancel request.
pub fn decide_cancel(state: &JobsState, job_id: &str) -> Result<Vec<Event>, DomainError> {
    let job = state.jobs.get(job_id).ok_or(DomainError::UnknownJob)?;
    if job.status.is_final() {
        return Err(DomainError::JobAlreadyFinished);
    }
    if job.cancel_requested {
        return Ok(vec![]);
    }
    Ok(vec![Event::JobCancelRequested(JobCancelRequested {
        job_id: job_id.to_string(),
        host_id: job.host_id.clone(),
    })])
}

/// Marks a job lost unless it is over.
pub fn decide_lost(state: &JobsState, job_id: &str, reason: &str) -> Vec<Event> {
    match state.jobs.get(job_id) {
        Some(j) if !j.status.is_final() => vec![Event::JobLost(JobLost {
            job_id: job_id.to_string(),
            host_id: j.host_id.clone(),
            reason: reason.to_string(),
        })],
        _ => vec![],
    }
}

/// Validates backup parameters typed by an operator.
pub fn validate_backup(params: &JobParams) -> Result<(), DomainError> {
    if params.paths.is_empty() {
        return Err(DomainError::invalid(
            "paths",
            "needs at least one path to back up",
        ));
    }
    let bad = |s: &String| s.is_empty() || s.len() > 4096 || s.chars().any(char::is_control);
    if params.paths.iter().any(bad) {
        return Err(DomainError::invalid(
            "paths",
            "each path must be one non-empty line",
        ));
    }
    if params.excludes.iter().any(bad) {
        return Err(DomainError::invalid(
            "excludes",
            "each pattern must be one non-empty line",
        ));
    }
    if params.tags.iter().any(|t| {
        t.is_empty() || t.len() > 128 || t.contains(',') || t.chars().any(char::is_control)
    }) {
        return Err(DomainError::invalid(
            "tags",
            "tags are short words without commas",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod restore_path_tests {
    use super::*;

    #[test]
    fn landing_keeps_the_full_path_under_the_target() {
        assert_eq!(restore_landing("/", "/etc/hosts"), "/etc/hosts");
        assert_eq!(restore_landing("/srv/r", "/etc/hosts"), "/srv/r/etc/hosts");
        assert_eq!(restore_landing("/srv/r/", "/etc"), "/srv/r/etc");
        assert_eq!(restore_landing("/srv/r", "etc"), "/srv/r/etc");
    }

    #[test]
    fn paths_inside_a_picked_directory_are_dropped() {
        let got = minimal_restore_paths(&[
            "/home/a/x",
            "/home/a",
            "/home/ab",
            "/home/a/",
            "/etc/hosts",
            "/etc/hosts",
        ]);
        assert_eq!(got, ["/home/a", "/home/ab", "/etc/hosts"]);
        assert_eq!(minimal_restore_paths(&["/a", "/"]), ["/"]);
        assert!(minimal_restore_paths::<&str>(&[]).is_empty());
    }
}
