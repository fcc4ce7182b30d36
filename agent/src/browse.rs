//! Answers the server's questions about snapshots: one directory of a snapshot
//! (`snapshot.ls`) and what changed between two snapshots (`snapshot.diff`).
//!
//! They run beside jobs, not in the job queue (browsing must work while a backup runs), a
//! few at a time, with the everyday credential, and their answers are not durable: the
//! server waits for them with a timeout and the browser asks again.
//!
//! `restic ls --json SNAP DIR` prints the snapshot first (`struct_type: "snapshot"`), then
//! DIR itself and its direct children only (without `--recursive`; checked on restic 0.14,
//! and DIR is matched exactly, not as a pattern). A directory of 100 000 entries is one
//! restic call: every line is counted, only the requested page is kept. restic 0.14 prints
//! nothing and exits 0 for an unknown snapshot (`Ignoring "x": no matching ID found` on
//! stderr); later versions fail with the same words.

use std::sync::Arc;
use std::time::Duration;

use domain::protocol::{
    AgentMessage, DiffChange, RepoCredentials, SnapshotDiffMsg, SnapshotDiffResultMsg,
    SnapshotLsMsg, SnapshotLsResultMsg, TreeEntry, MAX_FRAME_BYTES,
};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::jobs::Sender;
use crate::restic;
use crate::secrets::SecretsFile;

/// restic commands of this kind running at once, at most.
const CONCURRENT: usize = 4;
/// How long one `ls` or `diff` may run (the server stops waiting sooner).
const RESTIC_LIMIT: Duration = Duration::from_secs(300);
/// Bytes of entries or changes in one answer frame (well below the frame limit).
pub const PART_BUDGET: usize = MAX_FRAME_BYTES * 5 / 8;

/// Answers `snapshot.ls` and `snapshot.diff`.
#[derive(Clone)]
pub struct Browser {
    restic_bin: String,
    secrets: Arc<SecretsFile>,
    sender: Sender,
    slots: Arc<Semaphore>,
}

impl Browser {
    /// A browser over the agent's restic and secrets, answering through `sender`.
    pub fn new(restic_bin: String, secrets: Arc<SecretsFile>, sender: Sender) -> Self {
        Browser {
            restic_bin,
            secrets,
            sender,
            slots: Arc::new(Semaphore::new(CONCURRENT)),
        }
    }

    fn repo(&self) -> Result<RepoCredentials, (String, String)> {
        match self.secrets.load() {
            Ok(s) => s.repo.ok_or_else(|| {
                (
                    "no_credentials".to_string(),
                    "this agent has no repository credentials yet".to_string(),
                )
            }),
            Err(e) => Err(("restic_failed".into(), e.to_string())),
        }
    }

    /// Lists one directory in the background and sends the answer.
    pub fn ls(&self, m: SnapshotLsMsg) {
        let me = self.clone();
        tokio::spawn(async move {
            let _slot = me.slots.clone().acquire_owned().await;
            let parts = match me.repo() {
                Ok(repo) => ls(&me.restic_bin, &repo, &m).await,
                Err((code, error)) => vec![ls_error(&m.request_id, &code, error)],
            };
            for p in parts {
                me.sender.send(AgentMessage::SnapshotLsResult(p));
            }
        });
    }

    /// Compares two snapshots in the background and sends the answer.
    pub fn diff(&self, m: SnapshotDiffMsg) {
        let me = self.clone();
        tokio::spawn(async move {
            let _slot = me.slots.clone().acquire_owned().await;
            let parts = match me.repo() {
                Ok(repo) => diff(&me.restic_bin, &repo, &m).await,
                Err((code, error)) => vec![diff_error(&m.request_id, &code, error)],
            };
            for p in parts {
                me.sender.send(AgentMessage::SnapshotDiffResult(p));
            }
        });
    }
}

fn ls_error(request_id: &str, code: &str, error: String) -> SnapshotLsResultMsg {
    SnapshotLsResultMsg {
        request_id: request_id.to_string(),
        entries: vec![],
        total: 0,
        error: Some(error),
        error_code: Some(code.to_string()),
        more: false,
    }
}

fn diff_error(request_id: &str, code: &str, error: String) -> SnapshotDiffResultMsg {
    SnapshotDiffResultMsg {
        request_id: request_id.to_string(),
        changes: vec![],
        stats: None,
        truncated: false,
        error: Some(error),
        error_code: Some(code.to_string()),
        more: false,
    }
}

/// A snapshot id restic will not take for a flag: hex, 4 to 64 characters.
pub fn valid_snapshot_id(id: &str) -> bool {
    (4..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `/a//b/` → `/a/b`; `None` for relative paths, NUL bytes and `.`/`..` components.
pub fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut out = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return None;
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// The directory a path is in (`/` for top-level paths).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// What restic's complaint means: (`error_code`, message).
pub fn error_of(stderr: &[String], timed_out: bool) -> (String, String) {
    if timed_out {
        return (
            "restic_failed".into(),
            format!("restic took longer than {} s", RESTIC_LIMIT.as_secs()),
        );
    }
    let all = stderr.join("\n").to_lowercase();
    let first = stderr
        .iter()
        .map(|l| {
            // 0.18+: `{"message_type":"exit_error","message":…}`.
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| l.clone())
        })
        .find(|l| l.starts_with("Fatal:") || l.starts_with("Ignoring"))
        .or_else(|| stderr.first().cloned())
        .unwrap_or_else(|| "restic failed without saying why".into());
    let first = first.trim_start_matches("Fatal: ").to_string();
    let code = if all.contains("no matching id found")
        || all.contains("no snapshot found")
        || all.contains("invalid id")
        || all.contains("snapshot not found")
    {
        "snapshot_not_found"
    } else if all.contains("wrong password") || all.contains("no key found") {
        "wrong_password"
    } else if all.contains("repository is already locked") || all.contains("unable to create lock")
    {
        "repo_locked"
    } else if all.contains("is there a repository at the following location")
        || all.contains("unable to open config file")
    {
        "repo_missing"
    } else {
        "restic_failed"
    };
    (code.into(), first)
}

/// Splits items into parts whose JSON stays under `budget` bytes each (one item per part at
/// least, so a part is never empty unless there are no items).
pub fn split<T: serde::Serialize>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut parts = vec![];
    let mut part = vec![];
    let mut size = 0;
    for item in items {
        let n = serde_json::to_string(&item)
            .map(|s| s.len() + 1)
            .unwrap_or(0);
        if !part.is_empty() && size + n > budget {
            parts.push(std::mem::take(&mut part));
            size = 0;
        }
        size += n;
        part.push(item);
    }
    parts.push(part);
    parts
}

/// One page of a directory, from the lines `restic ls --json SNAP DIR` prints.
#[derive(Debug, Default)]
pub struct Listing {
    dir: String,
    offset: u64,
    limit: u64,
    /// The snapshot line was seen.
    pub snapshot_seen: bool,
    /// The type of DIR's own node, when seen.
    pub dir_type: Option<String>,
    /// The page.
    pub entries: Vec<TreeEntry>,
    /// Children in all.
    pub total: u64,
}

impl Listing {
    /// A listing of `dir` (normalised), keeping `limit` entries from `offset`.
    pub fn new(dir: &str, offset: u64, limit: u64) -> Self {
        Listing {
            dir: dir.to_string(),
            offset,
            limit,
            ..Default::default()
        }
    }

    /// Takes one stdout line.
    pub fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            return;
        };
        // `struct_type` on every version; `message_type` only from 0.17.
        let kind = v
            .get("struct_type")
            .or_else(|| v.get("message_type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match kind {
            "snapshot" => self.snapshot_seen = true,
            "node" => {
                let Ok(e) = serde_json::from_value::<TreeEntry>(v) else {
                    return;
                };
                if e.path == self.dir {
                    self.dir_type = Some(e.entry_type);
                    return;
                }
                if parent(&e.path) != self.dir {
                    return;
                }
                let idx = self.total;
                self.total += 1;
                if idx >= self.offset && idx < self.offset.saturating_add(self.limit) {
                    self.entries.push(e);
                }
            }
            _ => {}
        }
    }

    /// The answer, in parts that fit a frame.
    pub fn finish(self, request_id: &str, run: &restic::Streamed) -> Vec<SnapshotLsResultMsg> {
        if !run.ok() {
            let (code, error) = error_of(&run.stderr, run.timed_out);
            return vec![ls_error(request_id, &code, error)];
        }
        if !self.snapshot_seen {
            let (_, error) = error_of(&run.stderr, false);
            return vec![ls_error(
                request_id,
                "snapshot_not_found",
                format!("no such snapshot in the repository ({error})"),
            )];
        }
        if self.dir != "/" {
            match self.dir_type.as_deref() {
                None => {
                    return vec![ls_error(
                        request_id,
                        "path_not_found",
                        format!("{} is not in this snapshot", self.dir),
                    )]
                }
                Some("dir") => {}
                Some(other) => {
                    return vec![ls_error(
                        request_id,
                        "not_a_directory",
                        format!("{} is a {other}, not a directory", self.dir),
                    )]
                }
            }
        }
        let total = self.total;
        let parts = split(self.entries, PART_BUDGET);
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, entries)| SnapshotLsResultMsg {
                request_id: request_id.to_string(),
                entries,
                total,
                error: None,
                error_code: None,
                more: i + 1 < n,
            })
            .collect()
    }
}

/// `restic ls --json SNAP DIR`, one page, in parts.
pub async fn ls(bin: &str, repo: &RepoCredentials, m: &SnapshotLsMsg) -> Vec<SnapshotLsResultMsg> {
    if !valid_snapshot_id(&m.snapshot_id) {
        return vec![ls_error(
            &m.request_id,
            "snapshot_not_found",
            "a snapshot id is 4 to 64 hex characters".into(),
        )];
    }
    let Some(dir) = normalise(&m.path) else {
        return vec![ls_error(
            &m.request_id,
            "path_not_found",
            "the path must be absolute".into(),
        )];
    };
    let args: Vec<String> = vec![
        "ls".into(),
        "--json".into(),
        m.snapshot_id.clone(),
        dir.clone(),
    ];
    let mut listing = Listing::new(&dir, m.offset, m.limit);
    let run = restic::stream(bin, repo, &args, RESTIC_LIMIT, |l| listing.line(l)).await;
    listing.finish(&m.request_id, &run)
}

/// The changes between two snapshots, from `restic diff --json` lines (or its text output,
/// for a restic that prints no JSON there).
#[derive(Debug, Default)]
pub struct Diff {
    max: u64,
    /// Changes kept.
    pub changes: Vec<DiffChange>,
    /// Changes beyond `max`.
    pub dropped: u64,
    /// The `statistics` message (or what the text's `Files:` line says).
    pub stats: Option<Value>,
}

impl Diff {
    /// Keeps at most `max` changes.
    pub fn new(max: u64) -> Self {
        Diff {
            max,
            ..Default::default()
        }
    }

    fn push(&mut self, path: String, modifier: String) {
        if (self.changes.len() as u64) < self.max {
            self.changes.push(DiffChange { path, modifier });
        } else {
            self.dropped += 1;
        }
    }

    /// Takes one stdout line.
    pub fn line(&mut self, line: &str) {
        let t = line.trim();
        if t.is_empty() {
            return;
        }
        if let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(t) {
            match v.get("message_type").and_then(Value::as_str) {
                Some("change") => {
                    let path = v.get("path").and_then(Value::as_str).unwrap_or("");
                    let modifier = v.get("modifier").and_then(Value::as_str).unwrap_or("");
                    if !path.is_empty() {
                        self.push(path.to_string(), modifier.to_string());
                    }
                }
                Some("statistics") => {
                    v.remove("message_type");
                    self.stats = Some(Value::Object(v));
                }
                _ => {}
            }
            return;
        }
        // Text: `M    /path`, and `Files:   1 new,   1 removed,   1 changed`.
        if let Some(rest) = t.strip_prefix("Files:") {
            let mut stats = serde_json::Map::new();
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(what)) =
                    (w.next().and_then(|n| n.parse::<u64>().ok()), w.next())
                {
                    stats.insert(format!("files_{what}"), n.into());
                }
            }
            self.stats = Some(Value::Object(stats));
            return;
        }
        if let Some((modifier, path)) = t.split_once(char::is_whitespace) {
            let path = path.trim_start();
            if path.starts_with('/')
                && !modifier.is_empty()
                && modifier.chars().all(|c| "+-MTU?".contains(c))
            {
                self.push(path.to_string(), modifier.to_string());
            }
        }
    }

    /// The answer, in parts that fit a frame.
    pub fn finish(self, request_id: &str, run: &restic::Streamed) -> Vec<SnapshotDiffResultMsg> {
        if !run.ok() {
            let (code, error) = error_of(&run.stderr, run.timed_out);
            return vec![diff_error(request_id, &code, error)];
        }
        let (stats, truncated) = (self.stats, self.dropped > 0);
        let parts = split(self.changes, PART_BUDGET);
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, changes)| {
                let last = i + 1 == n;
                SnapshotDiffResultMsg {
                    request_id: request_id.to_string(),
                    changes,
                    stats: if last { stats.clone() } else { None },
                    truncated: last && truncated,
                    error: None,
                    error_code: None,
                    more: !last,
                }
            })
            .collect()
    }
}

/// `restic diff --json FROM TO`, in parts.
pub async fn diff(
    bin: &str,
    repo: &RepoCredentials,
    m: &SnapshotDiffMsg,
) -> Vec<SnapshotDiffResultMsg> {
    if !valid_snapshot_id(&m.from) || !valid_snapshot_id(&m.to) {
        return vec![diff_error(
            &m.request_id,
            "snapshot_not_found",
            "a snapshot id is 4 to 64 hex characters".into(),
        )];
    }
    let args: Vec<String> = vec!["diff".into(), "--json".into(), m.from.clone(), m.to.clone()];
    let mut d = Diff::new(m.max_changes);
    let run = restic::stream(bin, repo, &args, RESTIC_LIMIT, |l| d.line(l)).await;
    d.finish(&m.request_id, &run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> restic::Streamed {
        restic::Streamed {
            code: Some(0),
            ..Default::default()
        }
    }

    const SNAP: &str = r#"{"time":"2026-11-29T01:58:13.9Z","tree":"8c","paths":["/tmp/rtest/data"],"hostname":"vm","username":"root","id":"1d7d94360c3c5a9e13fd1275be0c51c198abaaed7bb33c60ea37ab160a5bf763","short_id":"1d7d9436","struct_type":"snapshot"}"#;

    fn node(path: &str, kind: &str, size: u64) -> String {
        let name = path.rsplit('/').next().unwrap();
        format!(
            r#"{{"name":"{name}","type":"{kind}","path":"{path}","uid":0,"gid":0,"size":{size},"mode":420,"permissions":"-rw-r--r--","mtime":"2026-11-29T01:58:07.8Z","atime":"x","ctime":"x","struct_type":"node"}}"#
        )
    }

    #[test]
    fn paths_are_normalised_and_checked() {
        assert_eq!(normalise("/").as_deref(), Some("/"));
        assert_eq!(normalise("//a//b/").as_deref(), Some("/a/b"));
        assert_eq!(normalise("a/b"), None);
        assert_eq!(normalise("/a/../b"), None);
        assert_eq!(normalise("/a\0"), None);
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert!(valid_snapshot_id("1d7d9436"));
        assert!(!valid_snapshot_id("--json"));
        assert!(!valid_snapshot_id("latest"));
    }

    /// Output of a real restic 0.14 `ls --json SNAP /tmp/rtest/data`: the snapshot, the
    /// directory itself, its children.
    #[test]
    fn a_directory_is_paged_without_itself() {
        let lines = [
            SNAP.to_string(),
            node("/tmp/rtest/data", "dir", 0),
            node("/tmp/rtest/data/a", "dir", 0),
            node("/tmp/rtest/data/c", "dir", 0),
            node("/tmp/rtest/data/top.txt", "file", 4),
            // Never printed without --recursive; ignored if it were.
            node("/tmp/rtest/data/a/x.txt", "file", 6),
        ];
        let mut l = Listing::new("/tmp/rtest/data", 1, 1);
        for line in &lines {
            l.line(line);
        }
        let parts = l.finish("r", &ok());
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].total, 3);
        assert_eq!(parts[0].entries.len(), 1);
        assert_eq!(parts[0].entries[0].path, "/tmp/rtest/data/c");
        assert_eq!(parts[0].entries[0].entry_type, "dir");
        // The root lists top-level nodes only.
        let mut l = Listing::new("/", 0, 500);
        for line in [SNAP.to_string(), node("/tmp", "dir", 0)] {
            l.line(&line);
        }
        let parts = l.finish("r", &ok());
        assert_eq!(
            (parts[0].total, parts[0].entries[0].name.as_str()),
            (1, "tmp")
        );
    }

    #[test]
    fn unknown_snapshots_paths_and_files_are_errors() {
        // 0.14: nothing on stdout, exit 0, a note on stderr.
        let run = restic::Streamed {
            code: Some(0),
            stderr: vec![
                r#"Ignoring "deadbeef": no matching ID found for prefix "deadbeef""#.into(),
            ],
            timed_out: false,
        };
        let parts = Listing::new("/", 0, 10).finish("r", &run);
        assert_eq!(parts[0].error_code.as_deref(), Some("snapshot_not_found"));
        // 0.17+: exit 1.
        let run = restic::Streamed {
            code: Some(1),
            stderr: vec![r#"Fatal: no matching ID found for prefix "deadbeef""#.into()],
            timed_out: false,
        };
        let parts = Listing::new("/", 0, 10).finish("r", &run);
        assert_eq!(parts[0].error_code.as_deref(), Some("snapshot_not_found"));
        assert_eq!(
            parts[0].error.as_deref(),
            Some(r#"no matching ID found for prefix "deadbeef""#)
        );
        let mut l = Listing::new("/nope", 0, 10);
        l.line(SNAP);
        assert_eq!(
            l.finish("r", &ok())[0].error_code.as_deref(),
            Some("path_not_found")
        );
        let mut l = Listing::new("/tmp/rtest/data/top.txt", 0, 10);
        l.line(SNAP);
        l.line(&node("/tmp/rtest/data/top.txt", "file", 4));
        assert_eq!(
            l.finish("r", &ok())[0].error_code.as_deref(),
            Some("not_a_directory")
        );
        let locked = restic::Streamed {
            code: Some(1),
            stderr: vec!["unable to create lock in backend: repository is already locked exclusively by PID 1".into()],
            timed_out: false,
        };
        assert_eq!(error_of(&locked.stderr, false).0, "repo_locked");
    }

    #[test]
    fn large_pages_are_split_to_fit_frames() {
        let mut l = Listing::new("/d", 0, 1000);
        l.line(SNAP);
        l.line(&node("/d", "dir", 0));
        let long = "x".repeat(1000);
        for i in 0..1000 {
            l.line(&node(&format!("/d/{long}{i:04}"), "file", 1));
        }
        let parts = l.finish("r", &ok());
        assert!(parts.len() > 1, "{}", parts.len());
        assert!(parts[..parts.len() - 1].iter().all(|p| p.more));
        assert!(!parts.last().unwrap().more);
        assert_eq!(parts.iter().map(|p| p.entries.len()).sum::<usize>(), 1000);
        for p in &parts {
            let frame = AgentMessage::SnapshotLsResult(p.clone()).to_frame("id", None);
            assert!(frame.len() < MAX_FRAME_BYTES, "{}", frame.len());
        }
    }

    /// Output of a real restic 0.14 `diff --json`, and of its text mode.
    #[test]
    fn diffs_in_json_and_text() {
        let json_out = [
            r#"{"message_type":"change","path":"/tmp/rtest/data/a/x.txt","modifier":"M"}"#,
            r#"{"message_type":"change","path":"/tmp/rtest/data/new.txt","modifier":"+"}"#,
            r#"{"message_type":"change","path":"/tmp/rtest/data/top.txt","modifier":"-"}"#,
            r#"{"message_type":"statistics","source_snapshot":"1d7d9436","target_snapshot":"85ca84c5","changed_files":1,"added":{"files":1,"dirs":0,"others":0,"data_blobs":2,"tree_blobs":6,"bytes":3153},"removed":{"files":1,"dirs":0,"others":0,"data_blobs":2,"tree_blobs":6,"bytes":3151}}"#,
        ];
        let mut d = Diff::new(2);
        for l in json_out {
            d.line(l);
        }
        let parts = d.finish("r", &ok());
        assert_eq!(parts.len(), 1);
        let p = &parts[0];
        assert_eq!(p.changes.len(), 2);
        assert_eq!(p.changes[1].modifier, "+");
        assert!(p.truncated);
        assert_eq!(p.stats.as_ref().unwrap()["changed_files"], 1);
        assert!(p.stats.as_ref().unwrap().get("message_type").is_none());

        let text_out = "comparing snapshot 1d7d9436 to 85ca84c5:\n\nM    /tmp/rtest/data/a/x.txt\n+    /tmp/rtest/data/new.txt\n-    /tmp/rtest/data/top.txt\nT    /tmp/rtest/data/link\n\nFiles:           1 new,     1 removed,     1 changed\nDirs:            0 new,     0 removed\n  Added:   3.079 KiB\n";
        let mut d = Diff::new(100);
        for l in text_out.lines() {
            d.line(l);
        }
        let p = &d.finish("r", &ok())[0];
        let mods: Vec<&str> = p.changes.iter().map(|c| c.modifier.as_str()).collect();
        assert_eq!(mods, ["M", "+", "-", "T"]);
        assert!(!p.truncated);
        assert_eq!(
            p.stats,
            Some(serde_json::json!({"files_new": 1, "files_removed": 1, "files_changed": 1}))
        );
    }

    #[tokio::test]
    async fn real_restic_lists_and_diffs() {
        let bin = "/usr/bin/restic";
        if !std::path::Path::new(bin).exists() {
            eprintln!("skipped: no {bin}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoCredentials {
            url: dir.path().join("repo").display().to_string(),
            username: None,
            password: "pw-browse".into(),
        };
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        for i in 0..30 {
            std::fs::write(data.join(format!("f{i:02}")), format!("{i}")).unwrap();
        }
        std::fs::write(data.join("sub/inner"), "x").unwrap();
        let run = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let repo = repo.clone();
            async move { restic::output(bin, &repo, &args).await.unwrap() }
        };
        run(&["init"]).await;
        let d = data.display().to_string();
        run(&["backup", "--json", &d]).await;
        std::fs::remove_file(data.join("f00")).unwrap();
        std::fs::write(data.join("f01"), "changed").unwrap();
        std::fs::write(data.join("new"), "new").unwrap();
        run(&["backup", "--json", &d]).await;
        let snaps = restic::parse_snapshots(&run(&["snapshots", "--json"]).await).unwrap();
        let (a, b) = (snaps[0].id.clone(), snaps[1].id.clone());
        let ls_msg = |path: &str, offset, limit| SnapshotLsMsg {
            request_id: "r".into(),
            snapshot_id: a[..8].to_string(),
            path: path.into(),
            offset,
            limit,
        };
        let parts = ls(bin, &repo, &ls_msg(&d, 10, 5)).await;
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0].total, 31, "{parts:?}");
        let names: Vec<&str> = parts[0].entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["f10", "f11", "f12", "f13", "f14"]);
        let sub = ls(bin, &repo, &ls_msg(&format!("{d}/sub/"), 0, 500)).await;
        assert_eq!(sub[0].total, 1);
        assert_eq!(sub[0].entries[0].path, format!("{d}/sub/inner"));
        let root = ls(bin, &repo, &ls_msg("/", 0, 500)).await;
        assert_eq!(root[0].total, 1, "{root:?}");
        assert_eq!(root[0].entries[0].entry_type, "dir");
        let mut gone = ls_msg("/", 0, 5);
        gone.snapshot_id = "deadbeef".into();
        let gone = ls(bin, &repo, &gone).await;
        assert_eq!(gone[0].error_code.as_deref(), Some("snapshot_not_found"));
        let missing = ls(bin, &repo, &ls_msg("/no/such/dir", 0, 5)).await;
        assert_eq!(missing[0].error_code.as_deref(), Some("path_not_found"));

        let parts = diff(
            bin,
            &repo,
            &SnapshotDiffMsg {
                request_id: "r".into(),
                from: a.clone(),
                to: b.clone(),
                max_changes: 100,
            },
        )
        .await;
        let p = &parts[0];
        assert_eq!(p.error, None);
        let mut got: Vec<(String, String)> = p
            .changes
            .iter()
            .map(|c| {
                (
                    c.modifier.clone(),
                    c.path.trim_start_matches(&d).to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("+".to_string(), "/new".to_string()),
                ("-".to_string(), "/f00".to_string()),
                ("M".to_string(), "/f01".to_string())
            ]
        );
        assert!(p.stats.is_some());
    }
}
