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
        if let Some(cmd) = &command_id {
            if let Some(r) = by_command_id(conn, cmd)? {
                return Ok(r);
            }
        }
        // Caller-chosen ids (when there is one per event) make the append idempotent too.
        let given_ids = event_ids.filter(|ids| ids.len() == events.len());
        if let Some(ids) = &given_ids {
            if let Some(r) = by_event_ids(conn, ids)? {
                return Ok(r);
            }
        }
        let actual = self.streams.get(conn, &stream)?;
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::Conflict {
                stream,
                expected,
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
        let mut ids = given_ids.map(Vec::into_iter);
        let actor = actor.to_string();
        let first_seq = self.head.seq + 1;
        let mut version = actual;
        self.appended.reserve(events.len());
        for event in &events {
            version += 1;
            let event_id = match ids.as_mut().and_then(Iterator::next) {
                Some(id) => id,
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
        self.streams.set(&stream, version);
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

    fn run_group(
        &mut self,
        first: Box<dyn Job>,
        jobs: &mut Vec<Box<dyn Job>>,
        appended: &mut Vec<RecordedEvent>,
        closing: &mut bool,
    ) -> Result<(), StoreError> {
        let conn = &self.conn;
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let now = self.clock.now();
        let now_text = now.to_string();
        // Whether the transaction holds the work of an earlier unit. The first unit of a
        // transaction needs no savepoint: if it fails, the whole transaction is rolled back
        // and begun again.
        let mut holds_work = false;
        let mut next = Some(first);
        while let Some(mut job) = next.take() {
            if holds_work {
                conn.prepare_cached("SAVEPOINT unit")?.execute([])?;
            }
            let saved_seq = self.head.seq;
            let saved_hash = self.head.hash.clone();
            let saved_len = appended.len();
            let ok = {
                let mut uow = Uow {
                    conn,
                    head: &mut self.head,
                    appended,
                    streams: &mut self.streams,
                    now,
                    now_text: &now_text,
                };
                job.run(&mut uow)
            };
            jobs.push(job);
            if ok {
                if holds_work {
                    conn.prepare_cached("RELEASE unit")?.execute([])?;
                }
                self.streams.keep_unit();
                holds_work = true;
            } else {
                if holds_work {
                    conn.prepare_cached("ROLLBACK TO unit")?.execute([])?;
                    conn.prepare_cached("RELEASE unit")?.execute([])?;
                } else {
                    conn.prepare_cached("ROLLBACK")?.execute([])?;
                    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                }
                self.streams.undo_unit();
                self.head.seq = saved_seq;
                self.head.hash = saved_hash;
                appended.truncate(saved_len);
            }
            // Units that arrived while this one ran join the group.
            if jobs.len() < self.max_batch && !*closing {
                match self.rx.try_recv() {
                    Ok(Msg::Job(j)) => next = Some(j),
                    Ok(Msg::Close) => *closing = true,
                    Err(_) => {}
                }
            }
        }
        self.streams.flush(conn)?;
        // Inline projections are always at the head of the log, so their `last_seq` is not
        // rewritten on every commit (a page per commit); rebuilds and imports record it.
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    }
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
        let path = s.path().to_path_buf();
        s.close().await;
        let (streams, events) = stored_versions(&path);
        assert_eq!(streams, vec![("user-a".into(), 3), ("user-b".into(), 1)]);
        assert_eq!(streams, events);
        crate::store::verify(&Connection::open(&path).unwrap(), None).unwrap();
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
        let path = s.path().to_path_buf();
        s.close().await;
        let (streams, events) = stored_versions(&path);
        assert_eq!(streams.len(), 20);
        assert_eq!(streams, events);
        crate::store::verify(&Connection::open(&path).unwrap(), None).unwrap();
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
