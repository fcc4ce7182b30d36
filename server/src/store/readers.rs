//! Read connections and queries over the log itself (audit, export, the raw stream).

use std::path::PathBuf;
use std::sync::Mutex;

use domain::RecordedEvent;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{chain, StoreError};

/// A small pool of read-only WAL connections. Reads run on tokio's blocking threads so a
/// slow query never stalls the async workers.
///
/// At most [`MAX_READERS`] reads run at once; the rest wait for a permit. Without that
/// bound a burst (2,000 agents connecting at once) opened a connection and a blocking
/// thread per concurrent read, about 80 of each, and glibc kept the memory they freed: the
/// server's RSS stayed ~200 MiB higher after the burst (docs/benchmarks.md, Agents).
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

/// Most reads running at once, and so most connections open: more than the cores, since a
/// read also waits on the disk.
const MAX_READERS: usize = 8;

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(MAX_READERS),
        }
    }

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.pragma_update(None, "cache_size", -8192)?;
        Ok(c)
    }

    /// Keeps the connection for the next read. No cap needed: a connection is only opened
    /// under a permit when none is idle, so there are never more than `MAX_READERS`.
    fn give_back(&self, c: Connection) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(c);
        }
    }

    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| E::from(StoreError::Closed))?;
        let conn = self.take().map_err(E::from)?;
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let out = f(&conn);
            (conn, out)
        })
        .await
        .map_err(|_| E::from(StoreError::Closed))?;
        self.give_back(conn);
        out
    }
}

/// Filters over the log. All optional; combined with AND.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only seq > after (the cursor).
    pub after: Option<i64>,
    /// Only seq <= this.
    pub until_seq: Option<i64>,
    /// Exact stream.
    pub stream: Option<String>,
    /// Exact type.
    pub event_type: Option<String>,
    /// Exact actor (`user:<id>`, …).
    pub actor: Option<String>,
    /// Events about a host: its stream, or a payload naming it.
    pub host: Option<String>,
    /// occurred_at >= since (canonical text compares in time order).
    pub since: Option<String>,
    /// occurred_at < until.
    pub until: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
}

fn build(q: &EventQuery) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {} FROM events WHERE 1=1", chain::columns());
    let mut args: Vec<Value> = Vec::new();
    let mut push = |cond: &str, v: Value| {
        args.push(v);
        sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
    };
    if let Some(a) = q.after {
        push(" AND seq > ?", Value::Integer(a));
    }
    if let Some(u) = q.until_seq {
        push(" AND seq <= ?", Value::Integer(u));
    }
    if let Some(s) = &q.stream {
        push(" AND stream = ?", Value::Text(s.clone()));
    }
    if let Some(t) = &q.event_type {
        push(" AND type = ?", Value::Text(t.clone()));
    }
    if let Some(a) = &q.actor {
        push(" AND actor = ?", Value::Text(a.clone()));
    }
    if let Some(h) = &q.host {
        push(
            " AND (stream = 'host-' || ? OR json_extract(data, '$.host_id') = ?)",
            Value::Text(h.clone()),
        );
    }
    if let Some(s) = &q.since {
        push(" AND occurred_at >= ?", Value::Text(s.clone()));
    }
    if let Some(u) = &q.until {
        push(" AND occurred_at < ?", Value::Text(u.clone()));
    }
    sql.push_str(" ORDER BY seq");
    if let Some(l) = q.limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    (sql, args)
}

/// Runs `f` for every matching event, streaming (no full result in memory).
pub fn for_each_event(
    conn: &Connection,
    q: &EventQuery,
    mut f: impl FnMut(RecordedEvent) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (sql, args) = build(q);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    while let Some(r) = rows.next()? {
        f(chain::from_row(r)?)?;
    }
    Ok(())
}

/// Matching events, in seq order.
pub fn query_events(conn: &Connection, q: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut out = Vec::new();
    for_each_event(conn, q, |e| {
        out.push(e);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Readers, MAX_READERS};
    use crate::clock::SystemClock;
    use crate::store::{EventStore, StoreError, StoreOptions};

    /// A burst of reads runs at most `MAX_READERS` at a time (so at most that many
    /// connections and blocking threads); the rest wait their turn and all of them answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_reads_runs_a_few_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restic-manager.db");
        // Creates and migrates the database.
        EventStore::open(&path, Arc::new(SystemClock), StoreOptions::default())
            .unwrap()
            .close()
            .await;
        let readers = Arc::new(Readers::new(path));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads = (0..60).map(|i| {
            let (readers, running, most) = (readers.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                readers
                    .read(move |c| -> Result<i64, StoreError> {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        let n: i64 =
                            c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(n + i)
                    })
                    .await
            })
        });
        let answers: Vec<i64> = futures::future::join_all(reads)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(answers, (0..60).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(most <= MAX_READERS, "{most} reads ran at once");
        assert!(most > 1, "reads did not run side by side at all");
        assert!(readers.idle.lock().unwrap().len() <= MAX_READERS);
    }
}
