//! Rows of the log: insert, the chain head, verify, export and import.

use std::io::{BufRead, Write};

use domain::envelope::{check_link, ChainFault, RecordedEvent, GENESIS_HASH};
use rusqlite::{params, Connection, OptionalExtension};

use super::{EventQuery, Head, StoreError};

const COLUMNS: &str = "seq, event_id, stream, stream_version, type, schema_version, data, actor, \
     occurred_at, correlation_id, causation_id, command_id, prev_hash, hash";

/// The column list of `events` in [`from_row`] order.
pub fn columns() -> &'static str {
    COLUMNS
}

/// Reads one row selected with [`columns`].
pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    Ok(RecordedEvent {
        seq: r.get(0)?,
        event_id: r.get(1)?,
        stream: r.get(2)?,
        stream_version: r.get(3)?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        data: r.get(6)?,
        actor: r.get(7)?,
        occurred_at: r.get(8)?,
        correlation_id: r.get(9)?,
        causation_id: r.get(10)?,
        command_id: r.get(11)?,
        prev_hash: r.get(12)?,
        hash: r.get(13)?,
    })
}

/// Inserts one fully formed row.
pub fn insert(conn: &Connection, e: &RecordedEvent) -> rusqlite::Result<()> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("INSERT INTO events ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)")
    });
    conn.prepare_cached(sql)?.execute(params![
        e.seq,
        e.event_id,
        e.stream,
        e.stream_version,
        e.event_type,
        e.schema_version,
        e.data,
        e.actor,
        e.occurred_at,
        e.correlation_id,
        e.causation_id,
        e.command_id,
        e.prev_hash,
        e.hash
    ])?;
    Ok(())
}

/// The last row's seq and hash.
pub fn read_head(conn: &Connection) -> Result<Head, StoreError> {
    let h = conn
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(Head {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                })
            },
        )
        .optional()?;
    Ok(h.unwrap_or(Head {
        seq: 0,
        hash: GENESIS_HASH.to_string(),
    }))
}

/// A walk of the whole chain that found nothing wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Rows checked.
    pub events: i64,
    /// The head reached.
    pub head: Head,
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A row does not fit the chain.
    #[error("chain broken at seq {seq}: {reason}")]
    Broken {
        /// The first bad seq.
        seq: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// The chain is intact but does not reach the head published elsewhere: the tail was
    /// cut off or rewritten.
    #[error("head mismatch: expected seq {expected_seq} with hash {expected_hash}, {found}")]
    HeadMismatch {
        /// Published seq.
        expected_seq: i64,
        /// Published hash.
        expected_hash: String,
        /// What the log has instead.
        found: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The first bad seq, when one row is to blame.
    pub fn seq(&self) -> Option<i64> {
        match self {
            VerifyError::Broken { seq, .. } => Some(*seq),
            VerifyError::HeadMismatch { expected_seq, .. } => Some(*expected_seq),
            VerifyError::Store(_) => None,
        }
    }
}

fn describe(f: ChainFault) -> String {
    match f {
        ChainFault::Gap { expected } => format!("expected seq {expected} here (a row is missing)"),
        ChainFault::BrokenLink => "prev_hash does not match the previous row's hash".into(),
        ChainFault::BadHash => "hash does not match the row's contents (the row was edited)".into(),
    }
}

/// Walks the whole chain. With `expect_head`, also checks that the row at that seq carries
/// that hash, which catches a tail that was rewritten or cut off.
pub fn verify(conn: &Connection, expect_head: Option<&Head>) -> Result<VerifyReport, VerifyError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM events ORDER BY seq"))
        .map_err(StoreError::from)?;
    let mut rows = stmt.query([]).map_err(StoreError::from)?;
    let mut prev: Option<(i64, String)> = None;
    let mut count = 0i64;
    let mut at_expected: Option<String> = None;
    while let Some(row) = rows.next().map_err(StoreError::from)? {
        let e = from_row(row).map_err(StoreError::from)?;
        if let Err(f) = check_link(prev.as_ref().map(|(s, h)| (*s, h.as_str())), &e) {
            return Err(VerifyError::Broken {
                seq: e.seq,
                reason: describe(f),
            });
        }
        if let Some(h) = expect_head {
            if h.seq == e.seq {
                at_expected = Some(e.hash.clone());
            }
        }
        count += 1;
        prev = Some((e.seq, e.hash));
    }
    let head = match prev {
        Some((seq, hash)) => Head { seq, hash },
        None => Head {
            seq: 0,
            hash: GENESIS_HASH.into(),
        },
    };
    if let Some(h) = expect_head {
        let found = match at_expected {
            Some(hash) if hash == h.hash => None,
            Some(hash) => Some(format!("but seq {} has hash {hash}", h.seq)),
            None if h.seq == 0 && h.hash == GENESIS_HASH => None,
            None => Some(format!("but the log ends at seq {}", head.seq)),
        };
        if let Some(found) = found {
            return Err(VerifyError::HeadMismatch {
                expected_seq: h.seq,
                expected_hash: h.hash.clone(),
                found,
            });
        }
    }
    Ok(VerifyReport {
        events: count,
        head,
    })
}

/// Which events `export` writes.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only events after this seq.
    pub after: Option<i64>,
    /// Only this stream.
    pub stream: Option<String>,
    /// Only events at or after this time (RFC 3339, canonical form).
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, canonical form).
    pub until: Option<String>,
    /// Renumber from seq 1 and re-chain the hashes, so that a part of the log becomes a
    /// standalone history `events import` (and the replay tests) accept: a fixture.
    pub fixture: bool,
}

/// Writes the exact stored envelopes as JSON lines. Returns how many.
pub fn export(
    conn: &Connection,
    filter: &ExportFilter,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let q = EventQuery {
        after: filter.after,
        stream: filter.stream.clone(),
        since: filter.since.clone(),
        until: filter.until.clone(),
        ..Default::default()
    };
    let mut n = 0;
    let mut prev_hash = domain::envelope::GENESIS_HASH.to_string();
    super::readers::for_each_event(conn, &q, |mut e| {
        if filter.fixture {
            // Events hold no secrets (they live in the vault), so a fixture is the events
            // themselves, renumbered and re-chained.
            e.seq = n as i64 + 1;
            e.prev_hash = prev_hash.clone();
            e.hash = e.compute_hash();
            prev_hash = e.hash.clone();
        }
        serde_json::to_writer(&mut *out, &e).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

/// Imports JSON lines written by [`export`] (from seq 1, the whole log) into an empty store,
/// checking the chain as it goes and applying projections. All or nothing.
pub fn import(conn: &mut Connection, input: &mut dyn BufRead) -> Result<u64, StoreError> {
    let existing: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    if existing > 0 {
        return Err(StoreError::BadImport {
            line: 0,
            message: format!(
                "the data dir already holds {existing} events; import needs an empty one"
            ),
        });
    }
    let tx = conn.transaction()?;
    let mut prev: Option<(i64, String)> = None;
    let mut n = 0u64;
    let mut line = String::new();
    let mut lineno = 0usize;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        lineno += 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| StoreError::BadImport {
            line: lineno,
            message,
        };
        let e: RecordedEvent =
            serde_json::from_str(line.trim_end()).map_err(|err| bad(err.to_string()))?;
        check_link(prev.as_ref().map(|(s, h)| (*s, h.as_str())), &e)
            .map_err(|f| bad(format!("seq {}: {}", e.seq, describe(f))))?;
        let event = e.decode().map_err(|err| bad(err.to_string()))?;
        insert(&tx, &e)?;
        projections::apply_decoded(&tx, projections::registry(), &e, &event)?;
        let stream_type = e.stream.split('-').next().unwrap_or("").to_string();
        tx.prepare_cached(
            "INSERT INTO streams (stream, type, version) VALUES (?1, ?2, ?3)
             ON CONFLICT(stream) DO UPDATE SET version = excluded.version",
        )?
        .execute(params![e.stream, stream_type, e.stream_version])?;
        prev = Some((e.seq, e.hash));
        n += 1;
    }
    if let Some((seq, _)) = prev {
        tx.execute("UPDATE projection_versions SET last_seq = ?1", [seq])?;
    }
    tx.commit()?;
    Ok(n)
}
