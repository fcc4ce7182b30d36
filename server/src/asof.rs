//! Time travel: the read models as they were at a past `seq`.
//!
//! Projections are pure folds, so replaying events 1..=S into empty tables gives exactly
//! what the live tables held when S was the head. Replaying a million events per question is
//! too slow, so every [`TimeTravel::every`] events a background task copies the projection
//! tables into a *checkpoint* file (`<data>/asof/cp-<seq>.db`, taken inside one read
//! transaction so it is consistent at that seq). A view at S starts from the newest checkpoint
//! at or before S, in memory, and replays only the events after it. Recent views are cached,
//! so paging through one past moment costs one build.
//!
//! Checkpoints record the projection versions they were taken with; after a version change
//! they are ignored and replaced.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::store::{query_events, EventQuery, StoreError};

/// Views kept built.
const CACHE: usize = 4;

/// Tables a past view does not carry over from a checkpoint: job logs are append-only and
/// never change once written, so the past view of a job's log is the live log cut at the
/// job's `log_lines` as of then. Leaving them out keeps checkpoints and views small.
const NOT_CHECKPOINTED: &[&str] = &["job_logs"];

fn checkpointed_tables() -> Vec<&'static str> {
    projections::all_tables()
        .into_iter()
        .filter(|t| !NOT_CHECKPOINTED.contains(t))
        .collect()
}

/// A built past state: an in-memory database with every projection table.
pub type View = Arc<Mutex<Connection>>;

/// Checkpoints and cached views of one data dir.
pub struct TimeTravel {
    db: PathBuf,
    dir: PathBuf,
    every: i64,
    cache: Mutex<VecDeque<(i64, View)>>,
    /// One checkpoint at a time.
    writing: Mutex<()>,
}

/// The projection versions a checkpoint must match.
pub fn fingerprint() -> String {
    projections::registry()
        .iter()
        .map(|p| format!("{}:{}", p.name(), p.version()))
        .collect::<Vec<_>>()
        .join(",")
}

impl TimeTravel {
    /// Checkpoints for the database `db` go to `dir`, one every `every` events.
    pub fn new(db: PathBuf, dir: PathBuf, every: i64) -> Self {
        TimeTravel {
            db,
            dir,
            every: every.max(1),
            cache: Mutex::new(VecDeque::new()),
            writing: Mutex::new(()),
        }
    }

    /// Events between checkpoints.
    pub fn every(&self) -> i64 {
        self.every
    }

    /// The seqs of the usable checkpoints, ascending.
    pub fn checkpoints(&self) -> Vec<i64> {
        let mut out: Vec<i64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("cp-")?.strip_suffix(".db")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        out
    }

    fn path_of(&self, seq: i64) -> PathBuf {
        self.dir.join(format!("cp-{seq}.db"))
    }

    fn usable(path: &Path) -> bool {
        let Ok(c) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
            return false;
        };
        let v: Option<String> = c
            .query_row(
                "SELECT value FROM cp_meta WHERE key = 'projections'",
                [],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten();
        v.as_deref() == Some(fingerprint().as_str())
    }

    /// Takes a checkpoint when the head is `every` events past the last one. Blocking.
    /// Returns the new checkpoint's seq.
    pub fn maybe_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.dir)?;
        // Checkpoints of other projection versions are useless now.
        let mut last = 0;
        for seq in self.checkpoints() {
            if Self::usable(&self.path_of(seq)) {
                last = last.max(seq);
            } else {
                let _ = std::fs::remove_file(self.path_of(seq));
            }
        }
        let main = Connection::open(&self.db)?;
        main.busy_timeout(std::time::Duration::from_secs(10))?;
        let head: i64 =
            main.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        if head - last < self.every {
            return Ok(None);
        }
        let tmp = self.dir.join("cp-building.db");
        let _ = std::fs::remove_file(&tmp);
        {
            let c = Connection::open(&tmp)?;
            c.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")?;
            projections::create_all(&c)?;
            c.execute_batch("CREATE TABLE cp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")?;
            c.execute(
                "INSERT INTO cp_meta (key, value) VALUES ('projections', ?1)",
                [fingerprint()],
            )?;
        }
        main.execute("ATTACH DATABASE ?1 AS cp", [tmp.to_string_lossy()])?;
        let copied = (|| -> Result<i64, StoreError> {
            // One read transaction on main: every table is copied at the same seq.
            main.execute_batch("BEGIN")?;
            let seq: i64 =
                main.query_row("SELECT coalesce(max(seq), 0) FROM main.events", [], |r| {
                    r.get(0)
                })?;
            for t in checkpointed_tables() {
                main.execute(&format!("INSERT INTO cp.{t} SELECT * FROM main.{t}"), [])?;
            }
            main.execute(
                "INSERT INTO cp.cp_meta (key, value) VALUES ('seq', ?1)",
                [seq.to_string()],
            )?;
            main.execute_batch("COMMIT")?;
            Ok(seq)
        })();
        if copied.is_err() {
            let _ = main.execute_batch("ROLLBACK");
        }
        main.execute("DETACH DATABASE cp", [])?;
        let seq = copied?;
        std::fs::rename(&tmp, self.path_of(seq))?;
        tracing::info!(seq, "time-travel checkpoint written");
        Ok(Some(seq))
    }

    /// The read models at `seq` (built, or from the cache). Blocking.
    pub fn view(&self, seq: i64) -> Result<View, StoreError> {
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, v)| v.clone())
        {
            return Ok(v);
        }
        let view = Arc::new(Mutex::new(self.build(seq)?));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.push_front((seq, view.clone()));
        cache.truncate(CACHE);
        Ok(view)
    }

    /// Builds the read models at `seq` from the nearest checkpoint and the events after it.
    pub fn build(&self, seq: i64) -> Result<Connection, StoreError> {
        let mem = Connection::open_in_memory()?;
        projections::create_all(&mem)?;
        let start = self
            .checkpoints()
            .into_iter()
            .rev()
            .find(|c| *c <= seq && Self::usable(&self.path_of(*c)));
        let mut from = 0;
        if let Some(cp) = start {
            mem.execute(
                "ATTACH DATABASE ?1 AS cp",
                [self.path_of(cp).to_string_lossy()],
            )?;
            mem.execute_batch("BEGIN")?;
            for t in checkpointed_tables() {
                mem.execute(&format!("INSERT INTO main.{t} SELECT * FROM cp.{t}"), [])?;
            }
            mem.execute_batch("COMMIT")?;
            mem.execute("DETACH DATABASE cp", [])?;
            from = cp;
        }
        let src = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.busy_timeout(std::time::Duration::from_secs(10))?;
        mem.execute_batch("BEGIN")?;
        let which = projections::registry();
        while from < seq {
            let batch = query_events(
                &src,
                &EventQuery {
                    after: Some(from),
                    until_seq: Some(seq),
                    limit: Some(20_000),
                    ..Default::default()
                },
            )?;
            let Some(last) = batch.last().map(|e| e.seq) else {
                break;
            };
            for e in &batch {
                projections::apply(&mem, which, e)?;
            }
            from = last;
        }
        mem.execute_batch("COMMIT")?;
        Ok(mem)
    }
}

/// The seq an `as_of` parameter names: a number is a seq (capped at the head), anything else
/// must be an RFC 3339 time (the last event at or before it; 0 before the first).
pub fn resolve(conn: &Connection, as_of: &str) -> Result<Result<i64, String>, StoreError> {
    let as_of = as_of.trim();
    let head: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
    if let Ok(n) = as_of.parse::<i64>() {
        if n < 0 {
            return Ok(Err(
                "as_of must be a seq (0 or more) or an RFC 3339 time".into()
            ));
        }
        return Ok(Ok(n.min(head)));
    }
    let Ok(t) = as_of.parse::<domain::Timestamp>() else {
        return Ok(Err(format!(
            "as_of {as_of:?} is neither a seq nor an RFC 3339 time such as 2026-11-28T03:00:00Z"
        )));
    };
    let seq: i64 = conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM events WHERE occurred_at <= ?1",
        [t.to_string()],
        |r| r.get(0),
    )?;
    Ok(Ok(seq))
}
