//! The single writer: group commit with one savepoint per unit of work, and the WAL
//! checkpoints.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Runs inside the group's transaction. Returns whether it succeeded (and must be kept).
    fn run(&mut self, uow: &mut Uow<'_>) -> bool;
    /// Whether the unit can simply be run again, with the same effect, after the transaction
    /// it ran in was rolled back. Such a unit needs no savepoint of its own when everything
    /// before it in the transaction is replayable too: should it fail after writing, the
    /// writer rolls the transaction back and runs the units kept so far again (see
    /// [`Writer::run_group`]). Its caller cannot tell: nothing is acknowledged before
    /// `COMMIT`.
    fn replayable(&self) -> bool {
        false
    }
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

/// A plain append, as [`EventLog::append`](super::EventLog::append) sends it. It keeps its
/// request, so it is replayable.
pub struct AppendJob {
    req: AppendRequest,
    out: Option<Result<AppendResult, StoreError>>,
    reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

impl AppendJob {
    pub fn new(
        req: AppendRequest,
        reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    ) -> Self {
        AppendJob {
            req,
            out: None,
            reply,
        }
    }
}

impl Job for AppendJob {
    fn run(&mut self, uow: &mut Uow<'_>) -> bool {
        let r = uow.append_ref(&self.req);
        let ok = r.is_ok();
        self.out = Some(r);
        ok
    }

    fn replayable(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, committed: Result<(), &StoreError>) {
        let out = match (committed, self.out) {
            (_, None) => Err(StoreError::Closed),
            (Ok(()), Some(r)) => r,
            (Err(_), Some(Err(e))) => Err(e),
            (Err(e), Some(Ok(_))) => Err(StoreError::Migration(format!("commit failed: {e}"))),
        };
        let _ = self.reply.send(out);
    }
}

/// Stream versions as the writer knows them. The writer is the only one that appends, so
/// it can keep them in memory: the expected-version check needs no query once a stream has
/// been seen, and `streams` is written once per stream per group, just before `COMMIT`,
/// instead of once per append.
#[derive(Default)]
pub(crate) struct StreamVersions {
    /// Versions as of the last commit (a bounded cache of the `streams` table).
    committed: HashMap<String, i64>,
    /// Versions assigned by the open group, not yet written to `streams`.
    pending: HashMap<String, i64>,
    /// How to undo the running unit's changes to `pending`: each stream with its value
    /// before the unit touched it.
    undo: Vec<(String, Option<i64>)>,
}

/// Most stream versions kept in memory; beyond that the cache starts over (a stream not in
/// memory costs one primary-key lookup).
const MAX_CACHED_STREAMS: usize = 100_000;

impl StreamVersions {
    /// The stream's current version inside the open group (`0` when it does not exist).
    fn get(&mut self, conn: &Connection, stream: &str) -> Result<i64, StoreError> {
        if let Some(v) = self.pending.get(stream) {
            return Ok(*v);
        }
        if let Some(v) = self.committed.get(stream) {
            return Ok(*v);
        }
        // `streams` is only written right before COMMIT, so inside the group it still holds
        // the committed versions.
        let v: Option<i64> = conn
            .prepare_cached("SELECT version FROM streams WHERE stream = ?1")?
            .query_row([stream], |r| r.get(0))
            .optional()?;
        if let Some(v) = v {
            self.remember(stream.to_string(), v);
        }
        Ok(v.unwrap_or(0))
    }

    fn set(&mut self, stream: &str, version: i64) {
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
    fn keep_unit(&mut self) {
        self.undo.clear();
    }

    /// The unit was rolled back: so are its versions.
    fn undo_unit(&mut self) {
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

    /// Writes the group's versions to `streams`, inside the group's transaction.
    fn flush(&self, conn: &Connection) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(
            "INSERT INTO streams (stream, type, version) VALUES (?1, ?2, ?3)
             ON CONFLICT(stream) DO UPDATE SET version = excluded.version",
        )?;
        for (stream, version) in &self.pending {
            let stream_type = stream.split('-').next().unwrap_or("");
            stmt.execute(params![stream, stream_type, version])?;
        }
        Ok(())
    }

    /// The group committed: its versions are now the committed ones.
    fn committed(&mut self) {
        self.undo.clear();
        let pending = std::mem::take(&mut self.pending);
        for (stream, version) in pending {
            self.remember(stream, version);
        }
    }

    /// The group was rolled back: forget its versions.
    fn discard(&mut self) {
        self.undo.clear();
        self.pending.clear();
    }

    fn remember(&mut self, stream: String, version: i64) {
        if self.committed.len() >= MAX_CACHED_STREAMS && !self.committed.contains_key(&stream) {
            self.committed.clear();
        }
        self.committed.insert(stream, version);
    }
}

/// What a unit of work can do: read and write the database inside the writer's transaction
/// and append events. Everything it does commits or rolls back together.
pub struct Uow<'a> {
    conn: &'a Connection,
    head: &'a mut Head,
    appended: &'a mut Vec<RecordedEvent>,
    streams: &'a mut StreamVersions,
    now: Timestamp,
    /// `now` as stored in `occurred_at`.
    now_text: &'a str,
    /// Whether [`Uow::append`] has written anything (a failure before that leaves the
    /// transaction as it was).
    wrote: bool,
}

impl Uow<'_> {
    /// The transaction's connection, for durable tables that are not events (sessions,
    /// vault) and for reading state a decision needs. (The `streams` table is written when
    /// the group commits, so do not read stream versions from it here.)
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// The time this unit of work runs at, from the injected clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Appends events to one stream, applying projections inline.
    pub fn append(&mut self, req: AppendRequest) -> Result<AppendResult, StoreError> {
        self.append_ref(&req)
    }

    fn append_ref(&mut self, req: &AppendRequest) -> Result<AppendResult, StoreError> {
        let conn = self.conn;
        let AppendRequest {
            stream,
            expected,
            events,
            actor,
            command_id,
            correlation_id,
            causation_id,
            event_ids,
        } = req;
        if let Some(cmd) = command_id {
            if let Some(r) = by_command_id(conn, cmd)? {
                return Ok(r);
            }
        }
        // Caller-chosen ids (when there is one per event) make the append idempotent too.
        let given_ids = event_ids.as_ref().filter(|ids| ids.len() == events.len());
        if let Some(ids) = given_ids {
            if let Some(r) = by_event_ids(conn, ids)? {
                return Ok(r);
            }
        }
        let actual = self.streams.get(conn, stream)?;
        let ok = match *expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::Conflict {
                stream: stream.clone(),
                expected: *expected,
                actual,
            });
        }
        if events.is_empty() {
            return Ok(AppendResult {
                first_seq: self.head.seq,
                last_seq: self.head.seq,
                stream_version: actual,
                duplicate: false,
            });
        }
        let mut ids = given_ids.map(|ids| ids.iter());
        let actor = actor.to_string();
        let first_seq = self.head.seq + 1;
        let mut version = actual;
        self.appended.reserve(events.len());
        self.wrote = true;
        for event in events {
            version += 1;
            let event_id = match ids.as_mut().and_then(Iterator::next) {
                Some(id) => id.clone(),
                None => uuid::Uuid::now_v7().to_string(),
            };
            let mut rec = RecordedEvent {
                seq: self.head.seq + 1,
                event_id,
                stream: stream.clone(),
                stream_version: version,
                event_type: event.event_type().to_string(),
                schema_version: event.schema_version(),
                data: event.data_json(),
                actor: actor.clone(),
                occurred_at: self.now_text.to_string(),
                correlation_id: correlation_id.clone(),
                causation_id: causation_id.clone(),
                command_id: command_id.clone(),
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
            self.head.hash.clone_from(&rec.hash);
            self.appended.push(rec);
        }
        self.streams.set(stream, version);
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
        .spawn(move || {
            let head = match chain::read_head(&conn) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "event writer could not read the chain head");
                    return;
                }
            };
            let mut w = Writer {
                conn,
                rx,
                clock,
                max_batch: opts.max_batch.max(1),
                idle_checkpoint: opts.checkpoint_every,
                committed,
                published,
                head,
                streams: StreamVersions::default(),
                since_checkpoint: Volume::default(),
            };
            w.run();
        })
        .map_err(StoreError::Io)
}

/// What was committed since the last checkpoint.
#[derive(Default)]
struct Volume {
    commits: usize,
    events: usize,
}

/// Checkpoint once this many commits or events went into the WAL since the last checkpoint
/// (a few MiB of WAL at most).
const CHECKPOINT_COMMITS: usize = 256;
const CHECKPOINT_EVENTS: usize = 2048;

/// The writer thread's state.
struct Writer {
    conn: Connection,
    rx: Receiver<Msg>,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    /// How long the writer waits, idle, before checkpointing what it committed.
    idle_checkpoint: Duration,
    committed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    published: Arc<Mutex<Head>>,
    /// The chain head including the open group's appends.
    head: Head,
    streams: StreamVersions,
    since_checkpoint: Volume,
}

impl Writer {
    fn run(&mut self) {
        // The writer checkpoints itself, between groups and after their acknowledgements (see
        // `Writer::checkpoint`), rather than inside `COMMIT`.
        if let Err(e) = self.conn.pragma_update(None, "wal_autocheckpoint", 0) {
            tracing::warn!(error = %e, "could not turn off automatic checkpoints on the writer");
        }
        loop {
            let msg = if self.since_checkpoint.commits > 0 {
                match self.rx.recv_timeout(self.idle_checkpoint) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        self.checkpoint();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            };
            let Msg::Job(first) = msg else { break };
            let closing = self.commit_group(first);
            if closing {
                break;
            }
            if self.since_checkpoint.commits >= CHECKPOINT_COMMITS
                || self.since_checkpoint.events >= CHECKPOINT_EVENTS
            {
                self.checkpoint();
            }
        }
        // Anything still queued after Close (or from senders racing it) gets a clear error.
        while let Ok(msg) = self.rx.try_recv() {
            if let Msg::Job(j) = msg {
                j.finish(Err(&StoreError::Closed));
            }
        }
        self.checkpoint();
    }

    /// Copies the WAL into the database. Run by the writer itself, between groups, so no
    /// append is in flight: the checkpoint can take in the whole WAL, and the next commit
    /// then starts writing the WAL from its beginning again instead of growing it. (A
    /// checkpoint on another connection runs alongside the appends and under steady load
    /// never catches up, so the WAL would grow without bound, and appending to a growing
    /// file makes every commit's fsync dearer.) Units that arrive meanwhile queue up and
    /// join the next group; every unit committed so far has been acknowledged.
    fn checkpoint(&mut self) {
        checkpoint(&self.conn);
        self.since_checkpoint = Volume::default();
    }

    /// Runs `first` and whatever else is queued, or gets queued while the group runs, in one
    /// transaction, commits it and acknowledges every unit. A lone unit is never delayed:
    /// the group ends as soon as the queue is empty. Returns whether `Close` was received.
    fn commit_group(&mut self, first: Box<dyn Job>) -> bool {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut appended: Vec<RecordedEvent> = Vec::new();
        let mut closing = false;
        let result = self.run_group(first, &mut jobs, &mut appended, &mut closing);
        match &result {
            Ok(()) => {
                self.streams.committed();
                self.since_checkpoint.commits += 1;
                self.since_checkpoint.events += appended.len();
                if let Ok(mut p) = self.published.lock() {
                    p.clone_from(&self.head);
                }
                if !appended.is_empty() {
                    let _ = self.committed.send(Arc::new(appended));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; rolling back");
                let _ = self.conn.execute_batch("ROLLBACK");
                self.streams.discard();
                if let Ok(h) = chain::read_head(&self.conn) {
                    self.head = h;
                }
            }
        }
        for job in jobs {
            job.finish(result.as_ref().map(|_| ()));
        }
        closing
    }

    /// Runs the group's units in one transaction, then commits it.
    ///
    /// A unit gets a savepoint of its own only when it has to. It needs none when it is the
    /// first in the transaction, nor when it and every unit kept before it are replayable
    /// (plain appends). Such a unit decides everything that can refuse it (idempotency, the
    /// expected version) before it writes, so it nearly always either succeeds or fails
    /// without having written anything. In the rare case that it fails after writing (a
    /// projection refuses its event, a repeated event id within the request), the
    /// transaction is rolled back, begun again and the units kept so far are run again, in
    /// order, each in a savepoint; the failed unit is left out. Nothing has been acknowledged
    /// yet, so no caller can tell.
    fn run_group(
        &mut self,
        first: Box<dyn Job>,
        jobs: &mut Vec<Box<dyn Job>>,
        appended: &mut Vec<RecordedEvent>,
        closing: &mut bool,
    ) -> Result<(), StoreError> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let now = self.clock.now();
        let now_text = now.to_string();
        let start_head = self.head.clone();
        // Whether each unit in `jobs` is kept.
        let mut kept: Vec<bool> = Vec::new();
        // Whether the transaction holds the work of an earlier unit, and whether all of that
        // work can be replayed.
        let mut holds_work = false;
        let mut all_replayable = true;
        let mut next = Some(first);
        while let Some(mut job) = next.take() {
            let replayable = job.replayable();
            let savepoint = holds_work && !(replayable && all_replayable);
            let run = Run {
                now,
                now_text: &now_text,
                savepoint,
            };
            match self.run_unit(job.as_mut(), appended, &run)? {
                Outcome::Kept => {
                    holds_work = true;
                    all_replayable &= replayable;
                    kept.push(true);
                }
                Outcome::Failed => kept.push(false),
                Outcome::FailedAfterWriting => {
                    // Only a unit without a savepoint gets here, so everything kept so far
                    // is replayable.
                    self.conn.prepare_cached("ROLLBACK")?.execute([])?;
                    self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                    self.streams.discard();
                    self.head.clone_from(&start_head);
                    appended.clear();
                    let run = Run {
                        savepoint: true,
                        ..run
                    };
                    holds_work = false;
                    for (job, kept) in jobs.iter_mut().zip(kept.iter_mut()) {
                        if *kept {
                            *kept = matches!(
                                self.run_unit(job.as_mut(), appended, &run)?,
                                Outcome::Kept
                            );
                            holds_work |= *kept;
                        }
                    }
                    kept.push(false);
                }
            }
            jobs.push(job);
            // Units that arrived while this one ran join the group.
            if jobs.len() < self.max_batch && !*closing {
                match self.rx.try_recv() {
                    Ok(Msg::Job(j)) => next = Some(j),
                    Ok(Msg::Close) => *closing = true,
                    Err(_) => {}
                }
            }
        }
        self.streams.flush(&self.conn)?;
        // Inline projections are always at the head of the log, so their `last_seq` is not
        // rewritten on every commit (a page per commit); rebuilds and imports record it.
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }

    /// Runs one unit, in a savepoint if `run.savepoint`. A unit that fails is undone, except
    /// when it ran without a savepoint and may have written: then the caller has to roll
    /// back.
    fn run_unit(
        &mut self,
        job: &mut dyn Job,
        appended: &mut Vec<RecordedEvent>,
        run: &Run<'_>,
    ) -> Result<Outcome, StoreError> {
        let conn = &self.conn;
        if run.savepoint {
            conn.prepare_cached("SAVEPOINT unit")?.execute([])?;
        }
        let saved_seq = self.head.seq;
        let saved_hash = self.head.hash.clone();
        let saved_len = appended.len();
        let (ok, wrote) = {
            let mut uow = Uow {
                conn,
                head: &mut self.head,
                appended,
                streams: &mut self.streams,
                now: run.now,
                now_text: run.now_text,
                wrote: false,
            };
            let ok = job.run(&mut uow);
            // Only appends are tracked; any other unit may have written through `conn()`.
            (ok, uow.wrote || !job.replayable())
        };
        if ok {
            if run.savepoint {
                conn.prepare_cached("RELEASE unit")?.execute([])?;
            }
            self.streams.keep_unit();
            return Ok(Outcome::Kept);
        }
        if run.savepoint {
            conn.prepare_cached("ROLLBACK TO unit")?.execute([])?;
            conn.prepare_cached("RELEASE unit")?.execute([])?;
        } else if wrote {
            return Ok(Outcome::FailedAfterWriting);
        }
        self.streams.undo_unit();
        self.head.seq = saved_seq;
        self.head.hash = saved_hash;
        appended.truncate(saved_len);
        Ok(Outcome::Failed)
    }
}

/// How [`Writer::run_unit`] runs a unit.
#[derive(Clone, Copy)]
struct Run<'a> {
    now: Timestamp,
    now_text: &'a str,
    savepoint: bool,
}

/// What became of a unit.
enum Outcome {
    /// It succeeded; its work stays in the transaction.
    Kept,
    /// It failed and left nothing behind.
    Failed,
    /// It failed without a savepoint after writing: the transaction must be rolled back.
    FailedAfterWriting,
}

/// A passive WAL checkpoint (never blocks writers or readers).
pub fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL checkpoint failed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use domain::event::{UserCreated, UserLoggedIn};
    use domain::users::Role;
    use domain::{Actor, Event};
    use rusqlite::Connection;

    use crate::clock::SystemClock;
    use crate::store::{
        AppendRequest, EventLog, EventStore, ExpectedVersion, StoreError, StoreOptions,
    };

    fn created(id: &str) -> Event {
        UserCreated {
            user_id: id.into(),
            username: format!("name-{id}"),
            role: Role::Operator,
            password_ref: format!("password-{id}"),
            via_setup: false,
        }
        .into()
    }

    fn logged_in(id: &str, n: usize) -> Event {
        UserLoggedIn {
            user_id: id.into(),
            session_id: format!("s{n}"),
            ip: None,
        }
        .into()
    }

    fn req(stream: &str, expected: ExpectedVersion, events: Vec<Event>) -> AppendRequest {
        AppendRequest::new(stream, Actor::System("test".into()), events).expecting(expected)
    }

    fn open(dir: &std::path::Path) -> EventStore {
        EventStore::open(
            &dir.join("restic-manager.db"),
            Arc::new(SystemClock),
            StoreOptions {
                durable: false,
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Stream names with a version, in name order.
    type Versions = Vec<(String, i64)>;

    /// `streams` as stored, and the highest `stream_version` of each stream in `events`.
    fn stored_versions(path: &std::path::Path) -> (Versions, Versions) {
        let c = Connection::open(path).unwrap();
        let q = |sql: &str| -> Versions {
            let mut s = c.prepare(sql).unwrap();
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            rows.map(Result::unwrap).collect()
        };
        (
            q("SELECT stream, version FROM streams ORDER BY stream"),
            q("SELECT stream, max(stream_version) FROM events GROUP BY stream ORDER BY stream"),
        )
    }

    /// Closes the store and checks what it left on disk: `streams` agrees with the highest
    /// `stream_version` of each stream in `events`, and the hash chain verifies. Returns
    /// `streams` for the test's own expectations.
    async fn close_and_check(s: EventStore) -> Versions {
        let path = s.path().to_path_buf();
        s.close().await;
        let (streams, events) = stored_versions(&path);
        assert_eq!(streams, events);
        crate::store::verify(&Connection::open(&path).unwrap(), None).unwrap();
        streams
    }

    /// A unit that appends and then fails leaves no stream version behind, also when it
    /// shares its group with units that append to the same stream before and after it.
    #[tokio::test]
    async fn a_failed_unit_takes_its_stream_versions_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let alone = s
            .write(|uow| -> Result<(), StoreError> {
                uow.append(req("user-a", ExpectedVersion::NoStream, vec![created("a")]))?;
                Err(StoreError::Closed)
            })
            .await;
        assert!(matches!(alone, Err(StoreError::Closed)));

        // The first job holds the writer for a moment so that the others queue up behind it
        // and join its group.
        let hold = s.write(|uow| -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(100));
            uow.append(req("user-a", ExpectedVersion::NoStream, vec![created("a")]))?;
            Ok(())
        });
        let fails = s.write(|uow| -> Result<(), StoreError> {
            uow.append(req(
                "user-a",
                ExpectedVersion::Exact(1),
                vec![logged_in("a", 1)],
            ))?;
            uow.append(req("user-b", ExpectedVersion::NoStream, vec![created("b")]))?;
            uow.append(req(
                "user-a",
                ExpectedVersion::Exact(2),
                vec![logged_in("a", 2)],
            ))?;
            Err(StoreError::Closed)
        });
        let after = s.append(req(
            "user-a",
            ExpectedVersion::Exact(1),
            vec![logged_in("a", 3), logged_in("a", 4)],
        ));
        let b = s.append(req("user-b", ExpectedVersion::NoStream, vec![created("b")]));
        let (hold, fails, after, b) = tokio::join!(hold, fails, after, b);
        hold.unwrap();
        assert!(matches!(fails, Err(StoreError::Closed)));
        let after = after.unwrap();
        assert_eq!(
            (after.first_seq, after.last_seq, after.stream_version),
            (2, 3, 3)
        );
        assert_eq!(b.unwrap().stream_version, 1);
        assert_eq!(s.head().seq, 4);
        let streams = close_and_check(s).await;
        assert_eq!(streams, vec![("user-a".into(), 3), ("user-b".into(), 1)]);
    }

    /// A failing first unit of a group is rolled back on its own; the units after it commit.
    #[tokio::test]
    async fn a_failed_first_unit_does_not_take_the_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let first = s.write(|uow| -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(100));
            uow.append(req("user-x", ExpectedVersion::Any, vec![created("x")]))?;
            Err(StoreError::Closed)
        });
        let rest = futures::future::join_all((0..20).map(|i| {
            s.append(req(
                &format!("user-{i}"),
                ExpectedVersion::NoStream,
                vec![created(&i.to_string())],
            ))
        }));
        let (first, rest) = tokio::join!(first, rest);
        assert!(matches!(first, Err(StoreError::Closed)));
        for r in rest {
            r.unwrap();
        }
        assert_eq!(s.head().seq, 20);
        assert_eq!(close_and_check(s).await.len(), 20);
    }

    /// A plain append that holds the writer for a moment before it runs, so that the units
    /// sent after it queue up and join its group. Replayable like any plain append.
    struct Slow(super::AppendJob);

    impl super::Job for Slow {
        fn run(&mut self, uow: &mut super::Uow<'_>) -> bool {
            std::thread::sleep(Duration::from_millis(100));
            self.0.run(uow)
        }
        fn replayable(&self) -> bool {
            true
        }
        fn finish(self: Box<Self>, committed: Result<(), &StoreError>) {
            Box::new(self.0).finish(committed)
        }
    }

    /// Plain appends share a transaction without savepoints. One that fails after writing
    /// (here: the same event id twice in one request) is left out and the units before it
    /// are replayed; every other append of the group commits with the seqs and versions it
    /// was told, and the chain stays intact.
    #[tokio::test]
    async fn an_append_failing_after_writing_is_left_out_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let (tx, hold) = tokio::sync::oneshot::channel();
        let slow = req("user-h", ExpectedVersion::NoStream, vec![created("h")]);
        s.inner
            .sender
            .send(super::Msg::Job(Box::new(Slow(super::AppendJob::new(
                slow, tx,
            )))))
            .unwrap();
        let a = s.append(req("user-a", ExpectedVersion::NoStream, vec![created("a")]));
        let mut twice = req(
            "user-b",
            ExpectedVersion::NoStream,
            vec![created("b"), logged_in("b", 1)],
        );
        twice.event_ids = Some(vec!["same-id".into(), "same-id".into()]);
        let bad = s.append(twice);
        let conflict = s.append(req("user-a", ExpectedVersion::Exact(7), vec![]));
        let c = s.append(req("user-c", ExpectedVersion::NoStream, vec![created("c")]));
        let a2 = s.append(req(
            "user-a",
            ExpectedVersion::Exact(1),
            vec![logged_in("a", 1), logged_in("a", 2)],
        ));
        let (hold, a, bad, conflict, c, a2) = tokio::join!(hold, a, bad, conflict, c, a2);
        assert_eq!(hold.unwrap().unwrap().first_seq, 1);
        let a = a.unwrap();
        assert_eq!((a.first_seq, a.stream_version), (2, 1));
        assert!(
            matches!(bad, Err(StoreError::DuplicateEventId(ref id)) if id == "same-id"),
            "{bad:?}"
        );
        assert!(matches!(
            conflict,
            Err(StoreError::Conflict { actual: 1, .. })
        ));
        let c = c.unwrap();
        assert_eq!((c.first_seq, c.stream_version), (3, 1));
        let a2 = a2.unwrap();
        assert_eq!((a2.first_seq, a2.last_seq, a2.stream_version), (4, 5, 3));
        assert_eq!(s.head().seq, 5);
        let path = s.path().to_path_buf();
        let streams = close_and_check(s).await;
        assert_eq!(
            streams,
            vec![
                ("user-a".into(), 3),
                ("user-c".into(), 1),
                ("user-h".into(), 1)
            ]
        );
        let c = Connection::open(&path).unwrap();
        let users: i64 = c
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(users, 3, "the failed append's projection write is gone too");
        // All of it was one group: one `occurred_at`.
        let at: i64 = c
            .query_row("SELECT count(DISTINCT occurred_at) FROM events", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(at, 1);
    }

    /// A durable store under concurrent appends: appends share groups, every append is
    /// answered only after the published head covers it, and the commit feed carries every
    /// event once, in seq order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_durable_appends_are_answered_and_published_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = EventStore::open(
            &dir.path().join("restic-manager.db"),
            Arc::new(SystemClock),
            StoreOptions::default(),
        )
        .unwrap();
        let mut feed = s.subscribe();
        let writers = (0..16).map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let stream = format!("user-w{w}");
                s.append(req(
                    &stream,
                    ExpectedVersion::NoStream,
                    vec![created(&w.to_string())],
                ))
                .await
                .unwrap();
                for n in 0..40 {
                    let r = s
                        .append(req(
                            &stream,
                            ExpectedVersion::Exact(n + 1),
                            vec![logged_in(&w.to_string(), n as usize)],
                        ))
                        .await
                        .unwrap();
                    assert_eq!(r.stream_version, n + 2);
                    assert!(
                        s.head().seq >= r.last_seq,
                        "answered before it was published"
                    );
                }
            })
        });
        for w in futures::future::join_all(writers).await {
            w.unwrap();
        }
        let total = 16 * 41;
        assert_eq!(s.head().seq, total);
        let mut seqs = Vec::new();
        let mut biggest = 0;
        while seqs.len() < total as usize {
            let batch = feed.recv().await.unwrap();
            biggest = biggest.max(batch.len());
            seqs.extend(batch.iter().map(|e| e.seq));
        }
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        assert!(biggest > 1, "concurrent appends shared no group");
        assert_eq!(close_and_check(s).await.len(), 16);
    }

    /// Versions kept in memory survive a reopen: they are read back from `streams`.
    #[tokio::test]
    async fn stream_versions_are_stored_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        for n in 0..3 {
            let r = s
                .append(req(
                    "user-a",
                    ExpectedVersion::Any,
                    vec![logged_in("a", n), logged_in("a", n + 10)],
                ))
                .await
                .unwrap();
            assert_eq!(r.stream_version, 2 * (n as i64 + 1));
        }
        s.close().await;
        let s = open(dir.path());
        let stale = s
            .append(req(
                "user-a",
                ExpectedVersion::Exact(5),
                vec![logged_in("a", 7)],
            ))
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict { actual: 6, .. })));
        let r = s
            .append(req(
                "user-a",
                ExpectedVersion::Exact(6),
                vec![logged_in("a", 7)],
            ))
            .await
            .unwrap();
        assert_eq!(r.stream_version, 7);
        s.close().await;
    }
}
