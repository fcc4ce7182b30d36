//! Running restic and reading what it prints.
//!
//! restic runs with `--json` and `RESTIC_PROGRESS_FPS=1`, with the repository and password in
//! its environment (never on the command line, where `ps` shows them). Its output is read
//! tolerantly for 0.14 through 0.19: every field optional, unknown message types ignored,
//! any line that is not JSON kept as a log line. The outcome is classified by exit code on
//! newer versions and by the text of the error on 0.14.

use std::process::Stdio;
use std::time::Duration;

use domain::jobs::{JobKind, JobParams, JobStatus, Progress, Snapshot};
use domain::protocol::RepoCredentials;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

/// One line of restic output, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A `status` line.
    Status(Progress),
    /// The `summary`.
    Summary(Value),
    /// A per-item error (`error` on stderr): the item and the message.
    ItemError(String),
    /// The fatal error of 0.18+ (`exit_error`).
    ExitError(String),
    /// Anything else worth showing.
    Log(String),
    /// A JSON document that is not a message (`forget --json` prints one array). Kept out
    /// of the job log: it can be larger than a frame.
    Document(Value),
    /// JSON restic prints that we do not need (`verbose_status`, …).
    Ignore,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// Understands one line (from stdout or stderr).
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Ignore;
    }
    let Ok(v) = serde_json::from_str::<Value>(trimmed) else {
        return Line::Log(trimmed.to_string());
    };
    if v.is_array() {
        return Line::Document(v);
    }
    if !v.is_object() {
        return Line::Log(trimmed.to_string());
    }
    match v.get("message_type").and_then(Value::as_str) {
        Some("status") => {
            if v.get("action").is_some() {
                // 0.14/0.15 `scan_finished` and friends: not progress.
                return Line::Ignore;
            }
            let pd = v.get("percent_done").and_then(Value::as_f64).unwrap_or(0.0);
            // restore (0.16+) counts `bytes_restored`/`files_restored` instead.
            Line::Status(Progress {
                percent: (pd * 1000.0).round() / 10.0,
                bytes_done: u(&v, "bytes_done").max(u(&v, "bytes_restored")),
                total_bytes: u(&v, "total_bytes"),
                files_done: u(&v, "files_done").max(u(&v, "files_restored")),
                total_files: u(&v, "total_files"),
                seconds_remaining: v.get("seconds_remaining").and_then(Value::as_u64),
            })
        }
        Some("summary") => Line::Summary(v),
        Some("error") => {
            let item = v.get("item").and_then(Value::as_str).unwrap_or("");
            let msg = match v.get("error") {
                Some(Value::Object(e)) => e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let during = v.get("during").and_then(Value::as_str).unwrap_or("");
            let mut text = item.to_string();
            if !during.is_empty() {
                text.push_str(&format!(" ({during})"));
            }
            if !msg.is_empty() {
                text.push_str(&format!(": {msg}"));
            }
            Line::ItemError(text)
        }
        Some("exit_error") => Line::ExitError(
            v.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Some(_) => Line::Ignore,
        None => Line::Document(v),
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The job's status.
    pub status: JobStatus,
    /// A readable error, for failures.
    pub error: Option<String>,
    /// The snapshot made.
    pub snapshot_id: Option<String>,
    /// Unreadable items.
    pub warnings: Vec<String>,
    /// Why it failed, for machines: `repo_locked`, `repo_missing`, `wrong_password`,
    /// `check_failed`, else `restic_failed` (`None` unless failed).
    pub error_code: Option<String>,
}

/// Everything one run produced.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// The summary line.
    pub summary: Option<Value>,
    /// Per-item errors.
    pub item_errors: Vec<String>,
    /// The fatal error text (0.18+ `exit_error`, or plain stderr before).
    pub fatal: Vec<String>,
    /// Whether we interrupted it.
    pub cancelled: bool,
    /// Everything printed on stdout that was not JSON (init, check, prune, unlock on 0.14).
    pub text: Vec<String>,
    /// JSON documents printed on stdout (`forget --json`).
    pub documents: Vec<Value>,
}

/// Turns a run into a job outcome.
pub fn classify(kind: JobKind, r: &RunResult, repo_url: &str) -> Outcome {
    let snapshot_id = r
        .summary
        .as_ref()
        .and_then(|s| s.get("snapshot_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let all_text = r.fatal.join("\n");
    let lower = all_text.to_lowercase();
    let fail = |code: &str, error: String| Outcome {
        status: JobStatus::Failed,
        error: Some(error),
        snapshot_id: None,
        warnings: r.item_errors.clone(),
        error_code: Some(code.to_string()),
    };
    let ok = |status: JobStatus, snapshot_id: Option<String>, warnings: Vec<String>| Outcome {
        status,
        error: None,
        snapshot_id,
        warnings,
        error_code: None,
    };
    if r.cancelled {
        return Outcome {
            status: JobStatus::Cancelled,
            error: Some("cancelled on request".into()),
            snapshot_id: None,
            warnings: vec![],
            error_code: None,
        };
    }
    let locked =
        lower.contains("repository is already locked") || lower.contains("unable to create lock");
    let wrong_password = lower.contains("wrong password") || lower.contains("no key found");
    let missing = lower.contains("is there a repository at the following location")
        || lower.contains("unable to open config file")
        || (lower.contains("repository") && lower.contains("does not exist"));
    let already_initialised = lower.contains("config file already exists")
        || lower.contains("repository master key and config already initialized");
    // `check` on every version ends with `Fatal: repository contains errors` (exit 1).
    let check_errors = kind == JobKind::Check && lower.contains("repository contains errors");
    let first_line = r
        .fatal
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("Fatal: ").to_string())
        .unwrap_or_else(|| "restic failed without saying why".into());
    match r.code {
        Some(0) => ok(JobStatus::Succeeded, snapshot_id, r.item_errors.clone()),
        Some(3) if snapshot_id.is_some() || kind != JobKind::Backup => ok(
            JobStatus::SucceededWithWarnings,
            snapshot_id,
            r.item_errors.clone(),
        ),
        Some(1) if kind == JobKind::Init && already_initialised => ok(
            JobStatus::Succeeded,
            None,
            vec!["the repository was already initialised".into()],
        ),
        Some(10) => fail(
            "repo_missing",
            format!("there is no repository at {repo_url}"),
        ),
        Some(11) => fail(
            "repo_locked",
            format!("the repository is locked: {first_line}"),
        ),
        Some(12) => fail("wrong_password", "wrong repository password".into()),
        Some(130) | None => fail("restic_failed", "restic was interrupted".into()),
        _ if check_errors => fail("check_failed", check_error(&r.fatal)),
        _ if locked => fail(
            "repo_locked",
            format!("the repository is locked: {first_line}"),
        ),
        _ if wrong_password => fail(
            "wrong_password",
            "wrong repository password (restic: no key found for it)".into(),
        ),
        _ if missing => fail(
            "repo_missing",
            format!("there is no repository at {repo_url}"),
        ),
        Some(c) => fail(
            "restic_failed",
            format!("restic exited with status {c}: {first_line}"),
        ),
    }
}

/// A readable error for a failed `check`: the first problem restic named, and how many more
/// there are (restic's retry chatter and its closing `Fatal:` line are not problems).
fn check_error(stderr: &[String]) -> String {
    let problems: Vec<&str> = stderr
        .iter()
        .map(|l| l.trim())
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Fatal:")
                && !l.contains("returned error, retrying after")
        })
        .collect();
    match problems.as_slice() {
        [] => "restic check found errors in the repository".into(),
        [one] => format!("restic check found errors in the repository: {one}"),
        [first, rest @ ..] => format!(
            "restic check found errors in the repository: {first} (and {} more; see the job log)",
            rest.len()
        ),
    }
}

/// Flags restic takes for every command: the bandwidth caps (KiB/s).
pub fn limit_args(params: &JobParams) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(k) = params.limit_upload_kbps {
        a.push(format!("--limit-upload={k}"));
    }
    if let Some(k) = params.limit_download_kbps {
        a.push(format!("--limit-download={k}"));
    }
    a
}

/// Why a job's parameters cannot be run (checked before restic starts).
pub fn refuse(kind: JobKind, params: &JobParams) -> Option<String> {
    match kind {
        JobKind::Forget if params.retention.as_ref().is_none_or(|r| r.is_empty()) => Some(
            "forget needs a retention policy with at least one keep rule; without one restic \
             would keep everything, so it was not run"
                .into(),
        ),
        JobKind::Backup if params.paths.is_empty() => {
            Some("a backup needs at least one path".into())
        }
        JobKind::Restore => crate::restore::refuse(params),
        _ => None,
    }
}

/// restic's arguments for a job (credentials are not here: they go by environment).
pub fn args(kind: JobKind, params: &JobParams, hostname: &str) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    match kind {
        JobKind::Backup => {
            a.extend([
                "backup".into(),
                "--json".into(),
                "--host".into(),
                hostname.into(),
            ]);
            for e in &params.excludes {
                a.push(format!("--exclude={e}"));
            }
            for t in &params.tags {
                a.push(format!("--tag={t}"));
            }
            a.extend(limit_args(params));
            a.push("--".into());
            a.extend(params.paths.iter().cloned());
            return a;
        }
        JobKind::Init => a.extend(["init".into(), "--json".into()]),
        JobKind::Forget => {
            a.extend(["forget".into(), "--json".into()]);
            for t in &params.tags {
                a.push(format!("--tag={t}"));
            }
            a.push("--group-by=host,tags".into());
            if let Some(r) = &params.retention {
                a.extend(r.to_args());
            }
        }
        JobKind::Prune => a.push("prune".into()),
        JobKind::Check => {
            a.push("check".into());
            if let Some(p) = params.check_subset_pct.filter(|p| *p > 0) {
                a.push(format!("--read-data-subset={}%", p.min(100)));
            }
        }
        JobKind::Unlock => a.push("unlock".into()),
        // Restores depend on the restic version: see `crate::restore::args`.
        JobKind::Restore => a.push("restore".into()),
    }
    a.extend(limit_args(params));
    a
}

/// `forget --json` → `{"kept": [ids], "removed": [ids]}` (full ids, every group). restic
/// prints nothing at all when no snapshot matched the tags, which is "kept none, removed
/// none".
pub fn forget_stats(documents: &[Value]) -> Value {
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    let ids = |v: Option<&Value>, into: &mut Vec<Value>| {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(id) = s.get("id").and_then(Value::as_str) {
                into.push(Value::String(id.to_string()));
            }
        }
    };
    for doc in documents {
        for group in doc.as_array().into_iter().flatten() {
            ids(group.get("keep"), &mut kept);
            ids(group.get("remove"), &mut removed);
        }
    }
    serde_json::json!({"kept": kept, "removed": removed})
}

/// The bytes `prune` frees, from its text report: `total prune: N blobs / 195.904 KiB`
/// (0.12 onwards; restic rounds to three decimals, so this is exact only below 1 KiB).
/// restic before 0.12 said `… this frees 1.234 MiB` instead, which is read too.
pub fn prune_bytes_freed(text: &[String]) -> Option<u64> {
    for line in text {
        let l = line.trim();
        let lower = l.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("total prune:") {
            if let Some((_, size)) = rest.split_once('/') {
                return parse_size(size);
            }
        }
        if let Some((_, size)) = lower.split_once("this frees ") {
            return parse_size(size);
        }
    }
    None
}

/// restic's human sizes (`0 B`, `558 B`, `195.904 KiB`, `1.2 GiB`) → bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    let num: f64 = it.next()?.parse().ok()?;
    let unit = it.next().unwrap_or("b").to_ascii_lowercase();
    let unit = unit.trim_end_matches([',', '.', ')']);
    let mult: f64 = match unit {
        "b" | "bytes" => 1.0,
        "kib" | "kb" | "k" => 1024.0,
        "mib" | "mb" | "m" => 1024.0 * 1024.0,
        "gib" | "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "tb" | "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    if !num.is_finite() || num < 0.0 {
        return None;
    }
    Some((num * mult).round() as u64)
}

/// The environment restic needs for a repository.
pub fn env(repo: &RepoCredentials) -> Vec<(String, String)> {
    let mut e = vec![
        ("RESTIC_REPOSITORY".to_string(), repo.url.clone()),
        ("RESTIC_PASSWORD".to_string(), repo.password.clone()),
        ("RESTIC_PROGRESS_FPS".to_string(), "1".to_string()),
    ];
    if let Some(u) = &repo.username {
        e.push(("RESTIC_REST_USERNAME".into(), u.clone()));
    }
    e
}

/// What a running restic reports as it goes.
#[derive(Debug)]
pub enum Event {
    /// Progress.
    Progress(Progress),
    /// A line for the job log: (stream, text).
    Log(&'static str, String),
}

/// Runs restic; reports progress and log lines on `events`; stops it with SIGINT when
/// `cancel` turns true.
pub async fn run(
    bin: &str,
    repo: &RepoCredentials,
    args: &[String],
    events: mpsc::UnboundedSender<Event>,
    mut cancel: watch::Receiver<bool>,
) -> RunResult {
    let mut cmd = if std::path::Path::new("/usr/bin/setpriv").exists() {
        // If the agent dies, restic gets SIGINT instead of running on unsupervised.
        let mut c = tokio::process::Command::new("/usr/bin/setpriv");
        c.args(["--pdeathsig", "INT", "--", bin]);
        c
    } else {
        tokio::process::Command::new(bin)
    };
    cmd.args(args)
        .envs(env(repo))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut result = RunResult::default();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            result.fatal.push(format!("cannot start {bin}: {e}"));
            result.code = Some(127);
            return result;
        }
    };
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut out_done, mut err_done) = (false, false);
    let mut interrupted_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            line = out.next_line(), if !out_done => match line {
                Ok(Some(l)) => match parse_line(&l) {
                    Line::Status(p) => { let _ = events.send(Event::Progress(p)); }
                    Line::Summary(s) => {
                        let _ = events.send(log("stdout", &l));
                        result.summary = Some(s);
                    }
                    Line::Log(t) => {
                        let _ = events.send(log("stdout", &t));
                        result.text.push(t);
                    }
                    Line::ItemError(t) => { let _ = events.send(log("stdout", &t)); result.item_errors.push(t); }
                    Line::ExitError(t) => result.fatal.push(t),
                    Line::Document(d) => result.documents.push(d),
                    Line::Ignore => {}
                },
                _ => out_done = true,
            },
            line = err.next_line(), if !err_done => match line {
                Ok(Some(l)) => match parse_line(&l) {
                    Line::ItemError(t) => { let _ = events.send(log("stderr", &t)); result.item_errors.push(t); }
                    Line::ExitError(t) => { let _ = events.send(log("stderr", &t)); result.fatal.push(t); }
                    Line::Log(t) => { let _ = events.send(log("stderr", &t)); result.fatal.push(t); }
                    Line::Status(_) | Line::Summary(_) | Line::Document(_) | Line::Ignore => {}
                },
                _ => err_done = true,
            },
            _ = cancel.changed(), if interrupted_at.is_none() => {
                if *cancel.borrow() {
                    result.cancelled = true;
                    interrupted_at = Some(tokio::time::Instant::now());
                    if let Some(pid) = pid {
                        interrupt(pid);
                    }
                    let _ = events.send(Event::Log("agent", "cancel requested: interrupting restic".into()));
                }
            },
            _ = tokio::time::sleep(Duration::from_secs(1)), if interrupted_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) => {
                let _ = child.start_kill();
            },
        }
        if out_done && err_done {
            break;
        }
    }
    result.code = child.wait().await.ok().and_then(|s| s.code());
    result
}

/// Longest log line sent, in bytes: a job-log frame holds up to 50 lines and must stay
/// below the protocol's frame limit.
pub const MAX_LOG_LINE: usize = 4096;

/// A log event, the text cut to [`MAX_LOG_LINE`] bytes.
pub fn log(stream: &'static str, text: &str) -> Event {
    Event::Log(stream, clip(text))
}

/// `text` cut to at most [`MAX_LOG_LINE`] bytes (on a character boundary), marked with `…`.
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_LOG_LINE {
        return text.to_string();
    }
    let mut end = MAX_LOG_LINE - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// SIGINT: restic removes its lock and exits cleanly.
fn interrupt(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
}

/// Runs a short restic command and returns its stdout when it succeeds.
pub async fn output(bin: &str, repo: &RepoCredentials, args: &[String]) -> Result<String, String> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .envs(env(repo))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(600), out).await {
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(Ok(o)) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// How a streamed restic command ended.
#[derive(Debug, Clone, Default)]
pub struct Streamed {
    /// Exit code (`None`: killed, or timed out).
    pub code: Option<i32>,
    /// What it printed on stderr (at most 200 lines).
    pub stderr: Vec<String>,
    /// It ran longer than allowed and was killed.
    pub timed_out: bool,
}

impl Streamed {
    /// Exit 0 within the time allowed.
    pub fn ok(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// Runs a restic command whose stdout may be large (`ls`, `diff`), handing each stdout line
/// to `on_line` as it arrives instead of keeping it; kills restic after `limit`.
pub async fn stream(
    bin: &str,
    repo: &RepoCredentials,
    args: &[String],
    limit: Duration,
    mut on_line: impl FnMut(&str),
) -> Streamed {
    let mut result = Streamed::default();
    let mut child = match tokio::process::Command::new(bin)
        .args(args)
        .envs(env(repo))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            result.stderr.push(format!("cannot start {bin}: {e}"));
            result.code = Some(127);
            return result;
        }
    };
    let mut out = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut out_done, mut err_done) = (false, false);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    while !(out_done && err_done) {
        tokio::select! {
            line = out.next_line(), if !out_done => match line {
                Ok(Some(l)) => on_line(&l),
                _ => out_done = true,
            },
            line = err.next_line(), if !err_done => match line {
                Ok(Some(l)) => {
                    if result.stderr.len() < 200 && !l.trim().is_empty() {
                        result.stderr.push(clip(l.trim()));
                    }
                }
                _ => err_done = true,
            },
            _ = &mut deadline => {
                result.timed_out = true;
                let _ = child.start_kill();
                break;
            }
        }
    }
    result.code = child.wait().await.ok().and_then(|s| s.code());
    result
}

/// Parses `restic snapshots --json` (one array; `null` on some versions when empty).
pub fn parse_snapshots(text: &str) -> Result<Vec<Snapshot>, String> {
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| e.to_string())?;
    let arr = match v {
        Value::Array(a) => a,
        Value::Null => vec![],
        _ => return Err("not a list of snapshots".into()),
    };
    let strings = |s: &Value, k: &str| -> Vec<String> {
        s.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(arr
        .iter()
        .filter_map(|s| {
            let id = s.get("id")?.as_str()?.to_string();
            Some(Snapshot {
                short_id: s
                    .get("short_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| id.chars().take(8).collect()),
                id,
                time: s
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                paths: strings(s, "paths"),
                tags: strings(s, "tags"),
                hostname: s
                    .get("hostname")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect())
}

/// Parses `restic stats --json` → `total_size`.
pub fn parse_stats_size(text: &str) -> Option<u64> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    v.get("total_size").and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_lines_of_every_version() {
        // 0.14: percent_done always, zero fields omitted.
        let l = parse_line(
            r#"{"message_type":"status","percent_done":0.5,"total_files":4,"files_done":2,"total_bytes":1000,"bytes_done":500}"#,
        );
        assert_eq!(
            l,
            Line::Status(Progress {
                percent: 50.0,
                bytes_done: 500,
                total_bytes: 1000,
                files_done: 2,
                total_files: 4,
                seconds_remaining: None
            })
        );
        // Early status before anything is counted.
        assert_eq!(
            parse_line(r#"{"message_type":"status","percent_done":0}"#),
            Line::Status(Progress::default())
        );
        // 0.14/0.15 scan_finished is not progress.
        assert_eq!(
            parse_line(
                r#"{"message_type":"status","action":"scan_finished","item":"","duration":0.1,"data_size":10,"total_files":1}"#
            ),
            Line::Ignore
        );
        // 0.17+ adds fields; unknown ones are ignored.
        let l = parse_line(
            r#"{"message_type":"status","seconds_elapsed":3,"seconds_remaining":9,"percent_done":0.25,"total_files":8,"files_done":2,"total_bytes":80,"bytes_done":20,"error_count":1,"current_files":["/a"],"new_field":true}"#,
        );
        assert!(matches!(
            l,
            Line::Status(Progress {
                seconds_remaining: Some(9),
                ..
            })
        ));
        assert_eq!(
            parse_line(r#"{"message_type":"verbose_status","action":"new"}"#),
            Line::Ignore
        );
    }

    #[test]
    fn errors_of_every_version() {
        // 0.14–0.17.0: error is an object without message (or a string).
        assert_eq!(
            parse_line(
                r#"{"message_type":"error","error":{},"during":"archival","item":"/srv/secret"}"#
            ),
            Line::ItemError("/srv/secret (archival)".into())
        );
        // 0.17.1+: error.message.
        assert_eq!(
            parse_line(
                r#"{"message_type":"error","error":{"message":"open /srv/secret: permission denied"},"during":"archival","item":"/srv/secret"}"#
            ),
            Line::ItemError("/srv/secret (archival): open /srv/secret: permission denied".into())
        );
        // 0.18+: exit_error.
        assert_eq!(
            parse_line(
                r#"{"message_type":"exit_error","code":12,"message":"Fatal: wrong password or no key found"}"#
            ),
            Line::ExitError("Fatal: wrong password or no key found".into())
        );
        assert_eq!(
            parse_line("Fatal: unable to open config file"),
            Line::Log("Fatal: unable to open config file".into())
        );
        // forget's one-array document is kept apart, not logged; other JSON scalars are
        // text.
        assert_eq!(parse_line("[1,2]"), Line::Document(json!([1, 2])));
        assert_eq!(parse_line("42"), Line::Log("42".into()));
        assert_eq!(
            parse_line(r#"{"total_size":1}"#),
            Line::Document(json!({"total_size": 1}))
        );
    }

    fn run_with(code: i32, fatal: &[&str]) -> RunResult {
        RunResult {
            code: Some(code),
            fatal: fatal.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_by_exit_code_and_by_text_on_0_14() {
        let url = "/srv/repo";
        // 0.14: everything is exit 1, told apart by text.
        let o = classify(
            JobKind::Backup,
            &run_with(1, &["Fatal: wrong password or no key found"]),
            url,
        );
        assert_eq!(
            (o.status, o.error.as_deref()),
            (
                JobStatus::Failed,
                Some("wrong repository password (restic: no key found for it)")
            )
        );
        let o = classify(JobKind::Backup, &run_with(1, &["unable to create lock in backend: repository is already locked exclusively by PID 7 on h by root (UID 0, GID 0)", "lock was created at 2026-11-28 10:00:00 (1m ago)"]), url);
        assert!(o.error.unwrap().starts_with("the repository is locked: "));
        let o = classify(JobKind::Backup, &run_with(1, &["Fatal: unable to open config file: stat /srv/repo/config: no such file or directory", "Is there a repository at the following location?", "/srv/repo"]), url);
        assert_eq!(
            o.error.as_deref(),
            Some("there is no repository at /srv/repo")
        );
        // Newer versions: by code.
        assert_eq!(
            classify(JobKind::Backup, &run_with(10, &[]), url)
                .error
                .as_deref(),
            Some("there is no repository at /srv/repo")
        );
        assert!(
            classify(JobKind::Backup, &run_with(11, &["Fatal: repo locked"]), url)
                .error
                .unwrap()
                .contains("locked")
        );
        assert_eq!(
            classify(JobKind::Backup, &run_with(12, &[]), url)
                .error
                .as_deref(),
            Some("wrong repository password")
        );
        // Exit 3 with a snapshot: success with warnings.
        let mut r = run_with(3, &[]);
        r.summary = Some(json!({"message_type":"summary","snapshot_id":"abcd1234"}));
        r.item_errors = vec!["/srv/secret (archival): permission denied".into()];
        let o = classify(JobKind::Backup, &r, url);
        assert_eq!(o.status, JobStatus::SucceededWithWarnings);
        assert_eq!(o.snapshot_id.as_deref(), Some("abcd1234"));
        assert_eq!(o.warnings.len(), 1);
        // Init of an existing repository is a soft success.
        let o = classify(JobKind::Init, &run_with(1, &["Fatal: create key in repository at /srv/repo failed: repository master key and config already initialized"]), url);
        assert_eq!(o.status, JobStatus::Succeeded);
        let o = classify(
            JobKind::Init,
            &run_with(1, &["Fatal: config file already exists"]),
            url,
        );
        assert_eq!(o.status, JobStatus::Succeeded);
        // Unknown codes are failures; cancellation wins.
        assert_eq!(
            classify(JobKind::Backup, &run_with(42, &["boom"]), url)
                .error
                .as_deref(),
            Some("restic exited with status 42: boom")
        );
        let mut c = run_with(130, &[]);
        c.cancelled = true;
        assert_eq!(
            classify(JobKind::Backup, &c, url).status,
            JobStatus::Cancelled
        );
    }

    #[test]
    fn snapshots_and_stats() {
        let s = parse_snapshots(r#"[{"time":"2026-11-28T10:00:00.1+00:00","tree":"t","paths":["/srv"],"hostname":"web-1","username":"root","tags":["daily"],"id":"0123456789abcdef","short_id":"01234567"},{"id":"fedcba98"}]"#).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tags, ["daily"]);
        assert_eq!(s[1].short_id, "fedcba98");
        assert!(parse_snapshots("[]").unwrap().is_empty());
        assert!(parse_snapshots("null").unwrap().is_empty());
        assert!(parse_snapshots("{}").is_err());
        assert_eq!(
            parse_stats_size(r#"{"total_size":1234,"total_file_count":3,"snapshots_count":1}"#),
            Some(1234)
        );
    }

    #[test]
    fn backup_arguments_carry_no_credentials() {
        let a = args(
            JobKind::Backup,
            &JobParams {
                paths: vec!["/srv".into(), "-weird".into()],
                excludes: vec!["*.tmp".into()],
                tags: vec!["daily".into()],
                limit_upload_kbps: Some(100),
                ..Default::default()
            },
            "web-1",
        );
        assert_eq!(
            a,
            [
                "backup",
                "--json",
                "--host",
                "web-1",
                "--exclude=*.tmp",
                "--tag=daily",
                "--limit-upload=100",
                "--",
                "/srv",
                "-weird"
            ]
        );
        let env = env(&RepoCredentials {
            url: "/r".into(),
            username: None,
            password: "pw".into(),
        });
        assert!(env.iter().any(|(k, v)| k == "RESTIC_PASSWORD" && v == "pw"));
        assert!(env
            .iter()
            .any(|(k, v)| k == "RESTIC_PROGRESS_FPS" && v == "1"));
    }

    fn sample_lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn error_codes_for_machines() {
        let url = "/srv/repo";
        let code =
            |kind, code, fatal: &[&str]| classify(kind, &run_with(code, fatal), url).error_code;
        let c = |s: &str| Some(s.to_string());
        assert_eq!(
            code(
                JobKind::Backup,
                1,
                &["Fatal: wrong password or no key found"]
            ),
            c("wrong_password")
        );
        assert_eq!(code(JobKind::Backup, 12, &[]), c("wrong_password"));
        assert_eq!(
            code(JobKind::Prune, 1, &["unable to create lock in backend: repository is already locked by PID 1 on h by root"]),
            c("repo_locked")
        );
        assert_eq!(code(JobKind::Forget, 11, &["Fatal: x"]), c("repo_locked"));
        assert_eq!(
            code(JobKind::Check, 1, &["Fatal: unable to open config file: stat /srv/repo/config: no such file or directory", "Is there a repository at the following location?"]),
            c("repo_missing")
        );
        assert_eq!(code(JobKind::Unlock, 10, &[]), c("repo_missing"));
        assert_eq!(code(JobKind::Backup, 42, &["boom"]), c("restic_failed"));
        assert_eq!(code(JobKind::Backup, 0, &[]), None);
        // "repository contains errors" only means a failed check for check jobs.
        assert_eq!(
            code(JobKind::Check, 1, &["Fatal: repository contains errors"]),
            c("check_failed")
        );
        assert_eq!(
            code(JobKind::Prune, 1, &["Fatal: repository contains errors"]),
            c("restic_failed")
        );
        let mut cancelled = run_with(130, &[]);
        cancelled.cancelled = true;
        assert_eq!(classify(JobKind::Backup, &cancelled, url).error_code, None);
    }

    /// stderr of a real restic 0.14 `check --read-data-subset=100%`, once with a damaged
    /// pack and once with a missing one (with restic's retry chatter).
    #[test]
    fn failed_checks_of_restic_0_14() {
        let url = "/srv/repo";
        let damaged = sample_lines(include_str!("../testdata/restic-0.14/check-damaged.stderr"));
        let o = classify(
            JobKind::Check,
            &RunResult {
                code: Some(1),
                fatal: damaged,
                ..Default::default()
            },
            url,
        );
        assert_eq!(o.status, JobStatus::Failed);
        assert_eq!(o.error_code.as_deref(), Some("check_failed"));
        assert_eq!(
            o.error.as_deref(),
            Some("restic check found errors in the repository: Pack ID does not match, want 75fd5ce66d340f30d12c568aed69adbc655a46e10404a692dc6bf906b9074071, got 795084a901410a2abe004ca4777a749b2a36432a39218aed2f0a223ed0053482")
        );
        let missing = sample_lines(include_str!(
            "../testdata/restic-0.14/check-missing-pack.stderr"
        ));
        let o = classify(
            JobKind::Check,
            &RunResult {
                code: Some(1),
                fatal: missing,
                ..Default::default()
            },
            url,
        );
        assert_eq!(o.error_code.as_deref(), Some("check_failed"));
        assert_eq!(
            o.error.as_deref(),
            Some("restic check found errors in the repository: pack 75fd5ce66d340f30d12c568aed69adbc655a46e10404a692dc6bf906b9074071: does not exist (and 1 more; see the job log)")
        );
        // A clean check prints its verdict on stdout and exits 0.
        let ok = RunResult {
            code: Some(0),
            text: sample_lines(include_str!("../testdata/restic-0.14/check-ok.txt")),
            ..Default::default()
        };
        assert!(ok.text.iter().any(|l| l == "no errors were found"));
        assert_eq!(
            classify(JobKind::Check, &ok, url).status,
            JobStatus::Succeeded
        );
    }

    /// `forget --json` of a real restic 0.14: one group, one kept, one removed.
    #[test]
    fn forget_output_of_restic_0_14() {
        let text = include_str!("../testdata/restic-0.14/forget.json");
        let docs: Vec<Value> = text
            .lines()
            .filter_map(|l| match parse_line(l) {
                Line::Document(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            forget_stats(&docs),
            json!({
                "kept": ["d7e64723c4b8a18404a7dd72a9d58c628f48e11b864ac7015162b8549eaa7b7f"],
                "removed": ["3a7f0c4a9add436b3362d25581dc775caae64a7e9e5853cae238b356786b7bee"],
            })
        );
        // restic 0.14 prints nothing when no snapshot has the tag.
        assert!(include_str!("../testdata/restic-0.14/forget-nothing-matched.json").is_empty());
        assert_eq!(forget_stats(&[]), json!({"kept": [], "removed": []}));
        // Several groups are summed; unknown shapes are ignored.
        let two = json!([
            {"keep": [{"id": "a"}], "remove": [{"id": "b"}, {"short_id": "no-id"}]},
            {"keep": [{"id": "c"}], "remove": null}
        ]);
        assert_eq!(
            forget_stats(&[two]),
            json!({"kept": ["a", "c"], "removed": ["b"]})
        );
    }

    /// `prune` of a real restic 0.14, and the wording of older and newer versions.
    #[test]
    fn prune_output() {
        let text = sample_lines(include_str!("../testdata/restic-0.14/prune.txt"));
        // "total prune:           3 blobs / 195.904 KiB"
        assert_eq!(prune_bytes_freed(&text), Some(200_606));
        let nothing = sample_lines(include_str!("../testdata/restic-0.14/prune-nothing.txt"));
        assert_eq!(prune_bytes_freed(&nothing), Some(0));
        let lines = |s: &str| sample_lines(s);
        // 0.17+ pads differently and may print larger units.
        assert_eq!(
            prune_bytes_freed(&lines("to repack:  1 blobs / 1 KiB\ntotal prune:       13624 blobs / 4.212 GiB\nremaining: 1 blobs / 2 B")),
            Some((4.212_f64 * 1024.0 * 1024.0 * 1024.0).round() as u64)
        );
        // Before 0.12.
        assert_eq!(
            prune_bytes_freed(&lines(
                "will delete 3 packs and rewrite 2 packs, this frees 1.500 MiB"
            )),
            Some(1_572_864)
        );
        assert_eq!(prune_bytes_freed(&lines("done")), None);
        assert_eq!(parse_size("558 B"), Some(558));
        assert_eq!(parse_size("2.000 TiB"), Some(2 << 40));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("1 parsec"), None);
    }

    #[test]
    fn stats_of_restic_0_14() {
        assert_eq!(
            parse_stats_size(include_str!(
                "../testdata/restic-0.14/stats-restore-size.json"
            )),
            Some(600_006)
        );
        assert_eq!(
            parse_stats_size(include_str!("../testdata/restic-0.14/stats-raw-data.json")),
            Some(300_665)
        );
    }

    fn p(f: impl FnOnce(&mut JobParams)) -> JobParams {
        let mut x = JobParams::default();
        f(&mut x);
        x
    }

    #[test]
    fn arguments_of_every_kind() {
        let caps = |x: &mut JobParams| {
            x.limit_upload_kbps = Some(10);
            x.limit_download_kbps = Some(20);
        };
        assert_eq!(args(JobKind::Init, &p(|_| {}), "h"), ["init", "--json"]);
        assert_eq!(
            args(JobKind::Init, &p(caps), "h"),
            ["init", "--json", "--limit-upload=10", "--limit-download=20"]
        );
        let forget = p(|x| {
            x.tags = vec!["default".into(), "db".into()];
            x.retention = Some(domain::sources::RetentionPolicy {
                keep_daily: Some(7),
                keep_within: Some("30d".into()),
                ..Default::default()
            });
            x.limit_upload_kbps = Some(5);
        });
        assert_eq!(
            args(JobKind::Forget, &forget, "h"),
            [
                "forget",
                "--json",
                "--tag=default",
                "--tag=db",
                "--group-by=host,tags",
                "--keep-daily=7",
                "--keep-within=30d",
                "--limit-upload=5"
            ]
        );
        assert_eq!(args(JobKind::Prune, &p(|_| {}), "h"), ["prune"]);
        assert_eq!(
            args(JobKind::Prune, &p(caps), "h"),
            ["prune", "--limit-upload=10", "--limit-download=20"]
        );
        assert_eq!(args(JobKind::Check, &p(|_| {}), "h"), ["check"]);
        assert_eq!(
            args(JobKind::Check, &p(|x| x.check_subset_pct = Some(0)), "h"),
            ["check"]
        );
        assert_eq!(
            args(JobKind::Check, &p(|x| x.check_subset_pct = Some(5)), "h"),
            ["check", "--read-data-subset=5%"]
        );
        assert_eq!(args(JobKind::Unlock, &p(|_| {}), "h"), ["unlock"]);
        // Download caps reach backups too, before the paths.
        let b = args(
            JobKind::Backup,
            &p(|x| {
                x.paths = vec!["/srv".into()];
                x.limit_download_kbps = Some(7);
            }),
            "h",
        );
        assert_eq!(
            b,
            [
                "backup",
                "--json",
                "--host",
                "h",
                "--limit-download=7",
                "--",
                "/srv"
            ]
        );
    }

    /// Whatever the job, the password and the repository stay off the command line.
    #[test]
    fn credentials_never_reach_the_command_line() {
        let repo = RepoCredentials {
            url: "rest:https://u:Secret-Url-Pw@b/h".into(),
            username: Some("u".into()),
            password: "Secret-Pw".into(),
        };
        let params = p(|x| {
            x.paths = vec!["/srv".into()];
            x.tags = vec!["t".into()];
            x.retention = Some(domain::sources::RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            });
            x.check_subset_pct = Some(10);
        });
        for kind in [
            JobKind::Init,
            JobKind::Backup,
            JobKind::Forget,
            JobKind::Prune,
            JobKind::Check,
            JobKind::Unlock,
        ] {
            let a = args(kind, &params, "h").join(" ");
            assert!(!a.contains("Secret"), "{kind:?}: {a}");
            assert!(!a.contains("rest:"), "{kind:?}: {a}");
        }
        let e = env(&repo);
        assert!(e
            .iter()
            .any(|(k, v)| k == "RESTIC_REPOSITORY" && v == &repo.url));
        assert!(e
            .iter()
            .any(|(k, v)| k == "RESTIC_PASSWORD" && v == "Secret-Pw"));
        assert!(e
            .iter()
            .any(|(k, v)| k == "RESTIC_REST_USERNAME" && v == "u"));
    }

    #[test]
    fn refusals() {
        assert!(refuse(JobKind::Forget, &p(|_| {}))
            .unwrap()
            .contains("retention"));
        assert!(refuse(
            JobKind::Forget,
            &p(|x| x.retention = Some(Default::default()))
        )
        .is_some());
        assert!(refuse(
            JobKind::Forget,
            &p(|x| x.retention = Some(domain::sources::RetentionPolicy {
                keep_within: Some("7d".into()),
                ..Default::default()
            }))
        )
        .is_none());
        assert!(refuse(JobKind::Backup, &p(|_| {})).is_some());
        assert!(refuse(JobKind::Restore, &p(|_| {})).is_some());
        assert!(refuse(
            JobKind::Restore,
            &p(|x| x.snapshot_id = Some("abcd1234".into()))
        )
        .is_none());
        assert!(refuse(JobKind::Prune, &p(|_| {})).is_none());
    }

    #[test]
    fn long_lines_are_clipped_for_the_frame_limit() {
        let long = "é".repeat(MAX_LOG_LINE);
        let c = clip(&long);
        assert!(c.len() <= MAX_LOG_LINE);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
