//! The agent ↔ server wire protocol.
//!
//! Every frame is a JSON text frame:
//! `{"v": <protocol version>, "id": "<uuid>", "re": "<id replied to>"?, "type": "<type>", "payload": {…}}`.
//!
//! The envelope is decoded first and on its own, so a frame from a newer or older agent
//! whose payloads this build cannot read still yields its version and id — and the server
//! can answer with a clean `error` frame (`protocol_too_old` / `protocol_too_new`) instead of
//! a JSON parse failure.
//!
//! Messages the agent must not lose (see [`AgentMessage::is_durable`]) go through its
//! on-disk outbox and are acknowledged by the server with an `ack` whose `re` is their id;
//! the server ignores a repeated id, so a reconnect neither loses nor doubles a message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The oldest agent protocol the server still accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 1;
/// Largest frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
/// How often an agent sends a heartbeat.
pub const HEARTBEAT_SECS: u64 = 15;

/// The envelope, payload still undecoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender.
    pub v: u32,
    /// Unique id of this frame (UUID).
    pub id: String,
    /// The id of the frame this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<String>,
    /// Message type, e.g. `hello`.
    #[serde(rename = "type")]
    pub msg_type: String,
    /// The message body.
    #[serde(default)]
    pub payload: Value,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes is larger than the limit of {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    /// Not a JSON envelope.
    #[error("not a protocol frame: {0}")]
    BadFrame(String),
    /// The envelope is fine but the type is not one this build knows.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// The type is known but its payload does not fit.
    #[error("bad payload for {msg_type}: {message}")]
    BadPayload {
        /// The type.
        msg_type: String,
        /// The decoder's complaint.
        message: String,
    },
}

impl FrameError {
    /// The error code sent back in an `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge(_) => "frame_too_large",
            FrameError::BadFrame(_) => "bad_frame",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::BadPayload { .. } => "bad_payload",
        }
    }
}

/// Decodes the envelope of a text frame.
pub fn decode_envelope(text: &str) -> Result<Envelope, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| FrameError::BadFrame(e.to_string()))
}

/// How a protocol version compares with what this build accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// Spoken here.
    Supported,
    /// Older than [`MIN_PROTOCOL_VERSION`].
    TooOld,
    /// Newer than [`PROTOCOL_VERSION`].
    TooNew,
}

/// Checks a peer's protocol version.
pub fn check_version(v: u32) -> VersionCheck {
    if v < MIN_PROTOCOL_VERSION {
        VersionCheck::TooOld
    } else if v > PROTOCOL_VERSION {
        VersionCheck::TooNew
    } else {
        VersionCheck::Supported
    }
}

/// The protocol versions a side accepts, sent with version errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    /// Oldest.
    pub min: u32,
    /// Newest.
    pub max: u32,
}

impl VersionRange {
    /// What this build accepts.
    pub fn supported() -> Self {
        VersionRange {
            min: MIN_PROTOCOL_VERSION,
            max: PROTOCOL_VERSION,
        }
    }
}

macro_rules! messages {
    (
        $(#[$edoc:meta])* $enum:ident {
            $( $(#[$doc:meta])* $name:ident($payload:ty) = $wire:literal ),* $(,)?
        }
    ) => {
        $(#[$edoc])*
        // Messages live for one send or one dispatch; boxing the big ones buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $( $(#[$doc])* $name($payload), )*
        }

        impl $enum {
            /// The wire name.
            pub fn msg_type(&self) -> &'static str {
                match self { $( $enum::$name(_) => $wire, )* }
            }

            /// Every wire name of this direction.
            pub const TYPES: &'static [&'static str] = &[$( $wire, )*];

            /// Decodes the payload of an envelope.
            pub fn from_envelope(env: &Envelope) -> Result<Self, FrameError> {
                let bad = |e: serde_json::Error| FrameError::BadPayload {
                    msg_type: env.msg_type.clone(),
                    message: e.to_string(),
                };
                match env.msg_type.as_str() {
                    $( $wire => serde_json::from_value(env.payload.clone()).map($enum::$name).map_err(bad), )*
                    other => Err(FrameError::UnknownType(other.to_string())),
                }
            }

            /// The payload as JSON.
            pub fn payload(&self) -> Value {
                let r = match self { $( $enum::$name(p) => serde_json::to_value(p), )* };
                r.unwrap_or(Value::Null)
            }

            /// Wraps the message in an envelope.
            pub fn envelope(&self, id: impl Into<String>, re: Option<String>) -> Envelope {
                Envelope {
                    v: PROTOCOL_VERSION,
                    id: id.into(),
                    re,
                    msg_type: self.msg_type().to_string(),
                    payload: self.payload(),
                }
            }

            /// The frame text.
            pub fn to_frame(&self, id: impl Into<String>, re: Option<String>) -> String {
                serde_json::to_string(&self.envelope(id, re)).unwrap_or_default()
            }
        }
    };
}

messages! {
    /// What an agent sends.
    AgentMessage {
        /// First frame after connecting.
        Hello(Hello) = "hello",
        /// Liveness, every [`HEARTBEAT_SECS`].
        Heartbeat(Heartbeat) = "heartbeat",
        /// Acknowledges a server frame (`re` names it).
        Ack(Ack) = "ack",
        /// The agent stored the credentials of `config.update` version N. Durable.
        ConfigApplied(ConfigApplied) = "config.applied",
        /// restic started for a job. Durable.
        JobStarted(JobStartedMsg) = "job.started",
        /// restic's progress, at most once a second.
        JobProgress(JobProgressMsg) = "job.progress",
        /// A batch of log lines.
        JobLog(JobLogMsg) = "job.log",
        /// A job ended. Durable.
        JobFinished(JobFinishedMsg) = "job.finished",
        /// The repository's snapshot list and size. Durable.
        SnapshotsReport(SnapshotsReportMsg) = "snapshots.report",
        /// The agent armed schedule set version N. Durable.
        SchedulesApplied(SchedulesApplied) = "schedules.applied",
        /// The local scheduler fired: a job the server has not seen yet. Durable, and sent
        /// before the job's `job.started`.
        JobScheduled(JobScheduledMsg) = "job.scheduled",
        /// One directory of a snapshot, answering `snapshot.ls` (not durable: the server
        /// waits for it with a timeout).
        SnapshotLsResult(SnapshotLsResultMsg) = "snapshot.ls.result",
        /// The changes between two snapshots, answering `snapshot.diff`, possibly in several
        /// parts (not durable).
        SnapshotDiffResult(SnapshotDiffResultMsg) = "snapshot.diff.result",
    }
}

messages! {
    /// What the server sends.
    ServerMessage {
        /// The answer to `hello`.
        Welcome(Welcome) = "hello.ok",
        /// Repository credentials (decrypted from the vault), sent over the authenticated socket.
        ConfigUpdate(ConfigUpdate) = "config.update",
        /// Acknowledges a durable agent message (`re` names it).
        Ack(Ack) = "ack",
        /// Something was wrong with a frame, or the connection is refused.
        Error(ErrorFrame) = "error",
        /// Run a job.
        JobRun(JobRunMsg) = "job.run",
        /// Stop a running job (restic is interrupted cleanly).
        JobCancel(JobCancelMsg) = "job.cancel",
        /// Report the snapshot list now.
        SnapshotsRequest(SnapshotsRequestMsg) = "snapshots.request",
        /// The resolved schedule set (groups inlined) for the local scheduler.
        SchedulesUpdate(SchedulesUpdate) = "schedules.update",
        /// List one directory of a snapshot (answered by `snapshot.ls.result`).
        SnapshotLs(SnapshotLsMsg) = "snapshot.ls",
        /// Compare two snapshots (answered by `snapshot.diff.result`).
        SnapshotDiff(SnapshotDiffMsg) = "snapshot.diff",
    }
}

impl AgentMessage {
    /// Whether this message must survive disconnects and crashes (it goes through the
    /// outbox and waits for an `ack`).
    pub fn is_durable(&self) -> bool {
        matches!(
            self,
            AgentMessage::ConfigApplied(_)
                | AgentMessage::JobStarted(_)
                | AgentMessage::JobFinished(_)
                | AgentMessage::SnapshotsReport(_)
                | AgentMessage::SchedulesApplied(_)
                | AgentMessage::JobScheduled(_)
        )
    }
}

/// `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Agent build version.
    pub agent_version: String,
    /// The host's name.
    pub hostname: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// `restic version` as reported, or empty when restic is missing.
    #[serde(default)]
    pub restic_version: String,
    /// The credentials version the agent holds (0 when none).
    #[serde(default)]
    pub config_version: u64,
    /// The agent's effective user id (`None` from agents that predate it, or off Unix): a
    /// non-root agent cannot restore files owned by others in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// `heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Heartbeat {}

/// `ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ack {}

/// `config.applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigApplied {
    /// The credentials version stored.
    pub version: u64,
}

/// `job.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStartedMsg {
    /// Job.
    pub job_id: String,
}

/// `job.progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgressMsg {
    /// Job.
    pub job_id: String,
    /// Where restic is.
    pub progress: crate::jobs::Progress,
}

/// `job.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogMsg {
    /// Job.
    pub job_id: String,
    /// Lines, in order.
    pub lines: Vec<crate::jobs::LogLine>,
}

/// `job.finished`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFinishedMsg {
    /// Job.
    pub job_id: String,
    /// succeeded, succeeded_with_warnings, failed or cancelled.
    pub status: crate::jobs::JobStatus,
    /// restic's summary.
    #[serde(default)]
    pub stats: Option<Value>,
    /// A readable error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Unreadable items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why it failed, for machines (see [`crate::jobs::JobFinished::error_code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// `snapshots.report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsReportMsg {
    /// Every snapshot.
    pub snapshots: Vec<crate::jobs::Snapshot>,
    /// Repository size (raw data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_size_bytes: Option<u64>,
    /// Size of the snapshots' contents before deduplication (`stats`, restore-size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_size_bytes: Option<u64>,
}

/// `schedules.applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulesApplied {
    /// The schedule set version armed.
    pub version: u64,
}

/// `job.scheduled`: the agent's own scheduler started a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobScheduledMsg {
    /// The job id the agent chose (UUIDv7).
    pub job_id: String,
    /// The schedule that fired.
    pub schedule_id: String,
    /// The group it backs up.
    pub source_group_id: String,
    /// Always `backup` today.
    pub kind: crate::jobs::JobKind,
    /// What it runs (paths, excludes, tag, caps).
    pub params: crate::jobs::JobParams,
    /// When the schedule fired (RFC 3339).
    pub fired_at: String,
}

/// Pre- and post-backup hooks (shell scripts run by `/bin/sh -c`). Secret: they travel only
/// over the authenticated socket and live in the server's vault and the agent's secrets file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Hooks {
    /// Runs before restic; a non-zero exit aborts the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    /// Runs after restic, always, with `RM_JOB_STATUS` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
}

impl Hooks {
    /// Neither hook set.
    pub fn is_empty(&self) -> bool {
        self.pre.is_none() && self.post.is_none()
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("pre", &self.pre.as_ref().map(|_| "***"))
            .field("post", &self.post.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One source group as the agent's scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledGroup {
    /// Group id.
    pub source_group_id: String,
    /// Name, used as the snapshot tag.
    pub name: String,
    /// Paths.
    pub includes: Vec<String>,
    /// Exclude patterns.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// Retention (the agent does not run forget itself; kept for display and what-if).
    #[serde(default)]
    pub retention_policy: crate::sources::RetentionPolicy,
    /// Retries of a failed scheduled backup.
    #[serde(default)]
    pub retry_max: u32,
    /// Wait before retry n, times n.
    #[serde(default)]
    pub retry_backoff_seconds: u64,
    /// The group's hooks (or the host's defaults).
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// One schedule with its groups resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Schedule id.
    pub schedule_id: String,
    /// Five-field cron, UTC.
    pub cron: String,
    /// Paused schedules are kept but do not fire.
    pub enabled: bool,
    /// The groups it backs up, one job each.
    pub groups: Vec<ScheduledGroup>,
}

/// `schedules.update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulesUpdate {
    /// The host's schedule version.
    pub version: u64,
    /// Every schedule of the host.
    pub schedules: Vec<ScheduleSpec>,
    /// Host-wide caps for local runs.
    #[serde(default)]
    pub bandwidth: crate::sources::Bandwidth,
}

/// `job.run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRunMsg {
    /// Job.
    pub job_id: String,
    /// What to run.
    pub kind: crate::jobs::JobKind,
    /// Its parameters.
    #[serde(default)]
    pub params: crate::jobs::JobParams,
    /// Backups: the hooks to run around restic.
    #[serde(default, skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
    /// forget/prune: the full-access credential, when the host has one. The agent keeps it
    /// in its own slot of the secrets file, apart from the everyday credential, for the
    /// length of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_repo: Option<RepoCredentials>,
    /// restore from another host's repository: a read credential for that repository,
    /// granted for this one job. The agent keeps it in memory for the job and never writes
    /// it to disk; the server destroys its copy when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<RepoCredentials>,
}

/// `job.cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancelMsg {
    /// Job.
    pub job_id: String,
}

/// `snapshots.request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnapshotsRequestMsg {}

/// `snapshot.ls`: list the direct children of one directory of a snapshot, one page of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLsMsg {
    /// Matches the answer to the question.
    pub request_id: String,
    /// The snapshot (hex id or unique prefix).
    pub snapshot_id: String,
    /// An absolute directory inside the snapshot (`/` for its root).
    pub path: String,
    /// Entries to skip.
    #[serde(default)]
    pub offset: u64,
    /// Entries to return at most.
    pub limit: u64,
}

/// One file, directory or other node of a snapshot (restic's `ls --json` node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TreeEntry {
    /// Base name.
    pub name: String,
    /// `file`, `dir`, `symlink`, `dev`, `chardev`, `fifo`, `socket`.
    #[serde(rename = "type")]
    pub entry_type: String,
    /// Absolute path inside the snapshot.
    pub path: String,
    /// Bytes (files only).
    #[serde(default)]
    pub size: u64,
    /// Modification time (RFC 3339, as restic prints it).
    #[serde(default)]
    pub mtime: String,
    /// Owner.
    #[serde(default)]
    pub uid: u32,
    /// Group.
    #[serde(default)]
    pub gid: u32,
    /// Go's `os.FileMode` bits as restic stores them (type bits high, permissions low).
    #[serde(default)]
    pub mode: u32,
    /// The mode as `ls -l` shows it (`drwxr-xr-x`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub permissions: String,
}

/// `snapshot.ls.result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLsResultMsg {
    /// The question's id.
    pub request_id: String,
    /// The page of entries, in restic's (name) order.
    #[serde(default)]
    pub entries: Vec<TreeEntry>,
    /// How many entries the directory has in all.
    #[serde(default)]
    pub total: u64,
    /// Why there is no answer, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why there is no answer, for machines: `snapshot_not_found`, `path_not_found`,
    /// `not_a_directory`, `repo_locked`, `repo_missing`, `wrong_password`, `no_credentials`,
    /// `restic_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// More parts of this answer follow (a page too large for one frame).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// `snapshot.diff`: what changed from one snapshot to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiffMsg {
    /// Matches the answer to the question.
    pub request_id: String,
    /// The older snapshot.
    pub from: String,
    /// The newer snapshot.
    pub to: String,
    /// Changes to report at most (the rest is counted and dropped).
    pub max_changes: u64,
}

/// One changed path (`+` added, `-` removed, `M` content, `T` type, `U` metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffChange {
    /// Path inside the snapshots.
    pub path: String,
    /// restic's modifier.
    pub modifier: String,
}

/// `snapshot.diff.result`, in one or more parts (`more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiffResultMsg {
    /// The question's id.
    pub request_id: String,
    /// Changes (this part's).
    #[serde(default)]
    pub changes: Vec<DiffChange>,
    /// restic's `statistics` (last part only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Value>,
    /// More changes existed than `max_changes` (last part only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why there is no answer, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why there is no answer, for machines (as for `snapshot.ls.result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// More parts of this answer follow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// `hello.ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The agent's host id.
    pub host_id: String,
    /// Server build version.
    pub server_version: String,
    /// Protocol the server speaks.
    pub protocol_version: u32,
    /// How often to send heartbeats.
    pub heartbeat_secs: u64,
}

/// Repository credentials as the agent needs them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoCredentials {
    /// The repository URL (`/srv/repo`, `rest:https://…`, `s3:…`).
    pub url: String,
    /// Backend user name, when the backend has one (REST server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The repository password.
    pub password: String,
}

impl std::fmt::Debug for RepoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoCredentials")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// `config.update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    /// Increases with every change of the credentials.
    pub version: u64,
    /// The everyday repository credentials.
    pub repo: RepoCredentials,
}

/// `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Machine-readable: `protocol_too_old`, `protocol_too_new`, `bad_frame`,
    /// `frame_too_large`, `unknown_type`, `bad_payload`, `unexpected`, `host_deleted`.
    pub code: String,
    /// Human text.
    pub message: String,
    /// For version errors: what the server accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<VersionRange>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame<M>(m: &M, to: fn(&M, String, Option<String>) -> String) -> Value {
        serde_json::from_str(&to(m, "id-1".into(), Some("id-0".into()))).unwrap()
    }

    /// Pins every message on the wire: a change here is a protocol change.
    #[test]
    fn agent_messages_on_the_wire() {
        let to = |m: &AgentMessage, id: String, re: Option<String>| m.to_frame(id, re);
        let cases = [
            (
                AgentMessage::Hello(Hello {
                    agent_version: "0.1.0".into(),
                    hostname: "web-1".into(),
                    os: "linux".into(),
                    arch: "x86_64".into(),
                    restic_version: "0.14.0".into(),
                    config_version: 2,
                    uid: Some(1000),
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"hello","payload":{
                    "agent_version":"0.1.0","hostname":"web-1","os":"linux","arch":"x86_64",
                    "restic_version":"0.14.0","config_version":2,"uid":1000}}),
            ),
            (
                AgentMessage::Heartbeat(Heartbeat {}),
                json!({"v":1,"id":"id-1","re":"id-0","type":"heartbeat","payload":{}}),
            ),
            (
                AgentMessage::Ack(Ack {}),
                json!({"v":1,"id":"id-1","re":"id-0","type":"ack","payload":{}}),
            ),
            (
                AgentMessage::ConfigApplied(ConfigApplied { version: 3 }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"config.applied","payload":{"version":3}}),
            ),
            (
                AgentMessage::JobStarted(JobStartedMsg { job_id: "j".into() }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.started","payload":{"job_id":"j"}}),
            ),
            (
                AgentMessage::JobProgress(JobProgressMsg {
                    job_id: "j".into(),
                    progress: crate::jobs::Progress {
                        percent: 50.0,
                        bytes_done: 5,
                        total_bytes: 10,
                        files_done: 1,
                        total_files: 2,
                        seconds_remaining: Some(3),
                    },
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.progress","payload":{"job_id":"j","progress":{
                    "percent":50.0,"bytes_done":5,"total_bytes":10,"files_done":1,"total_files":2,"seconds_remaining":3}}}),
            ),
            (
                AgentMessage::JobLog(JobLogMsg {
                    job_id: "j".into(),
                    lines: vec![crate::jobs::LogLine {
                        at: "t".into(),
                        stream: "stderr".into(),
                        text: "x".into(),
                    }],
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.log","payload":{"job_id":"j","lines":[
                    {"at":"t","stream":"stderr","text":"x"}]}}),
            ),
            (
                AgentMessage::JobFinished(JobFinishedMsg {
                    job_id: "j".into(),
                    status: crate::jobs::JobStatus::SucceededWithWarnings,
                    stats: Some(json!({"files_new": 1})),
                    error: None,
                    snapshot_id: Some("abcd1234".into()),
                    warnings: vec!["/etc/shadow: permission denied".into()],
                    error_code: None,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.finished","payload":{"job_id":"j",
                    "status":"succeeded_with_warnings","stats":{"files_new":1},"snapshot_id":"abcd1234",
                    "warnings":["/etc/shadow: permission denied"]}}),
            ),
            (
                AgentMessage::SnapshotsReport(SnapshotsReportMsg {
                    snapshots: vec![crate::jobs::Snapshot {
                        id: "ab".into(),
                        short_id: "a".into(),
                        time: "t".into(),
                        paths: vec!["/srv".into()],
                        tags: vec![],
                        hostname: "h".into(),
                    }],
                    repo_size_bytes: Some(7),
                    restore_size_bytes: Some(21),
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshots.report","payload":{"snapshots":[
                    {"id":"ab","short_id":"a","time":"t","paths":["/srv"],"tags":[],"hostname":"h"}],
                    "repo_size_bytes":7,"restore_size_bytes":21}}),
            ),
            (
                AgentMessage::SchedulesApplied(SchedulesApplied { version: 5 }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"schedules.applied","payload":{"version":5}}),
            ),
            (
                AgentMessage::JobScheduled(JobScheduledMsg {
                    job_id: "j".into(),
                    schedule_id: "s".into(),
                    source_group_id: "g".into(),
                    kind: crate::jobs::JobKind::Backup,
                    params: crate::jobs::JobParams {
                        paths: vec!["/srv".into()],
                        tags: vec!["default".into()],
                        ..Default::default()
                    },
                    fired_at: "t".into(),
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.scheduled","payload":{"job_id":"j",
                    "schedule_id":"s","source_group_id":"g","kind":"backup",
                    "params":{"paths":["/srv"],"tags":["default"]},"fired_at":"t"}}),
            ),
            (
                AgentMessage::SnapshotLsResult(SnapshotLsResultMsg {
                    request_id: "r".into(),
                    entries: vec![TreeEntry {
                        name: "shadow".into(),
                        entry_type: "file".into(),
                        path: "/etc/shadow".into(),
                        size: 1024,
                        mtime: "2026-11-28T10:00:00Z".into(),
                        uid: 0,
                        gid: 42,
                        mode: 0o640,
                        permissions: "-rw-r-----".into(),
                    }],
                    total: 120,
                    error: None,
                    error_code: None,
                    more: false,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshot.ls.result","payload":{
                    "request_id":"r","entries":[{"name":"shadow","type":"file","path":"/etc/shadow",
                    "size":1024,"mtime":"2026-11-28T10:00:00Z","uid":0,"gid":42,"mode":416,
                    "permissions":"-rw-r-----"}],"total":120}}),
            ),
            (
                AgentMessage::SnapshotDiffResult(SnapshotDiffResultMsg {
                    request_id: "r".into(),
                    changes: vec![DiffChange {
                        path: "/srv/a".into(),
                        modifier: "M".into(),
                    }],
                    stats: Some(json!({"changed_files": 1})),
                    truncated: true,
                    error: None,
                    error_code: None,
                    more: false,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshot.diff.result","payload":{
                    "request_id":"r","changes":[{"path":"/srv/a","modifier":"M"}],
                    "stats":{"changed_files":1},"truncated":true}}),
            ),
        ];
        assert_eq!(
            cases.len(),
            AgentMessage::TYPES.len(),
            "every message is pinned"
        );
        for (m, want) in cases {
            assert_eq!(frame(&m, to), want);
            let env: Envelope = serde_json::from_value(want).unwrap();
            assert_eq!(AgentMessage::from_envelope(&env).unwrap(), m);
        }
    }

    #[test]
    fn server_messages_on_the_wire() {
        let to = |m: &ServerMessage, id: String, re: Option<String>| m.to_frame(id, re);
        let cases = [
            (
                ServerMessage::Welcome(Welcome {
                    host_id: "h1".into(),
                    server_version: "0.1.0".into(),
                    protocol_version: 1,
                    heartbeat_secs: 15,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"hello.ok","payload":{
                    "host_id":"h1","server_version":"0.1.0","protocol_version":1,"heartbeat_secs":15}}),
            ),
            (
                ServerMessage::ConfigUpdate(ConfigUpdate {
                    version: 4,
                    repo: RepoCredentials {
                        url: "rest:http://backup:8000/web-1".into(),
                        username: Some("web-1".into()),
                        password: "pw".into(),
                    },
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"config.update","payload":{
                    "version":4,"repo":{"url":"rest:http://backup:8000/web-1","username":"web-1","password":"pw"}}}),
            ),
            (
                ServerMessage::Ack(Ack {}),
                json!({"v":1,"id":"id-1","re":"id-0","type":"ack","payload":{}}),
            ),
            (
                ServerMessage::JobRun(JobRunMsg {
                    job_id: "j".into(),
                    kind: crate::jobs::JobKind::Backup,
                    params: crate::jobs::JobParams {
                        paths: vec!["/srv".into()],
                        excludes: vec!["*.tmp".into()],
                        tags: vec!["daily".into()],
                        limit_upload_kbps: Some(512),
                        ..Default::default()
                    },
                    hooks: Hooks {
                        pre: Some("pg_dump db > /srv/db.sql".into()),
                        post: None,
                    },
                    admin_repo: None,
                    source_repo: None,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.run","payload":{"job_id":"j","kind":"backup",
                    "params":{"paths":["/srv"],"excludes":["*.tmp"],"tags":["daily"],"limit_upload_kbps":512},
                    "hooks":{"pre":"pg_dump db > /srv/db.sql"}}}),
            ),
            (
                ServerMessage::JobRun(JobRunMsg {
                    job_id: "j".into(),
                    kind: crate::jobs::JobKind::Forget,
                    params: crate::jobs::JobParams {
                        tags: vec!["default".into()],
                        retention: Some(crate::sources::RetentionPolicy {
                            keep_last: Some(3),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    hooks: Hooks::default(),
                    admin_repo: Some(RepoCredentials {
                        url: "/srv/repo".into(),
                        username: None,
                        password: "pw".into(),
                    }),
                    source_repo: None,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.run","payload":{"job_id":"j","kind":"forget",
                    "params":{"tags":["default"],"retention":{"keep_last":3}},
                    "admin_repo":{"url":"/srv/repo","password":"pw"}}}),
            ),
            (
                ServerMessage::JobRun(JobRunMsg {
                    job_id: "j".into(),
                    kind: crate::jobs::JobKind::Restore,
                    params: crate::jobs::JobParams {
                        paths: vec!["/srv/www".into()],
                        snapshot_id: Some("abcd1234".into()),
                        target: Some("/".into()),
                        overwrite: Some(crate::jobs::Overwrite::Always),
                        source_host_id: Some("h2".into()),
                        ..Default::default()
                    },
                    hooks: Hooks::default(),
                    admin_repo: None,
                    source_repo: Some(RepoCredentials {
                        url: "/srv/repo-h2".into(),
                        username: None,
                        password: "pw2".into(),
                    }),
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.run","payload":{"job_id":"j","kind":"restore",
                    "params":{"paths":["/srv/www"],"snapshot_id":"abcd1234","target":"/","overwrite":"always",
                        "source_host_id":"h2"},
                    "source_repo":{"url":"/srv/repo-h2","password":"pw2"}}}),
            ),
            (
                ServerMessage::SnapshotLs(SnapshotLsMsg {
                    request_id: "r".into(),
                    snapshot_id: "abcd1234".into(),
                    path: "/etc".into(),
                    offset: 500,
                    limit: 500,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshot.ls","payload":{
                    "request_id":"r","snapshot_id":"abcd1234","path":"/etc","offset":500,"limit":500}}),
            ),
            (
                ServerMessage::SnapshotDiff(SnapshotDiffMsg {
                    request_id: "r".into(),
                    from: "abcd1234".into(),
                    to: "ef567890".into(),
                    max_changes: 20000,
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshot.diff","payload":{
                    "request_id":"r","from":"abcd1234","to":"ef567890","max_changes":20000}}),
            ),
            (
                ServerMessage::SchedulesUpdate(SchedulesUpdate {
                    version: 7,
                    schedules: vec![ScheduleSpec {
                        schedule_id: "s".into(),
                        cron: "0 3 * * *".into(),
                        enabled: true,
                        groups: vec![ScheduledGroup {
                            source_group_id: "g".into(),
                            name: "default".into(),
                            includes: vec!["/srv".into()],
                            excludes: vec![],
                            retention_policy: Default::default(),
                            retry_max: 2,
                            retry_backoff_seconds: 60,
                            hooks: Hooks::default(),
                        }],
                    }],
                    bandwidth: crate::sources::Bandwidth {
                        up_kbps: Some(100),
                        down_kbps: None,
                    },
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"schedules.update","payload":{"version":7,
                    "schedules":[{"schedule_id":"s","cron":"0 3 * * *","enabled":true,"groups":[{
                        "source_group_id":"g","name":"default","includes":["/srv"],"excludes":[],
                        "retention_policy":{},"retry_max":2,"retry_backoff_seconds":60}]}],
                    "bandwidth":{"up_kbps":100,"down_kbps":null}}}),
            ),
            (
                ServerMessage::JobCancel(JobCancelMsg { job_id: "j".into() }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"job.cancel","payload":{"job_id":"j"}}),
            ),
            (
                ServerMessage::SnapshotsRequest(SnapshotsRequestMsg {}),
                json!({"v":1,"id":"id-1","re":"id-0","type":"snapshots.request","payload":{}}),
            ),
            (
                ServerMessage::Error(ErrorFrame {
                    code: "protocol_too_new".into(),
                    message: "m".into(),
                    supported: Some(VersionRange { min: 1, max: 1 }),
                }),
                json!({"v":1,"id":"id-1","re":"id-0","type":"error","payload":{
                    "code":"protocol_too_new","message":"m","supported":{"min":1,"max":1}}}),
            ),
        ];
        assert_eq!(
            cases.len(),
            ServerMessage::TYPES.len() + 2,
            "every message is pinned (job.run three times)"
        );
        for (m, want) in cases {
            assert_eq!(frame(&m, to), want);
            let env: Envelope = serde_json::from_value(want).unwrap();
            assert_eq!(ServerMessage::from_envelope(&env).unwrap(), m);
        }
    }

    /// Agents from before `uid`, and results without the optional parts, still parse.
    #[test]
    fn restore_messages_tolerate_missing_optional_fields() {
        let env = decode_envelope(
            r#"{"v":1,"id":"x","type":"hello","payload":{"agent_version":"0.1.0","hostname":"h","os":"linux","arch":"x86_64"}}"#,
        )
        .unwrap();
        match AgentMessage::from_envelope(&env).unwrap() {
            AgentMessage::Hello(h) => assert_eq!(h.uid, None),
            other => panic!("{other:?}"),
        }
        let env = decode_envelope(
            r#"{"v":1,"id":"x","type":"snapshot.ls.result","payload":{"request_id":"r","error":"no such snapshot","error_code":"snapshot_not_found"}}"#,
        )
        .unwrap();
        match AgentMessage::from_envelope(&env).unwrap() {
            AgentMessage::SnapshotLsResult(r) => {
                assert!(r.entries.is_empty() && !r.more && r.total == 0);
                assert_eq!(r.error_code.as_deref(), Some("snapshot_not_found"));
            }
            other => panic!("{other:?}"),
        }
        // A node as restic 0.14 prints it (no size for directories, unknown keys).
        let e: TreeEntry = serde_json::from_str(
            r#"{"name":"a","type":"dir","path":"/a","uid":0,"gid":0,"mode":2147484141,"permissions":"drwxr-xr-x","mtime":"t","atime":"t","struct_type":"node"}"#,
        )
        .unwrap();
        assert_eq!(
            (e.size, e.mode, e.entry_type.as_str()),
            (0, 2147484141, "dir")
        );
        // A job.run without source_repo (every job but a cross-host restore).
        let env = decode_envelope(
            r#"{"v":1,"id":"x","type":"job.run","payload":{"job_id":"j","kind":"restore","params":{"snapshot_id":"ab"}}}"#,
        )
        .unwrap();
        match ServerMessage::from_envelope(&env).unwrap() {
            ServerMessage::JobRun(j) => assert!(j.source_repo.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(decode_envelope("nope").unwrap_err().code(), "bad_frame");
        let big = format!(
            "{{\"v\":1,\"id\":\"x\",\"type\":\"heartbeat\",\"payload\":\"{}\"}}",
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(decode_envelope(&big).unwrap_err().code(), "frame_too_large");
        let env = decode_envelope(r#"{"v":1,"id":"x","type":"dance","payload":{}}"#).unwrap();
        assert_eq!(
            AgentMessage::from_envelope(&env).unwrap_err().code(),
            "unknown_type"
        );
        let env = decode_envelope(
            r#"{"v":1,"id":"x","type":"config.applied","payload":{"version":"x"}}"#,
        )
        .unwrap();
        assert_eq!(
            AgentMessage::from_envelope(&env).unwrap_err().code(),
            "bad_payload"
        );
        // A future agent's frame still yields its version.
        let env = decode_envelope(r#"{"v":9,"id":"x","type":"hello","payload":{"new":"shape"}}"#)
            .unwrap();
        assert_eq!(check_version(env.v), VersionCheck::TooNew);
        assert_eq!(check_version(0), VersionCheck::TooOld);
        assert_eq!(check_version(PROTOCOL_VERSION), VersionCheck::Supported);
    }

    #[test]
    fn credentials_never_print_their_password() {
        let c = RepoCredentials {
            url: "/srv/r".into(),
            username: None,
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
