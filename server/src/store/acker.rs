//! Answering committed groups, never before their WAL frames are on disk.
//!
//! A durable store's writer commits with `synchronous=NORMAL`: `COMMIT` writes the group's
//! frames to the WAL and returns without waiting for the disk. The group is made durable
//! here, by an fsync of the WAL, and only after that is the new head published, the commit
//! feed sent and every caller answered, in commit order. So no caller hears of an append
//! before it is on disk, exactly as with `synchronous=FULL`.
//!
//! What that buys is overlap:
//! - When nothing else waits, the writer syncs and answers a lone unit itself, as
//!   `synchronous=FULL` would: appends one after another pay no thread hand-off.
//! - Otherwise the group goes to the sync threads and the writer runs the next group while
//!   the disk syncs this one. A sync thread fsyncs everything committed when it starts
//!   (one fsync for every group committed meanwhile). There are [`SYNC_THREADS`] of them,
//!   because fsyncs of the same file overlap on the disk: a group committed while another
//!   group's fsync runs does not wait for that one to end before its own starts. (On the
//!   development VM, two threads doing write + `fdatasync` in a loop reach 1.9–2.3× the
//!   syncs per second of one, at the same latency.)
//! - The writer ends a group once it has run for about as long as an fsync takes, if a sync
//!   thread is free ([`Acker::cut_after`]): with many concurrent writers, one group then
//!   runs while the ones before it sync.
//!
//! SQLite itself syncs the WAL before every checkpoint and syncs the WAL header whenever it
//! starts the WAL over, so a checkpoint never copies frames that are not durable yet.
//! Readers on other connections can see a committed group up to one fsync before its
//! callers are answered.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use domain::envelope::RecordedEvent;
use tokio::sync::broadcast;

use super::writer::Job;
use super::{Head, StoreError};

/// How many fsyncs of the WAL may run at once.
pub(crate) const SYNC_THREADS: usize = 2;

/// A committed group waiting for its answer.
pub(crate) struct Committed {
    pub jobs: Vec<Box<dyn Job>>,
    pub appended: Vec<RecordedEvent>,
    /// The chain head after the group.
    pub head: Head,
}

impl Committed {
    /// Answers every unit with `outcome`.
    pub fn finish(self, outcome: Result<(), &StoreError>) {
        for job in self.jobs {
            job.finish(outcome);
        }
    }

    /// Makes the group visible as the head and on the commit feed, then answers its units.
    fn publish(self, shared: &Shared) {
        if let Ok(mut p) = shared.published.lock() {
            p.clone_from(&self.head);
        }
        let Committed { jobs, appended, .. } = self;
        if !appended.is_empty() {
            let _ = shared.feed.send(Arc::new(appended));
        }
        for job in jobs {
            job.finish(Ok(()));
        }
    }
}

/// The fsync time a group is cut at before the first one is measured.
const FIRST_SYNC_GUESS: Duration = Duration::from_micros(500);
/// Bounds of the group-cut time, whatever the disk does.
const MIN_CUT: Duration = Duration::from_micros(50);
const MAX_CUT: Duration = Duration::from_millis(20);

/// What the writer and the sync threads share.
struct Shared {
    published: Arc<Mutex<Head>>,
    feed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    /// The WAL to fsync; `None` for a store that is not durable (`synchronous=OFF`).
    wal: Option<Wal>,
    /// Groups handed over and not answered yet.
    in_flight: AtomicUsize,
    /// Sync threads in an fsync.
    syncing: AtomicUsize,
    /// A moving average of the fsync time, in nanoseconds.
    sync_nanos: AtomicU64,
    /// Set once an fsync failed: from then on nothing can be confirmed durable.
    failed: AtomicBool,
    queue: Mutex<Queue>,
    /// Signalled when a group is handed over or the writer stops.
    work: Condvar,
    /// Held while answering, so groups are answered in commit order.
    answering: Mutex<()>,
}

/// Committed groups waiting for an fsync, numbered in commit order.
#[derive(Default)]
struct Queue {
    groups: VecDeque<(u64, Committed)>,
    /// The number of the last group handed over.
    committed: u64,
    /// Every group up to this number is covered by an fsync that started after it.
    sync_started: u64,
    stopping: bool,
}

/// The WAL file.
struct Wal {
    path: PathBuf,
}

impl Shared {
    /// Makes everything written to the WAL so far durable. `file`: the caller's own handle
    /// on the WAL, opened at its first sync (SQLite creates the WAL with the first write).
    /// Every thread has its own: a write-back error is reported to each open file once,
    /// so with a shared one, only the first fsync after an error would see it.
    fn sync(&self, file: &mut Option<File>) -> std::io::Result<()> {
        let Some(wal) = &self.wal else { return Ok(()) };
        if self.failed.load(Ordering::Acquire) {
            return Err(not_durable());
        }
        let f = match file {
            Some(f) => f,
            None => file.insert(File::open(&wal.path)?),
        };
        let started = Instant::now();
        // The frames and the file length (reading them back needs both); not the mtime.
        let r = f.sync_data().and_then(|()| {
            // Another thread's fsync failed meanwhile: what this one covered is unknown.
            match self.failed.load(Ordering::Acquire) {
                true => Err(not_durable()),
                false => Ok(()),
            }
        });
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let old = self.sync_nanos.load(Ordering::Relaxed);
        self.sync_nanos
            .store(old - old / 8 + took / 8, Ordering::Relaxed);
        if let Err(e) = r {
            // The state of the file is unknown after a failed fsync: stop confirming anything.
            self.failed.store(true, Ordering::Release);
            tracing::error!(error = %e, wal = %wal.path.display(), "could not fsync the WAL; the event store stops accepting appends");
            return Err(e);
        }
        Ok(())
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `groups` (in commit order) with the outcome of their fsync.
    fn answer(&self, groups: Vec<Committed>, synced: &std::io::Result<()>) {
        match synced {
            Ok(()) => {
                for g in groups {
                    g.publish(self);
                }
            }
            Err(e) => {
                let err = StoreError::Io(std::io::Error::new(
                    e.kind(),
                    format!("the commit could not be made durable: {e}"),
                ));
                for g in groups {
                    g.finish(Err(&err));
                }
            }
        }
    }

    /// A sync thread: fsyncs whatever was committed since the last fsync started, then
    /// answers every group that fsync covers, until the writer stops.
    fn sync_loop(&self) {
        let mut file = None;
        loop {
            let target = {
                let mut q = self.queue();
                while q.committed == q.sync_started && !q.stopping {
                    q = self.work.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.committed == q.sync_started {
                    return;
                }
                q.sync_started = q.committed;
                q.committed
            };
            self.syncing.fetch_add(1, Ordering::AcqRel);
            let synced = self.sync(&mut file);
            self.syncing.fetch_sub(1, Ordering::AcqRel);
            let mut q = self.queue();
            let mut groups = Vec::new();
            while q.groups.front().is_some_and(|(n, _)| *n <= target) {
                if let Some((_, g)) = q.groups.pop_front() {
                    groups.push(g);
                }
            }
            // Taken before the queue is let go: a later fsync's groups wait for these.
            let _order = self.answering.lock().unwrap_or_else(|p| p.into_inner());
            drop(q);
            let n = groups.len();
            self.answer(groups, &synced);
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

fn not_durable() -> std::io::Error {
    std::io::Error::other(
        "an earlier fsync of the WAL failed; restart the server to recover the event log",
    )
}

/// Answers committed groups once they are durable; see the module docs.
pub(crate) struct Acker {
    shared: Arc<Shared>,
    /// The sync threads, started the first time a group is handed over.
    threads: Vec<JoinHandle<()>>,
    /// The writer's own handle on the WAL, for the groups it syncs itself.
    file: Option<File>,
}

impl Acker {
    /// `wal`: the WAL to fsync before answering, `None` when the store is not durable.
    pub fn new(
        wal: Option<PathBuf>,
        published: Arc<Mutex<Head>>,
        feed: broadcast::Sender<Arc<Vec<RecordedEvent>>>,
    ) -> Acker {
        Acker {
            shared: Arc::new(Shared {
                published,
                feed,
                wal: wal.map(|path| Wal { path }),
                in_flight: AtomicUsize::new(0),
                syncing: AtomicUsize::new(0),
                sync_nanos: AtomicU64::new(FIRST_SYNC_GUESS.as_nanos() as u64),
                failed: AtomicBool::new(false),
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
                answering: Mutex::new(()),
            }),
            threads: Vec::new(),
            file: None,
        }
    }

    /// How long the writer should let an open group run before it commits it, so that its
    /// fsync overlaps with the next group: about one fsync, and only while a sync thread is
    /// free to start on it at once. `None`: no cut, the group takes what is queued.
    pub fn cut_after(&self) -> Option<Duration> {
        self.shared.wal.as_ref()?;
        if self.shared.syncing.load(Ordering::Acquire) >= SYNC_THREADS {
            return None;
        }
        let sync = self.shared.sync_nanos.load(Ordering::Relaxed);
        Some(Duration::from_nanos(sync + sync / 2).clamp(MIN_CUT, MAX_CUT))
    }

    /// The error every unit gets once an fsync has failed.
    pub fn failure(&self) -> Option<StoreError> {
        self.shared
            .failed
            .load(Ordering::Acquire)
            .then(|| StoreError::Io(not_durable()))
    }

    /// Answers a committed group once it is durable. `more_queued`: whether units are
    /// waiting for the writer. A group of one unit with nothing queued behind it, while no
    /// other group waits for its answer, is synced and answered by the writer itself:
    /// appends one after another pay no thread hand-off. Any other group goes to the sync
    /// threads, so the writer is free for what arrives during the fsync (with concurrent
    /// callers, something does).
    pub fn ack(&mut self, group: Committed, more_queued: bool) {
        let shared = &self.shared;
        if shared.wal.is_none() {
            group.publish(shared);
            return;
        }
        let lone = group.jobs.len() == 1 && !more_queued;
        let started = if lone { Ok(()) } else { self.start_threads() };
        let shared = &self.shared;
        if let Err(e) = &started {
            tracing::warn!(error = %e, "could not start a WAL sync thread");
        }
        if self.threads.is_empty() || lone && shared.in_flight.load(Ordering::Acquire) == 0 {
            // Nothing is waiting for an answer, so answering here keeps the order.
            let synced = shared.sync(&mut self.file);
            shared.answer(vec![group], &synced);
            return;
        }
        let shared = &self.shared;
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let mut q = shared.queue();
        q.committed += 1;
        let n = q.committed;
        q.groups.push_back((n, group));
        drop(q);
        shared.work.notify_one();
    }

    /// Starts the sync threads not running yet.
    fn start_threads(&mut self) -> std::io::Result<()> {
        while self.threads.len() < SYNC_THREADS {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name("event-sync".into())
                .spawn(move || shared.sync_loop())?;
            self.threads.push(handle);
        }
        Ok(())
    }

    /// Waits until every group handed over is answered.
    pub fn stop(&mut self) {
        self.shared.queue().stopping = true;
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
