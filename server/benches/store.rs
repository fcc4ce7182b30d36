//! Event store benchmarks: a plain program (no harness) that prints its figures.
//!
//! Run with `cargo bench -p server --bench store`. It measures, on fresh temporary
//! databases:
//!
//! 1. durable appends with inline projections at 1, 10 and 100 events per command, one
//!    awaited command after another, next to raw SQLite inserts of the very same rows
//!    (same pragmas, same `events` DDL, one transaction per command, no hashing and no
//!    projections);
//! 2. 64 concurrent single-event writers (group commit) against the sequential
//!    one-event-per-command rate of item 1;
//! 3. `store::rebuild` over a generated, hash-chained history of 1,000,000 events
//!    (override with `RM_BENCH_REBUILD_EVENTS`).
//!
//! Durable figures depend on the disk's fsync latency and are noisy on shared machines; the
//! program runs `sync` first so that writeback left by the build does not skew them.
//!
//! `RM_BENCH_SECONDS` (default 3) sets how long each timed append run lasts;
//! `RM_BENCH_ONLY` (e.g. `2` or `1,3`) runs only some of the items and `RM_BENCH_SIZES`
//! (e.g. `10`) only some command sizes of item 1, for profiling.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::event::{UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed};
use domain::users::{LoginFailure, Role};
use domain::{Actor, Event, RecordedEvent};
use rusqlite::{params, Connection};
use server::clock::SystemClock;
use server::store::{self, AppendRequest, EventLog, EventStore, StoreOptions};
use tokio::sync::broadcast;

/// Users created before the timed append runs.
const SETUP_USERS: usize = 200;
/// Concurrent writers of item 2.
const WRITERS: usize = 64;
/// Upper bound on events per timed store run, so a very fast disk cannot make a run huge.
const MAX_EVENTS_PER_RUN: usize = 400_000;

const COLUMNS: &str = "seq, event_id, stream, stream_version, type, schema_version, data, actor, \
     occurred_at, correlation_id, causation_id, command_id, prev_hash, hash";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn user_id(i: usize) -> String {
    format!("u{i:06}")
}

fn stream(i: usize) -> String {
    format!("user-{}", user_id(i))
}

fn created(i: usize) -> Event {
    let id = user_id(i);
    UserCreated {
        username: format!("user{i}"),
        role: match i % 10 {
            0 => Role::Admin,
            _ => Role::Operator,
        },
        password_ref: format!("vault-password-{id}"),
        via_setup: false,
        user_id: id,
    }
    .into()
}

/// The `n`-th activity event of user `i`: log in, a failed login, log out, repeating.
fn activity(i: usize, n: usize) -> Event {
    let id = user_id(i);
    let session_id = format!("sess-{i:06}-{n:08}");
    match n % 3 {
        0 => UserLoggedIn {
            user_id: id,
            session_id,
            ip: Some(format!("10.0.{}.{}", i % 250, n % 250)),
        }
        .into(),
        1 => UserLoginFailed {
            username: format!("user{i}"),
            user_id: Some(id),
            reason: LoginFailure::BadPassword,
            ip: Some(format!("10.0.{}.{}", i % 250, n % 250)),
        }
        .into(),
        _ => UserLoggedOut {
            user_id: id,
            session_id,
        }
        .into(),
    }
}

fn command(i: usize, first_n: usize, size: usize) -> AppendRequest {
    let events = (first_n..first_n + size).map(|n| activity(i, n)).collect();
    AppendRequest::new(stream(i), Actor::User(user_id(i)), events)
}

fn open_store(path: &Path, opts: StoreOptions) -> EventStore {
    EventStore::open(path, Arc::new(SystemClock), opts).expect("open store")
}

/// Creates `users` users, one command (and stream) each.
async fn create_users(s: &EventStore, users: usize) {
    for i in 0..users {
        s.append(AppendRequest::new(
            stream(i),
            Actor::System("bench".into()),
            vec![created(i)],
        ))
        .await
        .expect("create user");
    }
}

/// Every stored row after `after`, in seq order.
fn read_rows(path: &Path, after: i64) -> Vec<RecordedEvent> {
    let conn = Connection::open(path).expect("open db");
    let q = store::EventQuery {
        after: Some(after),
        ..Default::default()
    };
    store::query_events(&conn, &q).expect("read events")
}

/// Lengths of the runs of consecutive rows sharing `occurred_at`: every event of one group
/// commit carries the writer's one timestamp, so these are the store's commit groups.
fn commit_groups(rows: &[RecordedEvent]) -> Vec<usize> {
    let mut groups: Vec<usize> = Vec::new();
    let mut last: Option<&str> = None;
    for e in rows {
        match (last, groups.last_mut()) {
            (Some(at), Some(n)) if at == e.occurred_at => *n += 1,
            _ => groups.push(1),
        }
        last = Some(&e.occurred_at);
    }
    groups
}

fn insert_raw(conn: &Connection, e: &RecordedEvent) {
    conn.prepare_cached(&format!(
        "INSERT INTO events ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)"
    ))
    .expect("prepare insert")
    .execute(params![
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
    ])
    .expect("insert");
}

/// A fresh raw SQLite database: WAL, `synchronous=FULL`, the `events` DDL of the store, and
/// the `setup` rows (not timed).
fn raw_open(path: &Path, setup: &[RecordedEvent]) -> Connection {
    let mut conn = Connection::open(path).expect("open raw db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    conn.execute_batch(include_str!("../../migrations/0001_event_log.sql"))
        .expect("ddl");
    for e in setup {
        let tx = conn.transaction().expect("tx");
        insert_raw(&tx, e);
        tx.commit().expect("commit");
    }
    conn
}

/// Raw SQLite: inserts `rows`, one `BEGIN IMMEDIATE` transaction per group (`groups` holds the
/// number of rows of each transaction, in order). No hashing, no projections. Returns the
/// seconds taken.
fn raw_insert_groups(conn: &mut Connection, rows: &[RecordedEvent], groups: &[usize]) -> f64 {
    assert_eq!(groups.iter().sum::<usize>(), rows.len());
    let started = Instant::now();
    let mut rest = rows;
    for &n in groups {
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("tx");
        for e in chunk {
            insert_raw(&tx, e);
        }
        tx.commit().expect("commit");
    }
    started.elapsed().as_secs_f64()
}

struct Sequential {
    size: usize,
    store_events: usize,
    store_secs: f64,
    raw_events: usize,
    raw_secs: f64,
}

impl Sequential {
    fn store_rate(&self) -> f64 {
        self.store_events as f64 / self.store_secs
    }
    fn raw_rate(&self) -> f64 {
        self.raw_events as f64 / self.raw_secs
    }
}

/// Drains the store's commit feed: each item is the rows of one group commit, as stored.
fn drain(
    rx: &mut broadcast::Receiver<Arc<Vec<RecordedEvent>>>,
    into: &mut Vec<Arc<Vec<RecordedEvent>>>,
) {
    loop {
        match rx.try_recv() {
            Ok(batch) => into.push(batch),
            Err(broadcast::error::TryRecvError::Empty) => return,
            Err(e) => panic!("commit feed: {e}"),
        }
    }
}

/// One timed store run of item 1 on a fresh store: the setup rows, the rows the timed part
/// stored (taken from the store's commit feed, so no second connection touches the file),
/// the commands issued and the seconds taken.
struct StoreRun {
    setup: Vec<RecordedEvent>,
    rows: Vec<RecordedEvent>,
    cmds: usize,
    secs: f64,
}

async fn store_run(size: usize, run: Duration) -> StoreRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open_store(&dir.path().join("store.db"), StoreOptions::default());
    let mut feed = s.subscribe();
    let mut batches = Vec::new();
    create_users(&s, SETUP_USERS).await;
    drain(&mut feed, &mut batches);
    let setup: Vec<RecordedEvent> = batches.drain(..).flat_map(|b| b.to_vec()).collect();

    let max_cmds = (MAX_EVENTS_PER_RUN / size / 2).max(1);
    let mut counters = vec![0usize; SETUP_USERS];
    let mut cmds = 0usize;
    let started = Instant::now();
    while cmds < max_cmds && started.elapsed() < run {
        let u = cmds % SETUP_USERS;
        let req = command(u, counters[u], size);
        counters[u] += size;
        s.append(req).await.expect("append");
        drain(&mut feed, &mut batches);
        cmds += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    s.close().await;
    let rows: Vec<RecordedEvent> = batches.drain(..).flat_map(|b| b.to_vec()).collect();
    assert_eq!(rows.len(), cmds * size, "stored rows match appended events");
    StoreRun {
        setup,
        rows,
        cmds,
        secs,
    }
}

/// One timed raw run of item 1 on a fresh file: `rows` in transactions of `size`.
fn raw_run(setup: &[RecordedEvent], rows: &[RecordedEvent], size: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut raw = raw_open(&dir.path().join("raw.db"), setup);
    raw_insert_groups(&mut raw, rows, &vec![size; rows.len() / size])
}

/// Item 1 at one command size, in the order store, raw, raw, store (half of `run` per store
/// run; both raw runs insert the rows of the first store run), so a disk that speeds up or
/// slows down during the measurement favours neither side.
///
/// Only one connection is open at a time on purpose: the bundled SQLite is built with
/// `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so all connections of a process share one page-cache
/// LRU, and with the default 2 MiB cache a second open connection can make a busy one
/// re-read most of its pages on every transaction.
async fn sequential(size: usize, run: Duration) -> Sequential {
    let a = store_run(size, run / 2).await;
    let raw_a = raw_run(&a.setup, &a.rows, size);
    let raw_b = raw_run(&a.setup, &a.rows, size);
    let b = store_run(size, run / 2).await;
    Sequential {
        size,
        store_events: (a.cmds + b.cmds) * size,
        store_secs: a.secs + b.secs,
        raw_events: 2 * a.rows.len(),
        raw_secs: raw_a + raw_b,
    }
}

struct Concurrent {
    events: usize,
    secs: f64,
    groups: usize,
    /// Raw SQLite inserting the same rows in the same commit groups, one after another.
    raw_secs: f64,
}

/// Item 2: `WRITERS` tasks, each appending one event per command to its own stream.
async fn concurrent(run: Duration) -> Concurrent {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let s = open_store(&path, StoreOptions::default());
    create_users(&s, SETUP_USERS).await;
    let setup_seq = s.head().seq;

    let started = Instant::now();
    let deadline = started + run;
    let max_per_writer = MAX_EVENTS_PER_RUN / WRITERS;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut n = 0usize;
                while n < max_per_writer && Instant::now() < deadline {
                    s.append(command(w, n, 1)).await.expect("append");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut events = 0usize;
    for t in tasks {
        events += t.await.expect("writer task");
    }
    let secs = started.elapsed().as_secs_f64();
    s.close().await;
    drop(s);
    let all = read_rows(&path, 0);
    let (setup, rows) = all.split_at(setup_seq as usize);
    assert_eq!(rows.len(), events, "stored rows match appended events");
    let groups = commit_groups(rows);
    let mut raw = raw_open(&dir.path().join("raw.db"), setup);
    let raw_secs = raw_insert_groups(&mut raw, rows, &groups);
    Concurrent {
        events,
        secs,
        groups: groups.len(),
        raw_secs,
    }
}

struct Rebuild {
    events: u64,
    generate_secs: f64,
    replay_secs: f64,
    total_secs: f64,
    db_bytes: u64,
}

/// Item 3: generate a history of `total` events through the store API (non-durable, big
/// commands), then time `store::rebuild` offline.
async fn rebuild(total: usize) -> Rebuild {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let users = (total / 200).clamp(1, 5000);
    let opts = StoreOptions {
        durable: false,
        checkpoint_every: Duration::from_secs(1),
        ..StoreOptions::default()
    };
    let started = Instant::now();
    let s = open_store(&path, opts);
    create_users(&s, users).await;
    let remaining = total.saturating_sub(users);
    const CMD: usize = 1000;
    const FEEDERS: usize = 4;
    // Commands of up to CMD events, round-robin over users, split over a few feeder tasks
    // so building the next command overlaps the writer's work.
    let mut plan: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); FEEDERS];
    let mut counters = vec![0usize; users];
    let mut left = remaining;
    let mut k = 0usize;
    while left > 0 {
        let size = left.min(CMD);
        let u = k % users;
        plan[u % FEEDERS].push((u, counters[u], size));
        counters[u] += size;
        left -= size;
        k += 1;
    }
    let tasks: Vec<_> = plan
        .into_iter()
        .map(|cmds| {
            let s = s.clone();
            tokio::spawn(async move {
                for (u, n, size) in cmds {
                    s.append(command(u, n, size)).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("feeder task");
    }
    let head = s.head();
    s.close().await;
    drop(s);
    let generate_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        head.seq as usize, total,
        "generated history has every event"
    );

    let path2 = path.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut conn = store::open_offline(&path2, false).expect("open offline");
        // Fold the WAL into the main file first so the rebuild reads a settled database.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        store::rebuild(&mut conn, &path2, &[]).expect("rebuild")
    })
    .await
    .expect("rebuild task");
    let db_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Rebuild {
        events: report.events,
        generate_secs,
        replay_secs: report.replay_seconds,
        total_secs: report.total_seconds,
        db_bytes,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn row(figure: String, rate: f64, reference: String, ratio: String, target: &str, ok: bool) {
    println!(
        "{figure:<44} {rate:>12.0} {reference:>12} {ratio:>8} {target:>8} {:>6}",
        verdict(ok)
    );
}

fn main() {
    let run = Duration::from_secs(env_num("RM_BENCH_SECONDS", 3).max(1));
    let rebuild_events = env_num("RM_BENCH_REBUILD_EVENTS", 1_000_000).max(1) as usize;
    let only = std::env::var("RM_BENCH_ONLY").unwrap_or_default();
    let wants = |item: &str| only.trim().is_empty() || only.split(',').any(|p| p.trim() == item);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Writeback left over from compiling this very program makes the first fsyncs slow;
    // flush it before measuring anything (best effort: `sync` may be missing).
    let _ = std::process::Command::new("sync").status();
    let bench_started = Instant::now();

    let mut seq_results = Vec::new();
    if wants("1") {
        println!("== 1. sequential durable appends (inline projections) vs raw SQLite ==");
        let sizes: Vec<usize> = std::env::var("RM_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|p| p.trim().parse().ok()).collect())
            .filter(|v: &Vec<usize>| !v.is_empty())
            .unwrap_or_else(|| vec![1, 10, 100]);
        for size in sizes {
            let r = rt.block_on(sequential(size, run));
            println!(
                "  {:>3} ev/cmd: store {:>9.0} ev/s ({} ev in {:.2} s, {:.0} cmd/s) | raw {:>9.0} ev/s ({} ev in {:.2} s) | store/raw {:.2}",
                r.size,
                r.store_rate(),
                r.store_events,
                r.store_secs,
                r.store_rate() / r.size as f64,
                r.raw_rate(),
                r.raw_events,
                r.raw_secs,
                r.store_rate() / r.raw_rate(),
            );
            seq_results.push(r);
        }
    }

    let mut conc = None;
    if wants("2") {
        println!("== 2. {WRITERS} concurrent single-event writers (group commit) ==");
        let seq1 = match seq_results.iter().find(|r| r.size == 1) {
            Some(r) => r.store_rate(),
            None => rt.block_on(sequential(1, run)).store_rate(),
        };
        let c = rt.block_on(concurrent(run));
        let c_rate = c.events as f64 / c.secs;
        println!(
            "  concurrent {:.0} ev/s ({} ev in {:.2} s, {} commits, {:.1} ev/commit) | sequential 1 ev/cmd {:.0} ev/s | ratio {:.1}x",
            c_rate,
            c.events,
            c.secs,
            c.groups,
            c.events as f64 / c.groups.max(1) as f64,
            seq1,
            c_rate / seq1,
        );
        let raw_rate = c.events as f64 / c.raw_secs;
        println!(
            "  (diagnostic) raw SQLite, same rows in the same {} commit groups: {:.0} ev/s ({:.2} ms/commit); store/raw {:.2}",
            c.groups,
            raw_rate,
            c.raw_secs * 1000.0 / c.groups.max(1) as f64,
            c_rate / raw_rate,
        );
        conc = Some((c_rate, seq1));
    }

    let mut reb = None;
    if wants("3") {
        println!("== 3. rebuild over a generated history of {rebuild_events} events ==");
        let r = rt.block_on(rebuild(rebuild_events));
        println!(
            "  generated in {:.1} s (db {:.0} MiB); rebuild: {} events, replay {:.2} s, total {:.2} s -> {:.0} ev/s (replay), {:.0} ev/s (total)",
            r.generate_secs,
            r.db_bytes as f64 / (1024.0 * 1024.0),
            r.events,
            r.replay_secs,
            r.total_secs,
            r.events as f64 / r.replay_secs,
            r.events as f64 / r.total_secs,
        );
        reb = Some(r);
    }

    println!();
    println!(
        "== summary ({:.0} s wall) ==",
        bench_started.elapsed().as_secs_f64()
    );
    println!(
        "{:<44} {:>12} {:>12} {:>8} {:>8} {:>6}",
        "figure", "store ev/s", "ref ev/s", "ratio", "target", ""
    );
    for s in &seq_results {
        let ratio = s.store_rate() / s.raw_rate();
        row(
            format!("sequential durable, {} ev/cmd (ref: raw)", s.size),
            s.store_rate(),
            format!("{:.0}", s.raw_rate()),
            format!("{ratio:.2}"),
            ">=0.5",
            ratio >= 0.5,
        );
    }
    if let Some((c_rate, seq1)) = conc {
        let ratio = c_rate / seq1;
        row(
            format!("{WRITERS} concurrent writers (ref: sequential 1)"),
            c_rate,
            format!("{seq1:.0}"),
            format!("{ratio:.1}x"),
            ">=20x",
            ratio >= 20.0,
        );
    }
    if let Some(r) = reb {
        let replay = r.events as f64 / r.replay_secs;
        let total = r.events as f64 / r.total_secs;
        row(
            format!("rebuild {} ev, events/replay_seconds", r.events),
            replay,
            "-".into(),
            "-".into(),
            ">=250k",
            replay >= 250_000.0,
        );
        row(
            format!("rebuild {} ev, events/total_seconds", r.events),
            total,
            "-".into(),
            "-".into(),
            ">=250k",
            total >= 250_000.0,
        );
    }
}
