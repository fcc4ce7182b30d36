//! Stream versions: kept in memory by the writer, written to `streams` in batches.
//!
//! The writer is the only one that appends, so it knows every stream's version: the
//! expected-version check needs no query once a stream has been seen. The `streams` table
//! is their durable copy. Writing it in every group commit cost an upsert per stream per
//! group (and its pages in every commit's WAL), so the writer writes it only every few
//! thousand events, with its checkpoints ([`StreamVersions::flush`]), and when it stops.
//! `store_state.streams_through` records the last seq whose versions `streams` holds; on
//! open, [`catch_up`] reads the versions of the events after it back from the log (a
//! range scan of at most a few thousand rows). So `streams` is exact whenever the writer
//! is not running, and the writer's own view is exact always.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// Most clean stream versions kept in memory; beyond that the cache starts over (a stream
/// not in memory costs one primary-key lookup). Versions not written to `streams` yet are
/// never dropped.
const MAX_CACHED_STREAMS: usize = 100_000;

/// Stream versions as the writer knows them.
#[derive(Default)]
pub(crate) struct StreamVersions {
    /// Committed versions that `streams` holds too (a bounded cache of the table).
    clean: HashMap<String, i64>,
    /// Committed versions not written to `streams` yet.
    dirty: HashMap<String, i64>,
    /// Versions assigned by the open group.
    pending: HashMap<String, i64>,
    /// How to undo the running unit's changes to `pending`: each stream with its value
    /// before the unit touched it.
    undo: Vec<(String, Option<i64>)>,
}

impl StreamVersions {
    /// The stream's current version inside the open group (`0` when it does not exist).
    pub fn get(&mut self, conn: &Connection, stream: &str) -> Result<i64, StoreError> {
        if let Some(v) = self
            .pending
            .get(stream)
            .or_else(|| self.dirty.get(stream))
            .or_else(|| self.clean.get(stream))
        {
            return Ok(*v);
        }
        // Not in memory, so neither pending nor dirty: `streams` holds its version.
        let v: Option<i64> = conn
            .prepare_cached("SELECT version FROM streams WHERE stream = ?1")?
            .query_row([stream], |r| r.get(0))
            .optional()?;
        if let Some(v) = v {
            self.remember(stream.to_string(), v);
        }
        Ok(v.unwrap_or(0))
    }

    pub fn set(&mut self, stream: &str, version: i64) {
        match self.pending.get_mut(stream) {
            Some(v) => {
                self.undo.push((stream.to_string(), Some(*v)));
                *v = version;
            }
            None => {
                self.pending.insert(stream.to_string(), version);
                self.undo.push((stream.to_string(), None));
            }
        }
    }

    /// The unit succeeded: its versions stay in the group.
    pub fn keep_unit(&mut self) {
        self.undo.clear();
    }

    /// The unit was rolled back: so are its versions.
    pub fn undo_unit(&mut self) {
        while let Some((stream, before)) = self.undo.pop() {
            match before {
                Some(v) => {
                    self.pending.insert(stream, v);
                }
                None => {
                    self.pending.remove(&stream);
                }
            }
        }
    }

    /// How many committed versions wait to be written.
    pub fn unwritten(&self) -> usize {
        self.dirty.len()
    }

    /// Writes every version not in `streams` yet (the committed ones and the open group's)
    /// and records `through` (the open group's last seq), inside the open transaction.
    /// Once that transaction commits, call [`StreamVersions::committed`] with `flushed`.
    pub fn flush(&self, conn: &Connection, through: i64) -> Result<(), StoreError> {
        write(
            conn,
            self.dirty
                .iter()
                .filter(|(s, _)| !self.pending.contains_key(*s))
                .chain(self.pending.iter())
                .map(|(s, v)| (s.as_str(), *v)),
        )?;
        set_through(conn, through)
    }

    /// The group committed: its versions are the committed ones now. `flushed`: whether
    /// the group wrote them all to `streams` ([`StreamVersions::flush`]).
    pub fn committed(&mut self, flushed: bool) {
        self.undo.clear();
        let pending = std::mem::take(&mut self.pending);
        if flushed {
            for (stream, version) in std::mem::take(&mut self.dirty) {
                self.remember(stream, version);
            }
            for (stream, version) in pending {
                self.remember(stream, version);
            }
        } else {
            for (stream, version) in pending {
                self.clean.remove(&stream);
                self.dirty.insert(stream, version);
            }
        }
    }

    /// The group was rolled back: forget its versions.
    pub fn discard(&mut self) {
        self.undo.clear();
        self.pending.clear();
    }

    fn remember(&mut self, stream: String, version: i64) {
        if self.clean.len() >= MAX_CACHED_STREAMS && !self.clean.contains_key(&stream) {
            self.clean.clear();
        }
        self.clean.insert(stream, version);
    }
}

/// Upserts stream versions into `streams`.
fn write<'a>(
    conn: &Connection,
    versions: impl Iterator<Item = (&'a str, i64)>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO streams (stream, type, version) VALUES (?1, ?2, ?3)
         ON CONFLICT(stream) DO UPDATE SET version = excluded.version",
    )?;
    for (stream, version) in versions {
        stmt.execute(params![stream, stream_type(stream), version])?;
    }
    Ok(())
}

/// A stream's type: the part of its name before the first `-` (`host-…` → `host`).
pub(crate) fn stream_type(stream: &str) -> &str {
    stream.split('-').next().unwrap_or("")
}

/// Records that `streams` holds the versions of every event up to `seq`.
pub(crate) fn set_through(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO store_state (key, value) VALUES ('streams_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute([seq])?;
    Ok(())
}

/// Brings `streams` up to date with the log: the versions of the events after
/// `streams_through` (appended since the writer last wrote them, e.g. before a crash).
/// Returns how many streams it wrote.
pub(crate) fn catch_up(conn: &Connection) -> Result<usize, StoreError> {
    let through: i64 = conn
        .query_row(
            "SELECT value FROM store_state WHERE key = 'streams_through'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT stream, max(stream_version) FROM events WHERE seq > ?1 GROUP BY stream")?
        .query_map([through], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let head: Option<i64> = conn.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    let head = head.unwrap_or(0);
    if rows.is_empty() && head <= through {
        return Ok(0);
    }
    let tx = conn.unchecked_transaction()?;
    write(&tx, rows.iter().map(|(s, v)| (s.as_str(), *v)))?;
    set_through(&tx, head)?;
    tx.commit()?;
    Ok(rows.len())
}
