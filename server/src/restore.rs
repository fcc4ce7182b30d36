//! Restore: browsing a snapshot one directory at a time and comparing two snapshots through
//! the host's agent, restore jobs, and the temporary credential of a cross-host restore.
//!
//! Browsing and diffs are questions to the agent (`snapshot.ls`, `snapshot.diff`) answered
//! over the same socket, matched by a request id and awaited with a timeout; nothing about
//! them enters the event log. A restore is an ordinary job of kind `restore` on the target
//! host.
//!
//! A cross-host restore needs the *source* host's repository on the *target* host. The
//! server copies the source's credential into a vault row owned by the job
//! (`restore-cred-<job>`), sends it inside that job's `job.run` only, and destroys the row
//! when the job ends — finished, cancelled or lost, also when that happens after a restart,
//! and at start-up for any grant whose job is already over. The grant and the revocation
//! are events (`RestoreCredentialGranted`, `RestoreCredentialRevoked`), each appended in the
//! transaction that writes or deletes the vault row; neither holds the secret.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::event::{RestoreCredentialGranted, RestoreCredentialRevoked};
use domain::jobs::{JobDispatched, JobKind, JobParams, JobQueued, Overwrite, Trigger};
use domain::protocol::{
    DiffChange, Hooks, JobRunMsg, RepoCredentials, ServerMessage, SnapshotDiffMsg,
    SnapshotDiffResultMsg, SnapshotLsMsg, SnapshotLsResultMsg, TreeEntry,
};
use domain::{Actor, DomainError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::agents::registry::Outgoing;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{AppendRequest, ExpectedVersion};
use crate::vault::Vault;

/// How long a directory listing may take the agent.
pub const LS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a diff may take the agent.
pub const DIFF_TIMEOUT: Duration = Duration::from_secs(180);
/// Entries per page when the request names no limit.
pub const DEFAULT_LIMIT: u64 = 500;
/// Entries per page at most.
pub const MAX_LIMIT: u64 = 1000;
/// Changes a diff reports at most (the answer says `truncated` beyond).
pub const MAX_DIFF_CHANGES: u64 = 20_000;
/// Bytes of all the paths of one restore together, at most.
pub const MAX_PATHS_BYTES: usize = 64 * 1024;
/// Parts of one answer accepted at most (a frame holds ~160 KiB of entries).
const MAX_PARTS: usize = 1000;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The vault row of a cross-host restore's credential.
pub fn credential_ref(job_id: &str) -> String {
    format!("restore-cred-{job_id}")
}

/// An answer (or one part of one) from an agent.
#[derive(Debug)]
pub enum AgentAnswer {
    /// To `snapshot.ls`.
    Ls(SnapshotLsResultMsg),
    /// To `snapshot.diff`.
    Diff(SnapshotDiffResultMsg),
}

impl AgentAnswer {
    fn more(&self) -> bool {
        match self {
            AgentAnswer::Ls(m) => m.more,
            AgentAnswer::Diff(m) => m.more,
        }
    }
}

struct Waiting {
    host_id: String,
    tx: mpsc::Sender<AgentAnswer>,
}

/// Questions waiting for an agent's answer (by request id), and the agents' user ids as
/// their `hello` said. Lives in the agents registry; in memory only.
#[derive(Default)]
pub struct AgentCalls {
    waiting: Mutex<HashMap<String, Waiting>>,
    uids: Mutex<HashMap<String, Option<u32>>>,
}

/// A registered question; forgets itself when dropped (answered, timed out, or the browser
/// went away).
pub struct Pending<'a> {
    calls: &'a AgentCalls,
    request_id: String,
    rx: mpsc::Receiver<AgentAnswer>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.calls
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.request_id);
    }
}

impl AgentCalls {
    /// Registers a question to `host_id` before it is sent.
    pub fn open(&self, host_id: &str, request_id: &str) -> Pending<'_> {
        let (tx, rx) = mpsc::channel(64);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                request_id.to_string(),
                Waiting {
                    host_id: host_id.to_string(),
                    tx,
                },
            );
        Pending {
            calls: self,
            request_id: request_id.to_string(),
            rx,
        }
    }

    /// Hands an answer to whoever waits for it; false when nobody does (late, unknown, or
    /// from another host than the one asked).
    pub fn answer(&self, host_id: &str, request_id: &str, a: AgentAnswer) -> bool {
        let m = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(request_id) {
            Some(w) if w.host_id == host_id => w.tx.try_send(a).is_ok(),
            _ => false,
        }
    }

    /// Records the user id an agent reported in its `hello`.
    pub fn set_uid(&self, host_id: &str, uid: Option<u32>) {
        self.uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host_id.to_string(), uid);
    }

    /// The agent's user id, if it reported one since the server started.
    pub fn uid(&self, host_id: &str) -> Option<u32> {
        self.uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host_id)
            .copied()
            .flatten()
    }
}

/// Why a restore request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The usual errors.
    #[error(transparent)]
    App(#[from] AppError),
    /// The agent did not answer in time (504).
    #[error("the host's agent did not answer within {0} s")]
    Timeout(u64),
    /// The agent answered with an error (its code decides the status).
    #[error("{message}")]
    Agent {
        /// The agent's `error_code`.
        code: String,
        /// The agent's words.
        message: String,
    },
}

impl From<DomainError> for RestoreError {
    fn from(e: DomainError) -> Self {
        RestoreError::App(e.into())
    }
}

impl IntoResponse for RestoreError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match self {
            RestoreError::App(e) => return e.into_response(),
            RestoreError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "agent_timeout".to_string()),
            // The code comes from the agent: only a plain snake_case word is passed on.
            RestoreError::Agent { code, .. }
                if code.is_empty()
                    || code.len() > 40
                    || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
            {
                (StatusCode::BAD_GATEWAY, "agent_error".to_string())
            }
            RestoreError::Agent { code, .. } => (
                match code.as_str() {
                    "snapshot_not_found" | "path_not_found" => StatusCode::NOT_FOUND,
                    "not_a_directory" => StatusCode::BAD_REQUEST,
                    "repo_locked" | "no_credentials" => StatusCode::CONFLICT,
                    _ => StatusCode::BAD_GATEWAY,
                },
                code,
            ),
        };
        tracing::debug!(status = status.as_u16(), code, "{message}");
        let body = json!({"error": {"code": code, "message": message}});
        (status, Json(body)).into_response()
    }
}

/// An absolute path without NUL, control characters, `.` or `..`, at most 4096 bytes,
/// normalised (`//a/b/` → `/a/b`).
pub fn validate_path(field: &'static str, path: &str) -> Result<String, DomainError> {
    if path.len() > 4096 {
        return Err(DomainError::invalid(field, "is longer than 4096 bytes"));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain NUL or control characters",
        ));
    }
    if !path.starts_with('/') {
        return Err(DomainError::invalid(
            field,
            "must be an absolute path (starting with /)",
        ));
    }
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(DomainError::invalid(
                field,
                "must not contain . or .. components",
            ));
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// A snapshot id: 8 to 64 hex characters (a short id or the full one), lowercased.
pub fn validate_snapshot_id(field: &'static str, id: &str) -> Result<String, DomainError> {
    if !(8..=64).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::invalid(
            field,
            "must be a snapshot id: 8 to 64 hex characters",
        ));
    }
    Ok(id.to_ascii_lowercase())
}

async fn require_host(
    state: &AppState,
    host_id: &str,
) -> Result<projections::hosts::Host, AppError> {
    let id = host_id.to_string();
    state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::hosts::get(c, &id)?) })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no host {host_id}")))
}

/// Sends a question and collects its answer (all parts).
async fn ask(
    state: &AppState,
    host_id: &str,
    request_id: &str,
    msg: ServerMessage,
    timeout: Duration,
) -> Result<Vec<AgentAnswer>, RestoreError> {
    if !state.agents.is_connected(host_id) {
        return Err(DomainError::HostOffline.into());
    }
    let mut pending = state.agents.calls.open(host_id, request_id);
    let frame = msg.to_frame(new_id(), None);
    if !state.agents.send(host_id, Outgoing::Frame(frame)) {
        return Err(DomainError::HostOffline.into());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut parts = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, pending.rx.recv()).await {
            Err(_) => return Err(RestoreError::Timeout(timeout.as_secs())),
            Ok(None) => return Err(RestoreError::Timeout(timeout.as_secs())),
            Ok(Some(a)) => {
                let more = a.more();
                parts.push(a);
                if !more || parts.len() >= MAX_PARTS {
                    return Ok(parts);
                }
            }
        }
    }
}

/// `snapshot.ls.result` from an agent.
pub fn ls_answer(state: &AppState, host_id: &str, m: SnapshotLsResultMsg) {
    let id = m.request_id.clone();
    if !state.agents.calls.answer(host_id, &id, AgentAnswer::Ls(m)) {
        tracing::debug!(host_id, request_id = id, "an ls answer nobody waits for");
    }
}

/// `snapshot.diff.result` from an agent.
pub fn diff_answer(state: &AppState, host_id: &str, m: SnapshotDiffResultMsg) {
    let id = m.request_id.clone();
    if !state
        .agents
        .calls
        .answer(host_id, &id, AgentAnswer::Diff(m))
    {
        tracing::debug!(host_id, request_id = id, "a diff answer nobody waits for");
    }
}

/// The agent's `hello` named its user id.
pub fn hello(state: &AppState, host_id: &str, uid: Option<u32>) {
    state.agents.calls.set_uid(host_id, uid);
}

/// One directory of a snapshot, as the API answers it.
#[derive(Debug, Serialize)]
pub struct TreePage {
    /// The page.
    pub entries: Vec<TreeEntry>,
    /// Children of the directory in all.
    pub total: u64,
    /// Entries skipped.
    pub offset: u64,
    /// Page size asked for.
    pub limit: u64,
    /// The directory (normalised).
    pub path: String,
    /// The snapshot asked for.
    pub snapshot_id: String,
    /// The agent's user id (a non-root agent cannot restore others' files in place).
    pub agent_uid: Option<u32>,
}

/// Lists one directory of a snapshot of `host_id`.
pub async fn tree(
    state: &AppState,
    host_id: &str,
    snapshot_id: &str,
    path: Option<&str>,
    offset: Option<u64>,
    limit: Option<u64>,
) -> Result<TreePage, RestoreError> {
    let snapshot_id = validate_snapshot_id("snapshot_id", snapshot_id)?;
    let path = validate_path("path", path.unwrap_or("/"))?;
    let offset = offset.unwrap_or(0);
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(DomainError::invalid("limit", format!("must be 1 to {MAX_LIMIT}")).into());
    }
    require_host(state, host_id).await?;
    let request_id = new_id();
    let msg = ServerMessage::SnapshotLs(SnapshotLsMsg {
        request_id: request_id.clone(),
        snapshot_id: snapshot_id.clone(),
        path: path.clone(),
        offset,
        limit,
    });
    let parts = ask(state, host_id, &request_id, msg, LS_TIMEOUT).await?;
    let mut page = TreePage {
        entries: vec![],
        total: 0,
        offset,
        limit,
        path,
        snapshot_id,
        agent_uid: state.agents.calls.uid(host_id),
    };
    for p in parts {
        let AgentAnswer::Ls(p) = p else { continue };
        if let Some(code) = p
            .error_code
            .or(p.error.as_ref().map(|_| "restic_failed".to_string()))
        {
            return Err(RestoreError::Agent {
                code,
                message: p
                    .error
                    .unwrap_or_else(|| "the agent could not list it".into()),
            });
        }
        page.total = p.total;
        let room = (limit as usize).saturating_sub(page.entries.len());
        page.entries.extend(p.entries.into_iter().take(room));
    }
    Ok(page)
}

/// The changes between two snapshots, as the API answers them.
#[derive(Debug, Serialize)]
pub struct DiffView {
    /// `{path, modifier}`: `+` added, `-` removed, `M` changed, `T` type, `U` metadata.
    pub changes: Vec<DiffChange>,
    /// restic's statistics (shape varies by restic version).
    pub stats: Value,
    /// There were more than [`MAX_DIFF_CHANGES`] changes.
    pub truncated: bool,
    /// The older snapshot.
    pub from: String,
    /// The newer snapshot.
    pub to: String,
}

/// Compares two snapshots of `host_id`.
pub async fn diff(
    state: &AppState,
    host_id: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<DiffView, RestoreError> {
    let from = validate_snapshot_id(
        "from",
        from.ok_or_else(|| DomainError::invalid("from", "is required"))?,
    )?;
    let to = validate_snapshot_id(
        "to",
        to.ok_or_else(|| DomainError::invalid("to", "is required"))?,
    )?;
    require_host(state, host_id).await?;
    let request_id = new_id();
    let msg = ServerMessage::SnapshotDiff(SnapshotDiffMsg {
        request_id: request_id.clone(),
        from: from.clone(),
        to: to.clone(),
        max_changes: MAX_DIFF_CHANGES,
    });
    let parts = ask(state, host_id, &request_id, msg, DIFF_TIMEOUT).await?;
    let mut view = DiffView {
        changes: vec![],
        stats: Value::Null,
        truncated: false,
        from,
        to,
    };
    for p in parts {
        let AgentAnswer::Diff(p) = p else { continue };
        if let Some(code) = p
            .error_code
            .or(p.error.as_ref().map(|_| "restic_failed".to_string()))
        {
            return Err(RestoreError::Agent {
                code,
                message: p
                    .error
                    .unwrap_or_else(|| "the agent could not compare them".into()),
            });
        }
        let room = (MAX_DIFF_CHANGES as usize).saturating_sub(view.changes.len());
        if p.changes.len() > room {
            view.truncated = true;
        }
        view.changes.extend(p.changes.into_iter().take(room));
        view.truncated |= p.truncated;
        if let Some(s) = p.stats {
            view.stats = s;
        }
    }
    Ok(view)
}

/// What the restore wizard needs to know about a host.
#[derive(Debug, Serialize)]
pub struct RestoreInfo {
    /// Host.
    pub host_id: String,
    /// Whether its agent is connected now.
    pub online: bool,
    /// The agent's effective user id (`null`: not reported since the server started, or an
    /// agent too old to say).
    pub agent_uid: Option<u32>,
    /// `agent_uid == 0`.
    pub agent_is_root: Option<bool>,
    /// restic on the host.
    pub restic_version: String,
    /// The overwrite policies its restic can honour.
    pub overwrite_policies: Vec<&'static str>,
    /// Whether its restic reports restore progress itself (0.16+); before, the agent counts
    /// what appears under the target.
    pub restic_reports_progress: bool,
}

fn restic_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.').map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    }
}

/// The overwrite policies a host's restic honours (`--overwrite` arrived in 0.17).
pub fn overwrite_policies(restic_version: &str) -> Vec<&'static str> {
    if restic_minor(restic_version).is_some_and(|v| v >= (0, 17)) {
        vec!["always", "if-changed", "if-newer", "never"]
    } else {
        vec!["always"]
    }
}

/// `GET /api/hosts/{id}/restore-info`.
pub async fn restore_info(state: &AppState, host_id: &str) -> Result<RestoreInfo, AppError> {
    let host = require_host(state, host_id).await?;
    let uid = state.agents.calls.uid(host_id);
    let v = restic_minor(&host.restic_version);
    Ok(RestoreInfo {
        host_id: host.id,
        online: state.agents.is_connected(host_id),
        agent_uid: uid,
        agent_is_root: uid.map(|u| u == 0),
        overwrite_policies: overwrite_policies(&host.restic_version),
        restic_reports_progress: v.is_some_and(|v| v >= (0, 16)),
        restic_version: host.restic_version,
    })
}

/// `POST /api/hosts/{id}/restores` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A snapshot of the host in the path (full or short id).
    pub snapshot_id: String,
    /// Paths inside the snapshot to restore (everything when empty).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The host that restores (default: the snapshot's own).
    #[serde(default)]
    pub target_host_id: Option<String>,
    /// Where to (default `/`: the original location).
    #[serde(default)]
    pub target_path: Option<String>,
    /// `always` (default), `if-changed`, `if-newer`, `never` (the last three need restic
    /// 0.17 on the target).
    #[serde(default)]
    pub overwrite: Option<String>,
}

/// The snapshots `id` names: the one with that full id, or every one it is a prefix of.
pub fn matching_snapshots<'a>(
    snapshots: &'a [projections::jobs::SnapshotView],
    id: &str,
) -> Vec<&'a projections::jobs::SnapshotView> {
    match snapshots.iter().find(|s| s.id == id) {
        Some(exact) => vec![exact],
        None => snapshots.iter().filter(|s| s.id.starts_with(id)).collect(),
    }
}

/// A restore request checked against the read models, before anything is written: what
/// [`create`] would run. The wizard's review step shows it.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// The snapshot's full id.
    pub snapshot_id: String,
    /// Paths inside the snapshot (empty: all of it).
    pub paths: Vec<String>,
    /// Where they land (`/`: the original location).
    pub target_path: String,
    /// Overwrite policy.
    pub overwrite: Overwrite,
    /// The host that restores.
    pub target: projections::hosts::Host,
    /// The host whose snapshot it is.
    pub source_host_id: String,
    /// Whether the target differs from the source (a temporary read credential is granted).
    pub cross: bool,
}

/// Checks a restore request: paths, target, overwrite policy against the target's restic,
/// the snapshot among the source's, and that the target's agent is connected.
pub async fn plan(
    state: &AppState,
    source_host_id: &str,
    req: RestoreRequest,
) -> Result<RestorePlan, AppError> {
    let snapshot_id = validate_snapshot_id("snapshot_id", req.snapshot_id.trim())?;
    if req.paths.len() > 1000 {
        return Err(DomainError::invalid("paths", "at most 1000 paths per restore").into());
    }
    let paths = req
        .paths
        .iter()
        .map(|p| validate_path("paths", p))
        .collect::<Result<Vec<_>, _>>()?;
    // The job travels in one frame to the agent.
    if paths.iter().map(String::len).sum::<usize>() > MAX_PATHS_BYTES {
        return Err(DomainError::invalid(
            "paths",
            format!("are too long together (at most {MAX_PATHS_BYTES} bytes): restore their parent directory instead"),
        )
        .into());
    }
    let target_path = match req.target_path.as_deref().map(str::trim) {
        None | Some("") => "/".to_string(),
        Some(t) => validate_path("target_path", t)?,
    };
    let overwrite = match req.overwrite.as_deref() {
        None | Some("") => Overwrite::Always,
        Some(o) => Overwrite::parse(o).ok_or_else(|| {
            DomainError::invalid("overwrite", "must be always, if-changed, if-newer or never")
        })?,
    };
    let target_host_id = req
        .target_host_id
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| source_host_id.to_string());
    let cross = target_host_id != source_host_id;

    // The snapshot must be one the source host reported.
    let (sid, tid) = (source_host_id.to_string(), target_host_id.clone());
    let (full_id, target) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            if projections::hosts::get(c, &sid)?.is_none() {
                return Err(AppError::NotFound(format!("no host {sid}")));
            }
            let target = projections::hosts::get(c, &tid)?.ok_or_else(|| {
                DomainError::invalid("target_host_id", "names no host")
            })?;
            let snapshots = projections::jobs::snapshots(c, &sid)?;
            match matching_snapshots(&snapshots, &snapshot_id).as_slice() {
                [one] => Ok((one.id.clone(), target)),
                [] => Err(AppError::NotFound(format!(
                    "host {sid} has no snapshot {snapshot_id} (refresh its snapshot list if it is new)"
                ))),
                _ => Err(DomainError::invalid(
                    "snapshot_id",
                    "matches several snapshots: give more of it",
                )
                .into()),
            }
        })
        .await?;
    if overwrite != Overwrite::Always
        && restic_minor(&target.restic_version).is_some_and(|v| v < (0, 17))
    {
        return Err(DomainError::invalid(
            "overwrite",
            format!(
                "{} needs restic 0.17 or newer on the target host, which has {} (it always overwrites)",
                overwrite.as_str(),
                target.restic_version
            ),
        )
        .into());
    }
    if !state.agents.is_connected(&target_host_id) {
        return Err(DomainError::HostOffline.into());
    }
    Ok(RestorePlan {
        snapshot_id: full_id,
        paths,
        target_path,
        overwrite,
        target,
        source_host_id: source_host_id.to_string(),
        cross,
    })
}

/// Creates a restore job of `source_host_id`'s snapshot on the target host and sends it.
pub async fn create(
    state: &AppState,
    actor: Actor,
    source_host_id: &str,
    req: RestoreRequest,
) -> Result<String, AppError> {
    let RestorePlan {
        snapshot_id: full_id,
        paths,
        target_path,
        overwrite,
        target,
        cross,
        ..
    } = plan(state, source_host_id, req).await?;
    let target_host_id = target.id;
    let job_id = new_id();
    let vault = state.vault.clone();
    let (jid, source, tid) = (
        job_id.clone(),
        source_host_id.to_string(),
        target_host_id.clone(),
    );
    let msg = state
        .store
        .write(move |uow| -> Result<JobRunMsg, AppError> {
            crate::sources::require_live_host(uow.conn(), &tid)?;
            crate::sources::require_live_host(uow.conn(), &source)?;
            let mut params = JobParams {
                paths,
                snapshot_id: Some(full_id),
                target: Some(target_path),
                overwrite: Some(overwrite),
                source_host_id: cross.then(|| source.clone()),
                ..Default::default()
            };
            if let Some(s) = projections::config::settings(uow.conn(), &tid)? {
                params.limit_download_kbps = s.bandwidth.down_kbps;
            }
            let mut events = vec![
                JobQueued {
                    job_id: jid.clone(),
                    host_id: tid.clone(),
                    kind: JobKind::Restore,
                    params: params.clone(),
                    trigger: Trigger::Manual,
                    source_group_id: None,
                    schedule_id: None,
                    pending_run_id: None,
                }
                .into(),
                JobDispatched {
                    job_id: jid.clone(),
                    host_id: tid.clone(),
                }
                .into(),
            ];
            let source_repo = if cross {
                let creds = crate::hosts::open(
                    &vault,
                    uow.conn(),
                    &crate::hosts::credentials_ref(&source),
                )?
                .ok_or_else(|| AppError::BadRequest {
                    code: "no_credentials",
                    message: format!(
                        "host {source} has no repository credentials to read its snapshots with"
                    ),
                })?;
                let r = credential_ref(&jid);
                let now = uow.now().to_string();
                crate::hosts::seal(&vault, uow.conn(), &r, &format!("job-{jid}"), &creds, &now)?;
                events.push(
                    RestoreCredentialGranted {
                        job_id: jid.clone(),
                        source_host_id: source.clone(),
                        target_host_id: tid.clone(),
                        credential_ref: r,
                    }
                    .into(),
                );
                Some(creds)
            } else {
                None
            };
            uow.append(
                AppendRequest::new(format!("job-{jid}"), actor, events)
                    .expecting(ExpectedVersion::NoStream),
            )?;
            Ok(JobRunMsg {
                job_id: jid,
                kind: JobKind::Restore,
                params,
                hooks: Hooks::default(),
                admin_repo: None,
                source_repo,
            })
        })
        .await?;
    let frame = ServerMessage::JobRun(msg).to_frame(new_id(), None);
    // Not sent (the agent just went away): the job waits, and is sent again at its hello.
    state.agents.send(&target_host_id, Outgoing::Frame(frame));
    Ok(job_id)
}

/// The credential a restore job is granted, to send it again with the job (a redelivery
/// after the agent reconnected). `None` for every other job.
pub fn source_repo(
    vault: &Vault,
    conn: &Connection,
    job_id: &str,
    kind: JobKind,
) -> Result<Option<RepoCredentials>, AppError> {
    if kind != JobKind::Restore {
        return Ok(None);
    }
    crate::hosts::open(vault, conn, &credential_ref(job_id))
}

fn has_grant(conn: &Connection, job_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM vault WHERE id = ?1)")?
        .query_row([credential_ref(job_id)], |r| r.get(0))
}

/// Destroys a job's restore credential, if it has one, and records that (one
/// transaction). Safe to call for any job and more than once.
pub async fn revoke(state: &AppState, job_id: &str, reason: &str) -> Result<bool, AppError> {
    let jid = job_id.to_string();
    let has = state
        .store
        .read(move |c| -> Result<bool, AppError> { Ok(has_grant(c, &jid)?) })
        .await?;
    if !has {
        return Ok(false);
    }
    let (jid, reason) = (job_id.to_string(), reason.to_string());
    let vault = state.vault.clone();
    let revoked = state
        .store
        .write(move |uow| -> Result<bool, AppError> {
            if !has_grant(uow.conn(), &jid)? {
                return Ok(false);
            }
            vault.delete(uow.conn(), &credential_ref(&jid))?;
            uow.append(AppendRequest::new(
                format!("job-{jid}"),
                Actor::System("restore".into()),
                vec![RestoreCredentialRevoked {
                    job_id: jid.clone(),
                    reason,
                }
                .into()],
            ))?;
            Ok(true)
        })
        .await?;
    if revoked {
        tracing::info!(job_id, "revoked the restore credential");
    }
    Ok(revoked)
}

/// A job ended (finished or lost): its restore credential goes.
pub async fn job_ended(state: &AppState, job_id: &str, status: domain::jobs::JobStatus) {
    let reason = if status == domain::jobs::JobStatus::Lost {
        "job_lost"
    } else {
        "job_finished"
    };
    if let Err(e) = revoke(state, job_id, reason).await {
        tracing::error!(job_id, error = %e, "could not revoke the restore credential");
    }
}

/// At start-up: revokes every grant whose job is already over (or gone, or whose host was
/// deleted), e.g. because the server stopped between the job's end and the revocation.
pub async fn revoke_stale(state: &AppState) -> Result<usize, AppError> {
    let over = state
        .store
        .read(|c| -> Result<Vec<String>, AppError> {
            let mut stmt =
                c.prepare("SELECT id FROM vault WHERE id LIKE 'restore-cred-%' ORDER BY id")?;
            let ids: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            let mut over = vec![];
            for id in ids {
                let job_id = id.trim_start_matches("restore-cred-").to_string();
                let s = projections::jobs::load_state(c, &job_id)?;
                let over_now = match s.jobs.get(&job_id) {
                    None => true,
                    Some(j) => {
                        j.status.is_final() || projections::hosts::get(c, &j.host_id)?.is_none()
                    }
                };
                if over_now {
                    over.push(job_id);
                }
            }
            Ok(over)
        })
        .await?;
    let mut n = 0;
    for job_id in over {
        if revoke(state, &job_id, "job_over_at_startup").await? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_are_checked_and_normalised() {
        assert_eq!(validate_path("path", "/").unwrap(), "/");
        assert_eq!(validate_path("path", "//srv//www/").unwrap(), "/srv/www");
        assert!(validate_path("path", "srv").is_err());
        assert!(validate_path("path", "").is_err());
        assert!(validate_path("path", "/srv/../etc").is_err());
        assert!(validate_path("path", "/srv\0x").is_err());
        assert!(validate_path("path", "/a\nb").is_err());
        assert!(validate_path("path", &format!("/{}", "a".repeat(4096))).is_err());
        assert_eq!(validate_snapshot_id("s", "ABCDEF12").unwrap(), "abcdef12");
        assert!(validate_snapshot_id("s", "abc").is_err());
        assert!(validate_snapshot_id("s", "latest").is_err());
        assert!(validate_snapshot_id("s", "--help12").is_err());
        assert!(validate_snapshot_id("s", &"a".repeat(65)).is_err());
    }

    #[tokio::test]
    async fn answers_reach_their_question_only() {
        let calls = AgentCalls::default();
        let mut p = calls.open("h1", "r1");
        let ans = |more| {
            AgentAnswer::Ls(SnapshotLsResultMsg {
                request_id: "r1".into(),
                entries: vec![],
                total: 3,
                error: None,
                error_code: None,
                more,
            })
        };
        // Another host's answer to this id, and answers to unknown ids, go nowhere.
        assert!(!calls.answer("h2", "r1", ans(false)));
        assert!(!calls.answer("h1", "r9", ans(false)));
        assert!(calls.answer("h1", "r1", ans(true)));
        assert!(calls.answer("h1", "r1", ans(false)));
        assert!(matches!(p.rx.recv().await, Some(AgentAnswer::Ls(m)) if m.more));
        assert!(matches!(p.rx.recv().await, Some(AgentAnswer::Ls(m)) if !m.more));
        drop(p);
        // Forgotten once dropped: a late answer is refused.
        assert!(!calls.answer("h1", "r1", ans(false)));
        calls.set_uid("h1", Some(1000));
        calls.set_uid("h2", None);
        assert_eq!(calls.uid("h1"), Some(1000));
        assert_eq!(calls.uid("h2"), None);
        assert_eq!(calls.uid("h3"), None);
    }

    #[test]
    fn agent_errors_become_statuses() {
        let status = |code: &str| {
            RestoreError::Agent {
                code: code.into(),
                message: "m".into(),
            }
            .into_response()
            .status()
        };
        assert_eq!(status("snapshot_not_found"), StatusCode::NOT_FOUND);
        assert_eq!(status("path_not_found"), StatusCode::NOT_FOUND);
        assert_eq!(status("not_a_directory"), StatusCode::BAD_REQUEST);
        assert_eq!(status("repo_locked"), StatusCode::CONFLICT);
        assert_eq!(status("restic_failed"), StatusCode::BAD_GATEWAY);
        assert_eq!(status("<script>"), StatusCode::BAD_GATEWAY);
        assert_eq!(
            RestoreError::Timeout(60).into_response().status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            RestoreError::from(DomainError::HostOffline)
                .into_response()
                .status(),
            StatusCode::CONFLICT
        );
    }
}
