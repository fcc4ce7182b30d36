//! Runs the server's jobs, one at a time, independently of the connection: a job keeps
//! running through a reconnect, and what must not be lost (started, finished, the snapshot
//! list) goes through the outbox.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::jobs::{JobKind, JobStatus, LogLine};
use domain::protocol::{
    AgentMessage, JobFinishedMsg, JobLogMsg, JobProgressMsg, JobRunMsg, JobStartedMsg,
    SnapshotsReportMsg,
};
use tokio::sync::{mpsc, watch};

use crate::outbox::Outbox;
use crate::restic::{self, Event};
use crate::secrets::SecretsFile;

/// A request to the runner.
#[derive(Debug)]
pub enum Command {
    /// Run (or queue) a job.
    Run(JobRunMsg),
    /// Stop a job.
    Cancel(String),
    /// Report the snapshot list.
    Snapshots,
}

/// Sends frames toward the server: durable ones through the outbox first.
#[derive(Clone)]
pub struct Sender {
    outbox: Arc<Outbox>,
    out: mpsc::Sender<String>,
}

impl Sender {
    /// A sender over the outbox and the connection's queue.
    pub fn new(outbox: Arc<Outbox>, out: mpsc::Sender<String>) -> Self {
        Sender { outbox, out }
    }

    /// Best effort: dropped when not connected and the queue is full.
    pub fn send(&self, msg: AgentMessage) {
        let _ = self
            .out
            .try_send(msg.to_frame(uuid::Uuid::now_v7().to_string(), None));
    }

    /// Written to the outbox before it is sent; resent until acknowledged.
    pub fn send_durable(&self, msg: AgentMessage) {
        let id = uuid::Uuid::now_v7().to_string();
        let frame = msg.to_frame(id.clone(), None);
        if let Err(e) = self.outbox.push(&id, &frame) {
            tracing::error!("cannot write the outbox: {e}");
        }
        let _ = self.out.try_send(frame);
    }
}

fn now() -> String {
    domain::Timestamp::new(time_now()).to_string()
}

fn time_now() -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc()
}

/// Marks the job being run, so a crash or kill is reported after restart.
struct Marker(PathBuf);

impl Marker {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("current-job")
    }
    fn set(state_dir: &Path, job_id: &str) -> Marker {
        let p = Self::path(state_dir);
        if let Err(e) = crate::config::write_private(&p, job_id.as_bytes()) {
            tracing::error!("cannot write {}: {e}", p.display());
        }
        Marker(p)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts the runner. Reports a job interrupted by an earlier crash first.
pub fn spawn(
    state_dir: PathBuf,
    secrets: SecretsFile,
    sender: Sender,
) -> mpsc::UnboundedSender<Command> {
    if let Ok(job_id) = std::fs::read_to_string(Marker::path(&state_dir)) {
        let job_id = job_id.trim().to_string();
        if !job_id.is_empty() {
            tracing::warn!(
                job_id,
                "a job was running when the agent stopped: reporting it failed"
            );
            sender.send_durable(AgentMessage::JobFinished(JobFinishedMsg {
                job_id,
                status: JobStatus::Failed,
                stats: None,
                error: Some("the agent stopped while restic was running (killed or crashed); the job did not finish".into()),
                snapshot_id: None,
                warnings: vec![],
                error_code: None,
            }));
        }
        let _ = std::fs::remove_file(Marker::path(&state_dir));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(runner(state_dir, secrets, sender, rx));
    tx
}

async fn runner(
    state_dir: PathBuf,
    secrets: SecretsFile,
    sender: Sender,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut queue: VecDeque<JobRunMsg> = VecDeque::new();
    // The server sends a job again after a reconnect if it has not seen it start.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let next = match queue.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(Command::Run(j)) if !seen.insert(j.job_id.clone()) => continue,
                Some(Command::Run(j)) => j,
                Some(Command::Cancel(id)) => {
                    tracing::info!(job_id = id, "cancel for a job that is not running here");
                    continue;
                }
                Some(Command::Snapshots) => {
                    report_snapshots(&secrets, &sender).await;
                    continue;
                }
                None => return,
            },
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let job_id = next.job_id.clone();
        let run = run_job(&state_dir, &secrets, &sender, next, cancel_rx);
        tokio::pin!(run);
        loop {
            tokio::select! {
                _ = &mut run => break,
                cmd = rx.recv() => match cmd {
                    Some(Command::Run(j)) if !seen.insert(j.job_id.clone()) => {}
                    Some(Command::Run(j)) => queue.push_back(j),
                    Some(Command::Cancel(id)) if id == job_id => { let _ = cancel_tx.send(true); }
                    Some(Command::Cancel(id)) => {
                        if let Some(pos) = queue.iter().position(|j| j.job_id == id) {
                            let j = queue.remove(pos).expect("position is valid");
                            sender.send_durable(AgentMessage::JobFinished(JobFinishedMsg {
                                job_id: j.job_id, status: JobStatus::Cancelled, stats: None,
                                error: Some("cancelled before it started".into()), snapshot_id: None, warnings: vec![],
                error_code: None,
                            }));
                        }
                    }
                    Some(Command::Snapshots) => {}
                    None => { run.await; return; }
                },
            }
        }
    }
}

async fn run_job(
    state_dir: &Path,
    secrets: &SecretsFile,
    sender: &Sender,
    job: JobRunMsg,
    cancel: watch::Receiver<bool>,
) {
    let job_id = job.job_id.clone();
    let finish = |status: JobStatus, error: Option<String>| {
        sender.send_durable(AgentMessage::JobFinished(JobFinishedMsg {
            job_id: job_id.clone(),
            status,
            stats: None,
            error,
            snapshot_id: None,
            warnings: vec![],
                error_code: None,
        }))
    };
    let repo = match secrets.load() {
        Ok(s) => match s.repo {
            Some(r) => r,
            None => {
                return finish(
                    JobStatus::Failed,
                    Some("this agent has no repository credentials yet".into()),
                )
            }
        },
        Err(e) => return finish(JobStatus::Failed, Some(e.to_string())),
    };
    if !matches!(
        job.kind,
        JobKind::Backup | JobKind::Init | JobKind::Check | JobKind::Unlock
    ) {
        return finish(
            JobStatus::Failed,
            Some(format!(
                "this agent cannot run {} jobs yet",
                job.kind.as_str()
            )),
        );
    }
    let marker = Marker::set(state_dir, &job_id);
    sender.send_durable(AgentMessage::JobStarted(JobStartedMsg {
        job_id: job_id.clone(),
    }));
    let bin = crate::facts::restic_binary();
    let args = restic::args(job.kind, &job.params, &crate::facts::hostname());
    tracing::info!(job_id, kind = job.kind.as_str(), "running restic");
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let run = restic::run(&bin, &repo, &args, ev_tx, cancel);
    tokio::pin!(run);
    let mut lines: Vec<LogLine> = Vec::new();
    let mut last_progress = Instant::now() - Duration::from_secs(2);
    let mut flush = tokio::time::interval(Duration::from_millis(500));
    let flush_lines = |lines: &mut Vec<LogLine>| {
        if !lines.is_empty() {
            sender.send(AgentMessage::JobLog(JobLogMsg {
                job_id: job_id.clone(),
                lines: std::mem::take(lines),
            }));
        }
    };
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            ev = ev_rx.recv() => match ev {
                Some(Event::Progress(p)) if last_progress.elapsed() >= Duration::from_millis(950) => {
                    last_progress = Instant::now();
                    sender.send(AgentMessage::JobProgress(JobProgressMsg { job_id: job_id.clone(), progress: p }));
                }
                Some(Event::Progress(_)) => {}
                Some(Event::Log(stream, text)) => {
                    lines.push(LogLine { at: now(), stream: stream.to_string(), text });
                    if lines.len() >= 50 { flush_lines(&mut lines); }
                }
                None => {}
            },
            _ = flush.tick() => flush_lines(&mut lines),
        }
    };
    while let Ok(ev) = ev_rx.try_recv() {
        if let Event::Log(stream, text) = ev {
            lines.push(LogLine {
                at: now(),
                stream: stream.to_string(),
                text,
            });
        }
    }
    let outcome = restic::classify(job.kind, &result, &repo.url);
    for w in &outcome.warnings {
        lines.push(LogLine {
            at: now(),
            stream: "agent".into(),
            text: format!("warning: {w}"),
        });
    }
    if let Some(e) = &outcome.error {
        lines.push(LogLine {
            at: now(),
            stream: "agent".into(),
            text: format!("error: {e}"),
        });
    }
    flush_lines(&mut lines);
    tracing::info!(job_id, status = outcome.status.as_str(), "job finished");
    let succeeded = matches!(
        outcome.status,
        JobStatus::Succeeded | JobStatus::SucceededWithWarnings
    );
    sender.send_durable(AgentMessage::JobFinished(JobFinishedMsg {
        job_id: job_id.clone(),
        status: outcome.status,
        stats: result.summary,
        error: outcome.error,
        snapshot_id: outcome.snapshot_id,
        warnings: outcome.warnings,
        error_code: None,
    }));
    // The result is in the outbox: from here on a crash loses nothing about this job.
    drop(marker);
    if succeeded && matches!(job.kind, JobKind::Backup | JobKind::Init) {
        report_snapshots(secrets, sender).await;
    }
}

/// `restic snapshots --json` and `restic stats --json --mode raw-data` → `snapshots.report`.
async fn report_snapshots(secrets: &SecretsFile, sender: &Sender) {
    let Some(repo) = secrets.load().ok().and_then(|s| s.repo) else {
        return;
    };
    let bin = crate::facts::restic_binary();
    let snapshots = match restic::output(&bin, &repo, &["snapshots", "--json"]).await {
        Ok(text) => match restic::parse_snapshots(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot read restic's snapshot list: {e}");
                return;
            }
        },
        Err(e) => {
            tracing::warn!("restic snapshots failed: {e}");
            return;
        }
    };
    let size = restic::output(&bin, &repo, &["stats", "--json", "--mode", "raw-data"])
        .await
        .ok()
        .and_then(|t| restic::parse_stats_size(&t));
    sender.send_durable(AgentMessage::SnapshotsReport(SnapshotsReportMsg {
        snapshots,
        repo_size_bytes: size,
        restore_size_bytes: None,
    }));
}
