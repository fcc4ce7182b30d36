//! The single writer: group commit with one savepoint per unit of work.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use domain::envelope::RecordedEvent;
use domain::Timestamp;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, oneshot};

use super::{chain, AppendRequest, AppendResult, ExpectedVersion, Head, StoreError, StoreOptions};
use crate::clock::Clock;

/// A message to the writer.
pub enum Msg {
    /// A unit of work.
    Job(Box<dyn Job>),
    /// Commit what is queued, then stop.
    Close,
}

/// A unit of work as the writer sees it.
pub trait Job: Send {
    /// Runs inside a savepoint. Returns whether it succeeded (and must be kept).
    fn run(&mut self, uow: &mut Uow<'_>) -> bool;
    /// Called after the group's commit (or its failure) with the outcome.
    fn finish(self: Box<Self>, committed: Result<(), &StoreError>);
}

/// A typed closure plus the channel its caller waits on.
pub struct WriteJob<F, T, E> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> WriteJob<F, T, E> {
    pub fn new(f: F, reply: oneshot::Sender<Result<T, E>>) -> Self {
        WriteJob {
            f: Some(f),
            out: None,
            reply,
        }
    }
}

impl<F, T, E> Job for WriteJob<F, T, E>
where
    F: FnOnce(&mut Uow<'_>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(&mut self, uow: &mut Uow<'_>) -> bool {
        let Some(f) = self.f.take() else { return false };
        let r = f(uow);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &StoreError>) {
        let this = *self;
        let out = match (committed, this.out) {
            (_, None) => Err(E::from(StoreError::Closed)),
            (Ok(()), Some(r)) => r,
            (Err(_), Some(Err(e))) => Err(e),
            (Err(e), Some(Ok(_))) => Err(E::from(StoreError::Migration(format!(
                "commit failed: {e}"
            )))),
        };
        let _ = this.reply.send(out);
    }
}

/// What a unit of work can do: read and write the database inside the writer's transaction
/// and append events. Everything it does commits or rolls back together.
pub struct Uow<'a> {
    conn: &'a Connection,
    head: &'a mut Head,
    appended: &'a mut Vec<RecordedEvent>,
    now: Timestamp,
}

impl Uow<'_> {
    /// The transaction's connection, for durable tables that are not events (sessions,
    /// vault) and for reading state a decision needs.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// The time this unit of work runs at, from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Appends events to one stream, applying projections inline.
    pub fn append(&mut self, req: AppendRequest) -> Result<AppendResult, StoreError> {
        let conn = self.conn;
        if let Some(cmd) = &req.command_id {
            if let Some(r) = by_command_id(conn, cmd)? {
                return Ok(r);
            }
        }
        let ids: Vec<String> = match &req.event_ids {
            Some(ids) if ids.len() == req.events.len() => ids.clone(),
            _ => req
                .events
                .iter()
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect(),
        };
        if req.event_ids.is_some() {
            if let Some(r) = by_event_ids(conn, &ids)? {
                return Ok(r);
            }
        }
        let actual: i64 = conn
            .prepare_cached("SELECT version FROM streams WHERE stream = ?1")?
            .query_row([&req.stream], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let ok = match req.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::Conflict {
                stream: req.stream,
                expected: req.expected,
                actual,
            });
        }
        if req.events.is_empty() {
            return Ok(AppendResult {
                first_seq: self.head.seq,
                last_seq: self.head.seq,
                stream_version: actual,
                duplicate: false,
            });
        }
        let actor = req.actor.to_string();
        let occurred_at = self.now.to_string();
        let first_seq = self.head.seq + 1;
        let mut version = actual;
        for (event, event_id) in req.events.iter().zip(ids) {
            version += 1;
            let mut rec = RecordedEvent {
                seq: self.head.seq + 1,
                event_id,
                stream: req.stream.clone(),
                stream_version: version,
                event_type: event.event_type().to_string(),
                schema_version: event.schema_version(),
                data: event.data_json(),
                actor: actor.clone(),
                occurred_at: occurred_at.clone(),
                correlation_id: req.correlation_id.clone(),
                causation_id: req.causation_id.clone(),
                command_id: req.command_id.clone(),
                prev_hash: self.head.hash.clone(),
                hash: String::new(),
            };
            rec.hash = rec.compute_hash();
            chain::insert(conn, &rec).map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::DuplicateEventId(rec.event_id.clone())
                }
                e => StoreError::Sql(e),
            })?;
            projections::apply_decoded(conn, projections::registry(), &rec, event)?;
            self.head.seq = rec.seq;
            self.head.hash = rec.hash.clone();
            self.appended.push(rec);
        }
        let stream_type = req.stream.split('-').next().unwrap_or("").to_string();
        conn.prepare_cached(
            "INSERT INTO streams (stream, type, version) VALUES (?1, ?2, ?3)
             ON CONFLICT(stream) DO UPDATE SET version = excluded.version",
        )?
        .execute(params![req.stream, stream_type, version])?;
        Ok(AppendResult {
            first_seq,
            last_seq: self.head.seq,
            stream_version: version,
            duplicate: false,
        })
    }
}

/// The result of an earlier append with this command id, if any.
fn by_command_id(conn: &Connection, command_id: &str) -> Result<Option<AppendResult>, StoreError> {
    let row: (Option<i64>, Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT min(seq), max(seq), max(stream_version) FROM events WHERE command_id = ?1",
        )?
        .query_row([command_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(match row {
        (Some(first_seq), Some(last_seq), Some(stream_version)) => Some(AppendResult {
            first_seq,
            last_seq,
            stream_version,
            duplicate: true,
        }),
        _ => None,
    })
}

/// The result of an earlier append of exactly these event ids, if they are all stored.
/// Some but not all stored is a caller bug and an error.
fn by_event_ids(conn: &Connection, ids: &[String]) -> Result<Option<AppendResult>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT seq, stream_version FROM events WHERE event_id = ?1")?;
    let mut found: Vec<(i64, i64)> = Vec::new();
    for id in ids {
        if let Some(r) = stmt
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            found.push(r);
        } else if !found.is_empty() {
            return Err(StoreError::DuplicateEventId(ids[0].clone()));
        }
    }
    if found.is_empty() {
        return Ok(None);
    }
    if found.len() != ids.len() {
        return Err(StoreError::DuplicateEventId(ids[0].clone()));
    }
    Ok(Some(AppendResult {
        first_seq: found.iter().map(|f| f.0).min().unwrap_or(0),
        last_seq: found.iter().map(|f| f.0).max().unwrap_or(0),
        stream_version: found.iter().map(|f| f.1).max().unwrap_or(0),
        duplicate: true,
    }))
}

/// Starts the writer thread.
pub fn spawn(
    conn: Connection,
    rx: Receiver<Msg>,
    clock: Arc<dyn Clock>,
    opts: StoreOptions,
    committed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    published: Arc<Mutex<Head>>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name("event-writer".into())
        .spawn(move || writer_loop(conn, rx, clock, opts, committed, published))
        .map_err(StoreError::Io)
}

fn writer_loop(
    conn: Connection,
    rx: Receiver<Msg>,
    clock: Arc<dyn Clock>,
    opts: StoreOptions,
    committed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    published: Arc<Mutex<Head>>,
) {
    let mut head = match chain::read_head(&conn) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "event writer could not read the chain head");
            return;
        }
    };
    // Checkpoints run on their own connection and thread (see `mod.rs`), off the commit path.
    if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", 0) {
        tracing::warn!(error = %e, "could not turn off automatic checkpoints on the writer");
    }
    let mut closing = false;
    while !closing {
        let Ok(first) = rx.recv() else { break };
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(j) => jobs.push(j),
                Msg::Close => {
                    closing = true;
                    break;
                }
            }
            if jobs.len() < opts.max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            commit_group(&conn, &mut head, &clock, jobs, &committed, &published);
        }
    }
    // Anything still queued after Close (or from senders racing it) gets a clear error.
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        j.finish(Err(&StoreError::Closed));
    }
    checkpoint(&conn);
}

/// A passive WAL checkpoint (never blocks writers or readers).
pub fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
}

fn commit_group(
    conn: &Connection,
    head: &mut Head,
    clock: &Arc<dyn Clock>,
    mut jobs: Vec<Box<dyn Job>>,
    committed: &broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    published: &Arc<Mutex<Head>>,
) {
    let mut appended: Vec<RecordedEvent> = Vec::new();
    // A group of one needs no savepoint: if it fails, the whole transaction is rolled back.
    let single = jobs.len() == 1;
    let result: Result<(), StoreError> = (|| {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let now = clock.now();
        for job in jobs.iter_mut() {
            if !single {
                conn.prepare_cached("SAVEPOINT unit")?.execute([])?;
            }
            let saved_head = head.clone();
            let saved_len = appended.len();
            let ok = {
                let mut uow = Uow {
                    conn,
                    head,
                    appended: &mut appended,
                    now,
                };
                job.run(&mut uow)
            };
            if ok {
                if !single {
                    conn.prepare_cached("RELEASE unit")?.execute([])?;
                }
            } else {
                if single {
                    conn.prepare_cached("ROLLBACK")?.execute([])?;
                    *head = saved_head;
                    appended.clear();
                    return Ok(());
                }
                conn.prepare_cached("ROLLBACK TO unit")?.execute([])?;
                conn.prepare_cached("RELEASE unit")?.execute([])?;
                *head = saved_head;
                appended.truncate(saved_len);
            }
        }
        // Inline projections are always at the head of the log, so their `last_seq` is not
        // rewritten on every commit (a page per commit); rebuilds and imports record it.
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    match &result {
        Ok(()) => {
            if let Ok(mut p) = published.lock() {
                *p = head.clone();
            }
            if !appended.is_empty() {
                let _ = committed.send(Arc::new(appended));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "group commit failed; rolling back");
            let _ = conn.execute_batch("ROLLBACK");
            if let Ok(h) = chain::read_head(conn) {
                *head = h;
            }
        }
    }
    for job in jobs {
        job.finish(result.as_ref().map(|_| ()));
    }
}
