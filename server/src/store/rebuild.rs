//! Rebuilding read models from the log.
//!
//! A rebuild replays every event into *shadow* tables in a separate scratch database, then
//! swaps them in with one transaction on the live database (catching up on any event
//! appended meanwhile), so a reader never sees a half-built model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use projections::Projection;
use rusqlite::{params, Connection, OptionalExtension};

use super::{chain, StoreError};

/// What a rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    /// Projections rebuilt.
    pub projections: Vec<String>,
    /// Events replayed.
    pub events: u64,
    /// Wall time of the replay alone, in seconds.
    pub replay_seconds: f64,
    /// Wall time including the swap, in seconds.
    pub total_seconds: f64,
}

/// Replays the log of `source` (events with seq ≤ `until_seq`, or all) into the projection
/// tables of `target`, which must already have them. Returns the last seq applied.
pub fn replay_into(
    target: &Connection,
    source: &Connection,
    which: &[&'static dyn Projection],
    until_seq: Option<i64>,
) -> Result<(i64, u64), StoreError> {
    let mut stmt = source.prepare(&format!(
        "SELECT {} FROM events WHERE seq <= ?1 ORDER BY seq",
        chain::columns()
    ))?;
    let mut rows = stmt.query([until_seq.unwrap_or(i64::MAX)])?;
    let mut last = 0;
    let mut n = 0u64;
    while let Some(r) = rows.next()? {
        let e = chain::from_row(r)?;
        projections::apply(target, which, &e)?;
        last = e.seq;
        n += 1;
    }
    Ok((last, n))
}

/// Like [`replay_into`], reading the log on a second thread: one core reads and decodes
/// rows while the other applies them, which is where a rebuild spends its time.
pub fn replay_file_into(
    target: &Connection,
    source: &Path,
    which: &[&'static dyn Projection],
) -> Result<(i64, u64), StoreError> {
    type Batch = Vec<(domain::RecordedEvent, domain::Event)>;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch, StoreError>>(8);
    let source = source.to_path_buf();
    let reader = std::thread::Builder::new()
        .name("replay-reader".into())
        .spawn(move || {
            let run = || -> Result<(), StoreError> {
                let conn = Connection::open_with_flags(
                    &source,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(10))?;
                conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
                let mut stmt = conn.prepare(&format!(
                    "SELECT {} FROM events ORDER BY seq",
                    chain::columns()
                ))?;
                let mut rows = stmt.query([])?;
                let mut batch: Batch = Vec::with_capacity(1024);
                while let Some(r) = rows.next()? {
                    let e = chain::from_row(r)?;
                    let decoded = e.decode()?;
                    batch.push((e, decoded));
                    if batch.len() == 1024 {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(1024));
                        if tx.send(Ok(full)).is_err() {
                            return Ok(());
                        }
                    }
                }
                let _ = tx.send(Ok(batch));
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(StoreError::Io)?;
    let mut last = 0;
    let mut n = 0u64;
    for batch in rx {
        for (e, event) in batch? {
            projections::apply_decoded(target, which, &e, &event)?;
            last = e.seq;
            n += 1;
        }
    }
    let _ = reader.join();
    Ok((last, n))
}

fn scratch_path(main: &Path) -> PathBuf {
    let dir = main.parent().unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!("rebuild-{}-{nanos}.db", std::process::id()))
}

/// Rebuilds the given projections (all when `names` is empty) of the store at `path`.
pub fn rebuild(
    conn: &mut Connection,
    path: &Path,
    names: &[String],
) -> Result<RebuildReport, StoreError> {
    let which: Vec<&'static dyn Projection> = projections::registry()
        .iter()
        .copied()
        .filter(|p| names.is_empty() || names.iter().any(|n| n == p.name()))
        .collect();
    rebuild_projections(conn, path, &which)
}

fn rebuild_projections(
    conn: &mut Connection,
    path: &Path,
    which: &[&'static dyn Projection],
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let scratch = scratch_path(path);
    let result = (|| {
        // 1. Replay into the scratch database: no journal, no fsync — it is thrown away if
        //    anything goes wrong.
        let shadow = Connection::open(&scratch)?;
        shadow.pragma_update(None, "journal_mode", "OFF")?;
        shadow.pragma_update(None, "synchronous", "OFF")?;
        shadow.pragma_update(None, "cache_size", -262144)?;
        for p in which {
            shadow.execute_batch(p.schema())?;
        }
        let tx = shadow.unchecked_transaction()?;
        let (rebuilt_seq, events) = replay_file_into(&tx, path, which)?;
        tx.commit()?;
        drop(shadow);
        let replay_seconds = started.elapsed().as_secs_f64();

        // 2. Swap in one transaction on the live database, catching up on events appended
        //    since the replay read its last row.
        conn.execute("ATTACH DATABASE ?1 AS shadow", [scratch.to_string_lossy()])?;
        let swap = (|| -> Result<(), StoreError> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for p in which {
                for t in p.tables() {
                    tx.execute_batch(&format!("DROP TABLE IF EXISTS main.\"{t}\""))?;
                }
                tx.execute_batch(p.schema())?;
                for t in p.tables() {
                    tx.execute_batch(&format!(
                        "INSERT INTO main.\"{t}\" SELECT * FROM shadow.\"{t}\""
                    ))?;
                }
            }
            let mut stmt = tx.prepare(&format!(
                "SELECT {} FROM main.events WHERE seq > ?1 ORDER BY seq",
                chain::columns()
            ))?;
            let mut rows = stmt.query([rebuilt_seq])?;
            let mut head = rebuilt_seq;
            while let Some(r) = rows.next()? {
                let e = chain::from_row(r)?;
                projections::apply(&tx, which, &e)?;
                head = e.seq;
            }
            drop(rows);
            drop(stmt);
            for p in which {
                tx.execute(
                    "INSERT INTO projection_versions (name, version, last_seq) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET version = excluded.version, last_seq = excluded.last_seq",
                    params![p.name(), p.version(), head],
                )?;
            }
            tx.commit()?;
            Ok(())
        })();
        let detach = conn.execute_batch("DETACH DATABASE shadow");
        swap?;
        detach?;
        Ok(RebuildReport {
            projections: which.iter().map(|p| p.name().to_string()).collect(),
            events,
            replay_seconds,
            total_seconds: started.elapsed().as_secs_f64(),
        })
    })();
    let _ = std::fs::remove_file(&scratch);
    result
}

/// At open: creates missing projection tables, and rebuilds every projection whose stored
/// version differs from the code's (or that is missing while events exist).
pub fn ensure_projections(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let has_events: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM events)", [], |r| r.get(0))?;
    let mut stale: Vec<&'static dyn Projection> = Vec::new();
    for p in projections::registry() {
        let stored: Option<u32> = conn
            .query_row(
                "SELECT version FROM projection_versions WHERE name = ?1",
                [p.name()],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(v) if v == p.version() => conn.execute_batch(p.schema())?,
            None if !has_events => {
                conn.execute_batch(p.schema())?;
                conn.execute(
                    "INSERT INTO projection_versions (name, version, last_seq) VALUES (?1, ?2, 0)",
                    params![p.name(), p.version()],
                )?;
            }
            _ => stale.push(*p),
        }
    }
    if !stale.is_empty() {
        let names: Vec<&str> = stale.iter().map(|p| p.name()).collect();
        tracing::info!(projections = ?names, "projection versions changed: rebuilding from seq 0");
        let report = rebuild_projections(conn, path, &stale)?;
        tracing::info!(
            events = report.events,
            seconds = report.total_seconds,
            "rebuild done"
        );
    }
    Ok(())
}
