//! The event store: one append-only SQLite table, one writer, many readers.
//!
//! - One writer thread owns the write connection. Callers queue units of work; the writer
//!   takes everything queued, commits it in one `BEGIN IMMEDIATE` transaction, and
//!   acknowledges each unit only after the commit is durable (`synchronous=FULL`). That is
//!   group commit: many concurrent single-event appends share one fsync. One unit failing
//!   rejects only that unit: units of work get a SAVEPOINT each, plain appends are replayed
//!   instead (see `writer::Writer::run_group`).
//! - Projections are applied inline, inside the same transaction as the append.
//! - Readers use their own WAL connections and see only committed data.
//! - The writer checkpoints the WAL itself, between groups, after every few MiB of WAL and
//!   when idle, so the WAL is reused from its start instead of growing without bound.

mod chain;
mod error;
mod migrate;
mod readers;
mod rebuild;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{Actor, Event, RecordedEvent};
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

pub use chain::{export, import, verify, ExportFilter, VerifyError, VerifyReport};
pub use error::StoreError;
pub use readers::{query_events, EventQuery};
pub use rebuild::{rebuild, RebuildReport};
pub use writer::Uow;

use crate::clock::Clock;

/// What the stream's version must be for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version.
    Exact(i64),
}

/// Events to append to one stream.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Target stream, e.g. `user-<id>`.
    pub stream: String,
    /// Optimistic concurrency check.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<Event>,
    /// Who causes them.
    pub actor: Actor,
    /// Makes the append idempotent: a repeated command id returns the first result.
    pub command_id: Option<String>,
    /// Groups related events.
    pub correlation_id: Option<String>,
    /// What caused these events.
    pub causation_id: Option<String>,
    /// Event ids to use (UUIDv7 are made when absent). An append whose first event id is
    /// already stored returns the stored result.
    pub event_ids: Option<Vec<String>>,
}

impl AppendRequest {
    /// An append with no version check and no ids.
    pub fn new(stream: impl Into<String>, actor: Actor, events: Vec<Event>) -> Self {
        AppendRequest {
            stream: stream.into(),
            expected: ExpectedVersion::Any,
            events,
            actor,
            command_id: None,
            correlation_id: None,
            causation_id: None,
            event_ids: None,
        }
    }

    /// Sets the expected version.
    pub fn expecting(mut self, v: ExpectedVersion) -> Self {
        self.expected = v;
        self
    }

    /// Sets the command id.
    pub fn command(mut self, id: impl Into<String>) -> Self {
        self.command_id = Some(id.into());
        self
    }
}

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppendResult {
    /// Seq of the first event.
    pub first_seq: i64,
    /// Seq of the last event.
    pub last_seq: i64,
    /// The stream's version after the append.
    pub stream_version: i64,
    /// True when the command or event ids had been appended before and nothing was added.
    pub duplicate: bool,
}

/// The chain head: the last event's seq and hash (`0` and the genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    /// Last seq.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// Tuning of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most units of work committed together.
    pub max_batch: usize,
    /// How long the writer stays idle before it checkpoints the WAL. Under load it
    /// checkpoints by volume, every few MiB of WAL.
    pub checkpoint_every: Duration,
    /// `synchronous=FULL` (durable on ack) when true; OFF only for throwaway stores.
    pub durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 512,
            checkpoint_every: Duration::from_secs(2),
            durable: true,
        }
    }
}

/// The narrow interface of an event log. The SQLite store implements it; a PostgreSQL
/// one could, which is why nothing above it names SQLite.
pub trait EventLog: Send + Sync {
    /// Appends events to one stream.
    fn append(
        &self,
        req: AppendRequest,
    ) -> impl std::future::Future<Output = Result<AppendResult, StoreError>> + Send;
    /// Events after `after`, at most `limit`.
    fn read_after(
        &self,
        after: i64,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;
    /// The chain head.
    fn head(&self) -> Head;
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    sender: std::sync::mpsc::Sender<writer::Msg>,
    readers: readers::Readers,
    committed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    head: Arc<Mutex<Head>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Opens a connection with the pragmas every connection of the store uses.
pub(crate) fn open_connection(path: &Path, durable: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "OFF" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The bundled SQLite shares one page-cache LRU between all connections of the process: a
    // generous cache keeps the writer's hot pages from being evicted by readers.
    conn.pragma_update(None, "cache_size", -65536)?;
    // Savepoint journals stay in memory instead of spilling to temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

impl EventStore {
    /// Opens (creating if needed) the store at `path`: runs migrations, rebuilds any
    /// projection whose version changed, and starts the writer.
    pub fn open(
        path: &Path,
        clock: Arc<dyn Clock>,
        opts: StoreOptions,
    ) -> Result<Self, StoreError> {
        let mut conn = open_connection(path, opts.durable)?;
        migrate::run(&mut conn)?;
        rebuild::ensure_projections(&mut conn, path)?;
        let head = chain::read_head(&conn)?;
        let head = Arc::new(Mutex::new(head));
        let (committed, _) = broadcast::channel(1024);
        let (sender, rx) = std::sync::mpsc::channel();
        let writer = writer::spawn(conn, rx, clock, opts, committed.clone(), head.clone())?;
        Ok(EventStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                sender,
                readers: readers::Readers::new(path.to_path_buf()),
                committed,
                head,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in the writer, inside its own savepoint of a group-committed transaction.
    /// Returns once the transaction is durable. When `f` fails, everything it did is rolled
    /// back and the rest of the group commits as usual.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Uow<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = writer::WriteJob::new(f, tx);
        self.inner
            .sender
            .send(writer::Msg::Job(Box::new(job)))
            .map_err(|_| E::from(StoreError::Closed))?;
        rx.await.map_err(|_| E::from(StoreError::Closed))?
    }

    /// Runs a read on a pooled read connection, off the async threads.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.readers.read(f).await
    }

    /// Committed events, in batches, as they commit. Live only: nothing is replayed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<RecordedEvent>>> {
        self.inner.committed.subscribe()
    }

    /// Stops accepting work, lets the writer commit everything queued, and waits for it.
    pub async fn close(&self) {
        let _ = self.inner.sender.send(writer::Msg::Close);
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl EventLog for EventStore {
    async fn append(&self, req: AppendRequest) -> Result<AppendResult, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .sender
            .send(writer::Msg::Job(Box::new(writer::AppendJob::new(req, tx))))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_after(&self, after: i64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            query_events(
                c,
                &EventQuery {
                    after: Some(after),
                    limit: Some(limit),
                    ..Default::default()
                },
            )
        })
        .await
    }

    fn head(&self) -> Head {
        self.inner.head.lock().map(|h| h.clone()).unwrap_or(Head {
            seq: 0,
            hash: domain::envelope::GENESIS_HASH.into(),
        })
    }
}

/// Opens the database for offline work (the `events` commands): migrated, projections
/// ensured, no writer thread. `create` allows a new, empty database.
pub fn open_offline(path: &Path, create: bool) -> Result<Connection, StoreError> {
    if !create && !path.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no database at {} (is RM_DATA_DIR right?)", path.display()),
        )));
    }
    let mut conn = open_connection(path, true)?;
    migrate::run(&mut conn)?;
    rebuild::ensure_projections(&mut conn, path)?;
    Ok(conn)
}

pub use rebuild::replay_into;
