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
            Line::Status(Progress {
                percent: (pd * 1000.0).round() / 10.0,
                bytes_done: u(&v, "bytes_done"),
                total_bytes: u(&v, "total_bytes"),
                files_done: u(&v, "files_done"),
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
        None => Line::Ignore,
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
    /// Everything printed on stdout that was not JSON (init, check, unlock on 0.14).
    pub text: Vec<String>,
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
    let fail = |error: String| Outcome {
        status: JobStatus::Failed,
        error: Some(error),
        snapshot_id: None,
        warnings: r.item_errors.clone(),
    };
    if r.cancelled {
        return Outcome {
            status: JobStatus::Cancelled,
            error: Some("cancelled on request".into()),
            snapshot_id: None,
            warnings: vec![],
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
    let first_line = r
        .fatal
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("Fatal: ").to_string())
        .unwrap_or_else(|| "restic failed without saying why".into());
    match r.code {
        Some(0) => Outcome {
            status: JobStatus::Succeeded,
            error: None,
            snapshot_id,
            warnings: r.item_errors.clone(),
        },
        Some(3) if snapshot_id.is_some() || kind != JobKind::Backup => Outcome {
            status: JobStatus::SucceededWithWarnings,
            error: None,
            snapshot_id,
            warnings: r.item_errors.clone(),
        },
        Some(1) if kind == JobKind::Init && already_initialised => Outcome {
            status: JobStatus::Succeeded,
            error: None,
            snapshot_id: None,
            warnings: vec!["the repository was already initialised".into()],
        },
        Some(10) => fail(format!("there is no repository at {repo_url}")),
        Some(11) => fail(format!("the repository is locked: {first_line}")),
        Some(12) => fail("wrong repository password".into()),
        Some(130) | None => fail("restic was interrupted".into()),
        _ if locked => fail(format!("the repository is locked: {first_line}")),
        _ if wrong_password => {
            fail("wrong repository password (restic: no key found for it)".into())
        }
        _ if missing => fail(format!("there is no repository at {repo_url}")),
        Some(c) => fail(format!("restic exited with status {c}: {first_line}")),
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
            if let Some(k) = params.limit_upload_kbps {
                a.push(format!("--limit-upload={k}"));
            }
            a.push("--".into());
            a.extend(params.paths.iter().cloned());
        }
        JobKind::Init => a.extend(["init".into(), "--json".into()]),
        JobKind::Check => a.extend(["check".into()]),
        JobKind::Unlock => a.extend(["unlock".into()]),
        JobKind::Forget | JobKind::Prune | JobKind::Restore => a.push(kind.as_str().into()),
    }
    a
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
                        let _ = events.send(Event::Log("stdout", l.clone()));
                        result.summary = Some(s);
                    }
                    Line::Log(t) => {
                        let _ = events.send(Event::Log("stdout", t.clone()));
                        result.text.push(t);
                    }
                    Line::ItemError(t) => { let _ = events.send(Event::Log("stdout", t.clone())); result.item_errors.push(t); }
                    Line::ExitError(t) => result.fatal.push(t),
                    Line::Ignore => {}
                },
                _ => out_done = true,
            },
            line = err.next_line(), if !err_done => match line {
                Ok(Some(l)) => match parse_line(&l) {
                    Line::ItemError(t) => { let _ = events.send(Event::Log("stderr", t.clone())); result.item_errors.push(t); }
                    Line::ExitError(t) => { let _ = events.send(Event::Log("stderr", t.clone())); result.fatal.push(t); }
                    Line::Log(t) => { let _ = events.send(Event::Log("stderr", t.clone())); result.fatal.push(t); }
                    Line::Status(_) | Line::Summary(_) | Line::Ignore => {}
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

/// SIGINT: restic removes its lock and exits cleanly.
fn interrupt(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
}

/// Runs a short restic command and returns its stdout when it succeeds.
pub async fn output(bin: &str, repo: &RepoCredentials, args: &[&str]) -> Result<String, String> {
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
        assert_eq!(parse_line("[1,2]"), Line::Log("[1,2]".into()));
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
}
