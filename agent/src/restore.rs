//! Restore jobs: `restic restore SNAP --target T --include P…`, with what each restic
//! version can do.
//!
//! | restic      | overwrite                                   | progress                      |
//! |-------------|---------------------------------------------|-------------------------------|
//! | 0.14, 0.15  | always replaces existing files (no flag)    | none: the agent scans the target |
//! | 0.16        | always replaces existing files (no flag)    | `--json` `status`/`summary`   |
//! | 0.17+       | `--overwrite always\|if-changed\|if-newer\|never` | `--json` `status`/`summary` |
//!
//! On restic before 0.17 only `always` can be honoured; any other policy is refused before
//! restic starts rather than silently overwriting. Without restic's own progress (before
//! 0.16) the agent lists the chosen paths first (`ls --json --recursive`, which gives the
//! total files and bytes), then every second counts the files under the target that restic
//! has touched since it started (their ctime), and reports that as `job.progress`.
//!
//! Include paths are matched by restic as patterns; the agent escapes `\ * ? [` so a path
//! means exactly that path. Files land at `target + path` (`/` restores them where they
//! were).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use domain::jobs::{JobParams, Overwrite, Progress};
use domain::protocol::RepoCredentials;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::restic::{self, Event, RunResult};

/// How long the listing that gives the totals may take before the restore starts anyway.
const TOTALS_LIMIT: Duration = Duration::from_secs(120);
/// Entries one target scan looks at, at most.
const SCAN_CAP: u64 = 2_000_000;

/// A restic version, `(major, minor)`; `(0, 0)` when unknown (treated as the oldest).
pub fn parse_version(v: &str) -> (u32, u32) {
    let mut it = v.trim().split('.').map(|p| p.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 0),
    }
}

/// restic prints JSON progress for restore (0.16+).
pub fn json_progress(v: (u32, u32)) -> bool {
    v >= (0, 16)
}

/// restic knows `--overwrite` (0.17+).
pub fn supports_overwrite(v: (u32, u32)) -> bool {
    v >= (0, 17)
}

/// Why a restore's parameters cannot run (before any version is known).
pub fn refuse(params: &JobParams) -> Option<String> {
    match params.snapshot_id.as_deref() {
        None => return Some("a restore needs a snapshot id".into()),
        Some(s) if !crate::browse::valid_snapshot_id(s) => {
            return Some("the snapshot id must be 4 to 64 hex characters".into())
        }
        _ => {}
    }
    if let Some(t) = &params.target {
        if crate::browse::normalise(t).is_none() {
            return Some(format!("the restore target {t:?} must be an absolute path"));
        }
    }
    if let Some(p) = params
        .paths
        .iter()
        .find(|p| crate::browse::normalise(p).is_none())
    {
        return Some(format!("the path {p:?} must be absolute"));
    }
    None
}

/// `path` as an exact restic include pattern.
pub fn escape_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '\\' | '*' | '?' | '[') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The target directory (`/` when none was given).
pub fn target(params: &JobParams) -> String {
    params
        .target
        .as_deref()
        .and_then(crate::browse::normalise)
        .unwrap_or_else(|| "/".into())
}

/// restic's arguments for a restore with restic `version`.
pub fn args(params: &JobParams, version: (u32, u32)) -> Result<Vec<String>, String> {
    if let Some(why) = refuse(params) {
        return Err(why);
    }
    let snapshot = params.snapshot_id.clone().unwrap_or_default();
    let overwrite = params.overwrite.unwrap_or_default();
    let mut a: Vec<String> = vec![
        "restore".into(),
        "--json".into(),
        snapshot,
        "--target".into(),
        target(params),
    ];
    for p in &params.paths {
        a.push(format!("--include={}", escape_pattern(p)));
    }
    if supports_overwrite(version) {
        a.push(format!("--overwrite={}", overwrite.as_str()));
    } else if overwrite != Overwrite::Always {
        return Err(format!(
            "restic {}.{} always replaces existing files; overwrite={} needs restic 0.17 or newer",
            version.0,
            version.1,
            overwrite.as_str()
        ));
    }
    a.extend(restic::limit_args(params));
    Ok(a)
}

/// Where a snapshot path lands under the target.
pub fn landing(target: &str, path: &str) -> PathBuf {
    PathBuf::from(domain::jobs::restore_landing(target, path))
}

/// What the chosen paths hold, from `restic ls --json --recursive SNAP [PATH…]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The snapshot's own paths (from its first line).
    pub snapshot_paths: Vec<String>,
    /// The snapshot line was seen.
    pub snapshot_seen: bool,
}

impl Totals {
    /// Takes one stdout line.
    pub fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            return;
        };
        let kind = v
            .get("struct_type")
            .or_else(|| v.get("message_type"))
            .and_then(Value::as_str);
        match kind {
            Some("snapshot") => {
                self.snapshot_seen = true;
                self.snapshot_paths = v
                    .get("paths")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
            }
            Some("node") if v.get("type").and_then(Value::as_str) == Some("file") => {
                self.files += 1;
                self.bytes += v.get("size").and_then(Value::as_u64).unwrap_or(0);
            }
            _ => {}
        }
    }
}

/// Lists what the restore will write (`None` when restic could not tell in time).
pub async fn totals(bin: &str, repo: &RepoCredentials, params: &JobParams) -> Option<Totals> {
    let mut args: Vec<String> = vec![
        "ls".into(),
        "--json".into(),
        "--recursive".into(),
        params.snapshot_id.clone()?,
    ];
    args.extend(params.paths.iter().cloned());
    let mut t = Totals::default();
    let run = restic::stream(bin, repo, &args, TOTALS_LIMIT, |l| t.line(l)).await;
    (run.ok() && t.snapshot_seen).then_some(t)
}

/// Counts the regular files under `roots` whose status changed at or after `since` (restic
/// writes them, then sets their times and modes: either changes the ctime), and their
/// current sizes. Symlinks are not followed.
pub fn scan(roots: &[PathBuf], since: SystemTime) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        - 1;
    let (mut files, mut bytes, mut seen) = (0u64, 0u64, 0u64);
    let mut stack: Vec<PathBuf> = roots.to_vec();
    while let Some(p) = stack.pop() {
        seen += 1;
        if seen > SCAN_CAP {
            break;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if m.is_file() && m.ctime() >= since {
            files += 1;
            bytes += m.len();
        }
    }
    (files, bytes)
}

fn progress(files: u64, bytes: u64, t: Option<&Totals>) -> Progress {
    let (total_files, total_bytes) = t.map_or((0, 0), |t| (t.files, t.bytes));
    let percent = if total_bytes > 0 {
        ((bytes.min(total_bytes) as f64 / total_bytes as f64) * 1000.0).round() / 10.0
    } else if total_files > 0 {
        ((files.min(total_files) as f64 / total_files as f64) * 1000.0).round() / 10.0
    } else {
        0.0
    };
    Progress {
        percent,
        bytes_done: bytes,
        total_bytes,
        files_done: files,
        total_files,
        seconds_remaining: None,
    }
}

/// Reports scan progress until dropped: every second, or less often when a scan is slow.
async fn poll(
    roots: Vec<PathBuf>,
    since: SystemTime,
    totals: Option<Totals>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut every = Duration::from_secs(1);
    loop {
        tokio::time::sleep(every).await;
        let started = std::time::Instant::now();
        let r = roots.clone();
        let Ok((files, bytes)) = tokio::task::spawn_blocking(move || scan(&r, since)).await else {
            return;
        };
        every = (started.elapsed() * 5).max(Duration::from_secs(1));
        let _ = events.send(Event::Progress(progress(files, bytes, totals.as_ref())));
    }
}

/// Runs the restore; returns restic's result and the job's stats.
pub async fn run(
    bin: &str,
    repo: &RepoCredentials,
    params: &JobParams,
    version: (u32, u32),
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) -> (RunResult, Option<Value>) {
    let say = |t: String| {
        let _ = events.send(restic::log("agent", &t));
    };
    let args = match args(params, version) {
        Ok(a) => a,
        Err(e) => {
            return (
                RunResult {
                    code: Some(1),
                    fatal: vec![e],
                    ..Default::default()
                },
                None,
            )
        }
    };
    let target = target(params);
    let overwrite = params.overwrite.unwrap_or_default();
    say(format!(
        "restoring snapshot {} to {target} (overwrite: {}; restic {}.{})",
        params.snapshot_id.as_deref().unwrap_or(""),
        overwrite.as_str(),
        version.0,
        version.1
    ));
    if json_progress(version) {
        let result = restic::run(bin, repo, &args, events.clone(), cancel).await;
        let s = result.summary.clone().unwrap_or(Value::Null);
        let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut stats = json!({
            "files_restored": n("files_restored"),
            "bytes_restored": n("bytes_restored"),
            "target": target,
        });
        for k in [
            "files_skipped",
            "bytes_skipped",
            "total_files",
            "total_bytes",
        ] {
            if let Some(v) = s.get(k) {
                stats[k] = v.clone();
            }
        }
        return (result, Some(stats));
    }
    // restic 0.14/0.15: no progress of its own.
    let totals = totals(bin, repo, params).await;
    match &totals {
        Some(t) => say(format!(
            "{} files, {} bytes to restore; restic {}.{} reports no progress, so the agent counts what appears under the target",
            t.files, t.bytes, version.0, version.1
        )),
        None => say("could not list the snapshot's files beforehand: progress shows what appears under the target, without totals".into()),
    }
    let sources: Vec<String> = if params.paths.is_empty() {
        totals
            .as_ref()
            .map(|t| t.snapshot_paths.clone())
            .unwrap_or_default()
    } else {
        params.paths.clone()
    };
    let roots: Vec<PathBuf> = sources.iter().map(|p| landing(&target, p)).collect();
    let since = SystemTime::now();
    let result = {
        let restore = restic::run(bin, repo, &args, events.clone(), cancel);
        let poller = poll(roots.clone(), since, totals.clone(), events.clone());
        tokio::pin!(restore, poller);
        tokio::select! {
            r = &mut restore => r,
            // The poller only stops when a scan panicked: restic goes on regardless.
            _ = &mut poller => restore.await,
        }
    };
    let r = roots.clone();
    let (files, bytes) = tokio::task::spawn_blocking(move || scan(&r, since))
        .await
        .unwrap_or((0, 0));
    // A successful restic restored the whole listed set (some files may have been there
    // already, unchanged, which a ctime scan cannot tell from untouched ones).
    let (files, bytes) = match (&totals, result.code) {
        (Some(t), Some(0)) if !result.cancelled => (t.files, t.bytes),
        _ => (files, bytes),
    };
    let _ = events.send(Event::Progress(progress(files, bytes, totals.as_ref())));
    let mut stats = json!({
        "files_restored": files,
        "bytes_restored": bytes,
        "target": target,
    });
    if let Some(t) = &totals {
        stats["total_files"] = t.files.into();
        stats["total_bytes"] = t.bytes.into();
    }
    (result, Some(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut JobParams)) -> JobParams {
        let mut p = JobParams {
            snapshot_id: Some("abcd1234".into()),
            ..Default::default()
        };
        f(&mut p);
        p
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.14.0"), (0, 14));
        assert_eq!(parse_version("0.17.3"), (0, 17));
        assert_eq!(parse_version(""), (0, 0));
        assert!(!json_progress((0, 15)) && json_progress((0, 16)));
        assert!(!supports_overwrite((0, 16)) && supports_overwrite((0, 17)));
    }

    #[test]
    fn arguments_by_version() {
        let p = params(|p| {
            p.paths = vec!["/srv/a*b".into(), "/etc/[x]".into()];
            p.target = Some("/tmp/out/".into());
            p.limit_download_kbps = Some(100);
        });
        assert_eq!(
            args(&p, (0, 14)).unwrap(),
            [
                "restore",
                "--json",
                "abcd1234",
                "--target",
                "/tmp/out",
                "--include=/srv/a\\*b",
                "--include=/etc/\\[x]",
                "--limit-download=100"
            ]
        );
        // Newer restic gets the policy spelled out (its own default is if-changed).
        let a = args(&p, (0, 17)).unwrap();
        assert!(a.contains(&"--overwrite=always".to_string()), "{a:?}");
        // The original location.
        let a = args(&params(|_| {}), (0, 14)).unwrap();
        assert_eq!(a, ["restore", "--json", "abcd1234", "--target", "/"]);
        // 0.14 cannot leave existing files alone.
        let never = params(|p| p.overwrite = Some(Overwrite::Never));
        assert!(args(&never, (0, 14)).unwrap_err().contains("0.17"));
        assert!(args(&never, (0, 18))
            .unwrap()
            .contains(&"--overwrite=never".to_string()));
        // Nothing restic could take for a flag.
        assert!(args(&params(|p| p.snapshot_id = Some("--help".into())), (0, 14)).is_err());
        assert!(args(&params(|p| p.paths = vec!["rel".into()]), (0, 14)).is_err());
        assert!(refuse(&params(|p| p.snapshot_id = None)).is_some());
    }

    #[test]
    fn landing_places() {
        assert_eq!(landing("/", "/srv/a"), PathBuf::from("/srv/a"));
        assert_eq!(
            landing("/tmp/out", "/srv/a"),
            PathBuf::from("/tmp/out/srv/a")
        );
    }

    #[test]
    fn totals_from_a_recursive_listing() {
        let mut t = Totals::default();
        for l in [
            r#"{"paths":["/srv"],"id":"ab","struct_type":"snapshot"}"#,
            r#"{"name":"srv","type":"dir","path":"/srv","struct_type":"node"}"#,
            r#"{"name":"a","type":"file","path":"/srv/a","size":10,"struct_type":"node"}"#,
            r#"{"name":"b","type":"file","path":"/srv/b","size":5,"message_type":"node","struct_type":"node"}"#,
            r#"{"name":"l","type":"symlink","path":"/srv/l","struct_type":"node"}"#,
            "not json",
        ] {
            t.line(l);
        }
        assert_eq!(
            t,
            Totals {
                files: 2,
                bytes: 15,
                snapshot_paths: vec!["/srv".into()],
                snapshot_seen: true
            }
        );
        assert_eq!(progress(1, 5, Some(&t)).percent, 33.3);
        assert_eq!(progress(1, 5, None).percent, 0.0);
    }

    #[test]
    fn scans_count_files_touched_since_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/one"), b"12345").unwrap();
        std::fs::write(dir.path().join("a/b/two"), b"123").unwrap();
        let before = SystemTime::now() - Duration::from_secs(60);
        let roots = vec![dir.path().join("a"), dir.path().join("missing")];
        assert_eq!(scan(&roots, before), (2, 8));
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(scan(&roots, later), (0, 0));
    }
}
