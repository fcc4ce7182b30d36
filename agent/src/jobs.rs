//! Runs jobs — the server's and the local scheduler's — one at a time, independently of
//! the connection: a job keeps running through a reconnect, and what must not be lost
//! (started, finished, the snapshot list) goes through the outbox.
//!
//! A backup job is: pre-hook → restic → post-hook. The post-hook always runs, also after a
//! failed pre-hook or a failed restic, and learns the outcome from `RM_JOB_STATUS`.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::jobs::{JobKind, JobStatus, LogLine};
use domain::protocol::{
    AgentMessage, Hooks, JobFinishedMsg, JobLogMsg, JobProgressMsg, JobRunMsg, JobStartedMsg,
    RepoCredentials, SnapshotsReportMsg,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::hooks::{self, HookEnd};
use crate::outbox::Outbox;
use crate::restic::{self, Event, Outcome};
use crate::secrets::SecretsFile;

/// A request to the runner.
#[derive(Debug)]
pub enum Command {
    /// Run (or queue) a job the server sent.
    Run(JobRunMsg),
    /// Run (or queue) a job of the local scheduler, which learns its final status (to
    /// retry failures).
    RunScheduled(JobRunMsg, oneshot::Sender<JobStatus>),
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

    /// Written to the outbox before it is sent; resent until acknowledged. Frames leave in
    /// the order of these calls (the outbox and the queue are both first-in first-out).
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
    domain::Timestamp::new(::time::OffsetDateTime::now_utc()).to_string()
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

/// Empties the admin slot of the secrets file when the forget/prune that filled it ends,
/// however it ends.
struct AdminSlot {
    secrets: Arc<SecretsFile>,
    job_id: String,
}

impl Drop for AdminSlot {
    fn drop(&mut self) {
        if let Err(e) = self.secrets.clear_admin(Some(&self.job_id)) {
            tracing::error!("cannot remove the admin credential from the secrets file: {e}");
        }
    }
}

/// What every job needs.
#[derive(Clone)]
pub struct Ctx {
    /// Where the crash marker lives.
    pub state_dir: PathBuf,
    /// Credentials.
    pub secrets: Arc<SecretsFile>,
    /// Toward the server.
    pub sender: Sender,
    /// The restic binary.
    pub restic_bin: String,
    /// `--host` of backups.
    pub hostname: String,
    /// How long a hook may run.
    pub hook_timeout: Duration,
}

impl Ctx {
    /// The production context.
    pub fn new(state_dir: PathBuf, secrets: Arc<SecretsFile>, sender: Sender) -> Self {
        Ctx {
            state_dir,
            secrets,
            sender,
            restic_bin: crate::facts::restic_binary(),
            hostname: crate::facts::hostname(),
            hook_timeout: hooks::HOOK_TIMEOUT,
        }
    }
}

/// Starts the runner. Reports a job interrupted by an earlier crash first, and wipes an
/// admin credential such a job left behind.
pub fn spawn(ctx: Ctx) -> mpsc::UnboundedSender<Command> {
    let state_dir = &ctx.state_dir;
    if let Ok(job_id) = std::fs::read_to_string(Marker::path(state_dir)) {
        let job_id = job_id.trim().to_string();
        if !job_id.is_empty() {
            tracing::warn!(
                job_id,
                "a job was running when the agent stopped: reporting it failed"
            );
            ctx.sender
                .send_durable(AgentMessage::JobFinished(JobFinishedMsg {
                    job_id,
                    status: JobStatus::Failed,
                    stats: None,
                    error: Some("the agent stopped while restic was running (killed or crashed); the job did not finish".into()),
                    snapshot_id: None,
                    warnings: vec![],
                    error_code: Some("restic_failed".into()),
                }));
        }
        let _ = std::fs::remove_file(Marker::path(state_dir));
    }
    match ctx.secrets.clear_admin(None) {
        Ok(true) => tracing::warn!("removed the admin credential a stopped job left behind"),
        Ok(false) => {}
        Err(e) => {
            tracing::error!("cannot check the secrets file for a left-over admin credential: {e}")
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(runner(ctx, rx));
    tx
}

/// A job waiting for its turn, and who wants to know how it ended.
struct Queued {
    job: JobRunMsg,
    done: Option<oneshot::Sender<JobStatus>>,
}

async fn runner(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut queue: VecDeque<Queued> = VecDeque::new();
    // The server sends a job again after a reconnect if it has not seen it start.
    let mut seen: HashSet<String> = HashSet::new();
    let mut accept = |cmd: Command, queue: &mut VecDeque<Queued>| -> Option<Command> {
        match cmd {
            Command::Run(job) if seen.insert(job.job_id.clone()) => {
                queue.push_back(Queued { job, done: None })
            }
            Command::RunScheduled(job, done) if seen.insert(job.job_id.clone()) => {
                queue.push_back(Queued {
                    job,
                    done: Some(done),
                })
            }
            Command::Run(_) | Command::RunScheduled(..) => {}
            other => return Some(other),
        }
        None
    };
    loop {
        let next = match queue.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                None => return,
                Some(cmd) => match accept(cmd, &mut queue) {
                    None => continue,
                    Some(Command::Cancel(id)) => {
                        tracing::info!(job_id = id, "cancel for a job that is not running here");
                        continue;
                    }
                    Some(Command::Snapshots) => {
                        report_snapshots(&ctx, &[]).await;
                        continue;
                    }
                    Some(_) => continue,
                },
            },
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let job_id = next.job.job_id.clone();
        let run = run_job(&ctx, next.job, cancel_rx);
        tokio::pin!(run);
        let status = loop {
            tokio::select! {
                status = &mut run => break status,
                cmd = rx.recv() => match cmd.and_then(|c| accept(c, &mut queue)) {
                    Some(Command::Cancel(id)) if id == job_id => { let _ = cancel_tx.send(true); }
                    Some(Command::Cancel(id)) => {
                        if let Some(pos) = queue.iter().position(|q| q.job.job_id == id) {
                            let q = queue.remove(pos).expect("position is valid");
                            ctx.sender.send_durable(AgentMessage::JobFinished(JobFinishedMsg {
                                job_id: q.job.job_id, status: JobStatus::Cancelled, stats: None,
                                error: Some("cancelled before it started".into()), snapshot_id: None,
                                warnings: vec![], error_code: None,
                            }));
                            if let Some(done) = q.done { let _ = done.send(JobStatus::Cancelled); }
                        }
                    }
                    // A closed channel (the agent is stopping) lets the job finish first.
                    _ => {}
                },
            }
        };
        if let Some(done) = next.done {
            let _ = done.send(status);
        }
    }
}

/// Collects a job's log lines and progress and sends them in batches while a phase runs.
struct Pump<'a> {
    sender: &'a Sender,
    job_id: String,
    lines: Vec<LogLine>,
    last_progress: Instant,
    rx: mpsc::UnboundedReceiver<Event>,
}

impl Pump<'_> {
    fn push(&mut self, stream: &str, text: String) {
        self.lines.push(LogLine {
            at: now(),
            stream: stream.to_string(),
            text,
        });
        if self.lines.len() >= 50 {
            self.flush();
        }
    }

    /// A line from the agent itself.
    fn agent(&mut self, text: impl Into<String>) {
        self.push("agent", restic::clip(&text.into()));
    }

    fn flush(&mut self) {
        if !self.lines.is_empty() {
            self.sender.send(AgentMessage::JobLog(JobLogMsg {
                job_id: self.job_id.clone(),
                lines: std::mem::take(&mut self.lines),
            }));
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Progress(p) if self.last_progress.elapsed() >= Duration::from_millis(950) => {
                self.last_progress = Instant::now();
                self.sender.send(AgentMessage::JobProgress(JobProgressMsg {
                    job_id: self.job_id.clone(),
                    progress: p,
                }));
            }
            Event::Progress(_) => {}
            Event::Log(stream, text) => self.push(stream, text),
        }
    }

    /// Runs `fut`, forwarding what it reports meanwhile (and what is left afterwards).
    async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        let mut flush = tokio::time::interval(Duration::from_millis(500));
        let out = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(ev) = self.rx.recv() => self.event(ev),
                _ = flush.tick() => self.flush(),
            }
        };
        while let Ok(ev) = self.rx.try_recv() {
            self.event(ev);
        }
        out
    }
}

fn failed(error: String, code: &str) -> Outcome {
    Outcome {
        status: JobStatus::Failed,
        error: Some(error),
        snapshot_id: None,
        warnings: vec![],
        error_code: Some(code.into()),
    }
}

fn cancelled() -> Outcome {
    Outcome {
        status: JobStatus::Cancelled,
        error: Some("cancelled on request".into()),
        snapshot_id: None,
        warnings: vec![],
        error_code: None,
    }
}

/// Runs one job to its end and reports it; returns its final status.
async fn run_job(ctx: &Ctx, job: JobRunMsg, cancel: watch::Receiver<bool>) -> JobStatus {
    let job_id = job.job_id.clone();
    let refuse = |error: String| {
        tracing::warn!(job_id, kind = job.kind.as_str(), "refused: {error}");
        ctx.sender
            .send_durable(AgentMessage::JobFinished(JobFinishedMsg {
                job_id: job_id.clone(),
                status: JobStatus::Failed,
                stats: None,
                error: Some(error),
                snapshot_id: None,
                warnings: vec![],
                error_code: Some("restic_failed".into()),
            }));
        JobStatus::Failed
    };
    if let Some(why) = restic::refuse(job.kind, &job.params) {
        return refuse(why);
    }
    let everyday = match ctx.secrets.load() {
        Ok(s) => s.repo,
        Err(e) => return refuse(e.to_string()),
    };
    // forget and prune may get the full-access credential (append-only repositories refuse
    // deletes to the everyday one); it lives in its own slot for the length of the job.
    let admin = job
        .admin_repo
        .clone()
        .filter(|_| matches!(job.kind, JobKind::Forget | JobKind::Prune));
    // A cross-host restore reads another host's repository with a credential granted for
    // this job only: it stays in memory (never in the secrets file) and goes with the job.
    let source = job
        .source_repo
        .clone()
        .filter(|_| job.kind == JobKind::Restore);
    let cross_host = source.is_some();
    let (repo, admin_slot): (RepoCredentials, Option<AdminSlot>) = match (source, admin, everyday) {
        (Some(s), _, _) => (s, None),
        (None, Some(a), _) => {
            if let Err(e) = ctx.secrets.set_admin(&job_id, &a) {
                tracing::error!(job_id, "cannot store the admin credential: {e}");
            }
            let slot = AdminSlot {
                secrets: ctx.secrets.clone(),
                job_id: job_id.clone(),
            };
            (a, Some(slot))
        }
        (None, None, Some(r)) => (r, None),
        (None, None, None) => return refuse("this agent has no repository credentials yet".into()),
    };
    let marker = Marker::set(&ctx.state_dir, &job_id);
    ctx.sender
        .send_durable(AgentMessage::JobStarted(JobStartedMsg {
            job_id: job_id.clone(),
        }));
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut pump = Pump {
        sender: &ctx.sender,
        job_id: job_id.clone(),
        lines: Vec::new(),
        last_progress: Instant::now() - Duration::from_secs(2),
        rx: ev_rx,
    };
    if cross_host {
        pump.agent(format!(
            "reading the repository of host {} with the credential granted for this restore (kept in memory only)",
            job.params.source_host_id.as_deref().unwrap_or("(unnamed)")
        ));
    } else if job.source_repo.is_some() {
        pump.agent(format!(
            "ignoring the source repository credential: {} jobs use this host's own",
            job.kind.as_str()
        ));
    }
    if job.admin_repo.is_some() {
        if admin_slot.is_some() {
            pump.agent("using the full-access (admin) repository credential for this job");
        } else {
            pump.agent(format!(
                "ignoring the admin credential: {} jobs use the everyday one",
                job.kind.as_str()
            ));
        }
    }
    // Hooks belong to backups only, whatever the server sends.
    let hooks = if job.kind == JobKind::Backup {
        job.hooks.clone()
    } else {
        if !job.hooks.is_empty() {
            pump.agent(format!("hooks are ignored for {} jobs", job.kind.as_str()));
        }
        Hooks::default()
    };
    let hook_env = vec![
        ("RM_JOB_ID".to_string(), job_id.clone()),
        ("RM_JOB_KIND".to_string(), job.kind.as_str().to_string()),
    ];

    let mut pre_outcome: Option<Outcome> = None;
    if let Some(pre) = &hooks.pre {
        if *cancel.borrow() {
            pre_outcome = Some(cancelled());
        } else {
            pump.agent("running the pre-hook");
            let end = pump
                .drive(hooks::run(
                    pre,
                    &hook_env,
                    ctx.hook_timeout,
                    &ev_tx,
                    cancel.clone(),
                ))
                .await;
            pre_outcome = match end {
                HookEnd::Exited(0) => None,
                HookEnd::Cancelled => Some(cancelled()),
                other => Some(failed(other.describe("pre-hook"), "hook_failed")),
            };
            if pre_outcome.is_some() {
                pump.agent("restic was not run");
            }
        }
    }

    let (mut outcome, stats) = match pre_outcome {
        Some(o) => (o, None),
        None if job.kind == JobKind::Restore => {
            let version = crate::restore::parse_version(
                &crate::facts::restic_version_of(&ctx.restic_bin).await,
            );
            tracing::info!(job_id, kind = job.kind.as_str(), "running restic");
            let (result, stats) = pump
                .drive(crate::restore::run(
                    &ctx.restic_bin,
                    &repo,
                    &job.params,
                    version,
                    ev_tx.clone(),
                    cancel.clone(),
                ))
                .await;
            let mut outcome = restic::classify(job.kind, &result, &repo.url);
            outcome.snapshot_id = None;
            (outcome, stats)
        }
        None => {
            let args = restic::args(job.kind, &job.params, &ctx.hostname);
            tracing::info!(job_id, kind = job.kind.as_str(), "running restic");
            let result = pump
                .drive(restic::run(
                    &ctx.restic_bin,
                    &repo,
                    &args,
                    ev_tx.clone(),
                    cancel.clone(),
                ))
                .await;
            let outcome = restic::classify(job.kind, &result, &repo.url);
            let ok = matches!(
                outcome.status,
                JobStatus::Succeeded | JobStatus::SucceededWithWarnings
            );
            let stats = match job.kind {
                JobKind::Forget if ok => {
                    let s = restic::forget_stats(&result.documents);
                    let n = |k: &str| s[k].as_array().map_or(0, Vec::len);
                    pump.agent(format!(
                        "forget kept {} and removed {} snapshots",
                        n("kept"),
                        n("removed")
                    ));
                    Some(s)
                }
                JobKind::Prune if ok => match restic::prune_bytes_freed(&result.text) {
                    Some(b) => {
                        pump.agent(format!("prune freed about {b} bytes"));
                        Some(serde_json::json!({ "bytes_freed": b }))
                    }
                    None => {
                        pump.agent("could not read how much prune freed from its report");
                        None
                    }
                },
                JobKind::Forget | JobKind::Prune => None,
                _ => result.summary.clone(),
            };
            (outcome, stats)
        }
    };

    if let Some(post) = &hooks.post {
        let mut env = hook_env.clone();
        env.push((
            "RM_JOB_STATUS".to_string(),
            outcome.status.as_str().to_string(),
        ));
        if let Some(s) = &outcome.snapshot_id {
            env.push(("RM_SNAPSHOT_ID".to_string(), s.clone()));
        }
        pump.agent(format!(
            "running the post-hook (RM_JOB_STATUS={})",
            outcome.status.as_str()
        ));
        let end = pump
            .drive(hooks::run(
                post,
                &env,
                ctx.hook_timeout,
                &ev_tx,
                cancel.clone(),
            ))
            .await;
        if !end.ok() {
            let w = end.describe("post-hook");
            if outcome.status == JobStatus::Succeeded {
                outcome.status = JobStatus::SucceededWithWarnings;
            }
            outcome.warnings.push(w);
        }
    }

    for w in &outcome.warnings {
        pump.agent(format!("warning: {w}"));
    }
    if let Some(e) = &outcome.error {
        pump.agent(format!("error: {e}"));
    }
    pump.flush();
    tracing::info!(job_id, status = outcome.status.as_str(), "job finished");
    let status = outcome.status;
    ctx.sender
        .send_durable(AgentMessage::JobFinished(JobFinishedMsg {
            job_id: job_id.clone(),
            status,
            stats,
            error: outcome.error,
            snapshot_id: outcome.snapshot_id,
            warnings: outcome.warnings,
            error_code: outcome.error_code,
        }));
    // The result is in the outbox: from here on a crash loses nothing about this job.
    drop(marker);
    drop(admin_slot);
    let succeeded = matches!(
        status,
        JobStatus::Succeeded | JobStatus::SucceededWithWarnings
    );
    if succeeded
        && matches!(
            job.kind,
            JobKind::Backup | JobKind::Init | JobKind::Forget | JobKind::Prune
        )
    {
        let limits = restic::limit_args(&job.params);
        report_snapshots(ctx, &limits).await;
    }
    status
}

/// `restic snapshots --json`, `stats --json --mode raw-data` (what the repository stores)
/// and `stats --json --mode restore-size` (what the snapshots hold) → `snapshots.report`,
/// always with the everyday credential.
async fn report_snapshots(ctx: &Ctx, extra: &[String]) {
    let Some(repo) = ctx.secrets.load().ok().and_then(|s| s.repo) else {
        return;
    };
    let bin = &ctx.restic_bin;
    let with = |a: &[&str]| -> Vec<String> {
        a.iter()
            .map(|s| s.to_string())
            .chain(extra.iter().cloned())
            .collect()
    };
    let snapshots = match restic::output(bin, &repo, &with(&["snapshots", "--json"])).await {
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
    let repo = &repo;
    let size = |mode: &'static str| {
        let args = with(&["stats", "--json", "--mode", mode]);
        async move {
            restic::output(bin, repo, &args)
                .await
                .map_err(|e| tracing::warn!("restic stats --mode {mode} failed: {e}"))
                .ok()
                .and_then(|t| restic::parse_stats_size(&t))
        }
    };
    let repo_size_bytes = size("raw-data").await;
    let restore_size_bytes = size("restore-size").await;
    ctx.sender
        .send_durable(AgentMessage::SnapshotsReport(SnapshotsReportMsg {
            snapshots,
            repo_size_bytes,
            restore_size_bytes,
        }));
}

/// A runner over a temp dir with a fake restic, for the tests here and the scheduler's.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use domain::protocol::RepoCredentials;

    /// The frames in an outbox, decoded (tests).
    pub(crate) fn outbox_messages(outbox: &Outbox) -> Vec<AgentMessage> {
        outbox
            .pending()
            .unwrap()
            .into_iter()
            .map(|p| {
                let env = domain::protocol::decode_envelope(&p.frame).unwrap();
                AgentMessage::from_envelope(&env).unwrap()
            })
            .collect()
    }

    pub(crate) struct Fixture {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) ctx: Ctx,
        pub(crate) outbox: Arc<Outbox>,
        pub(crate) frames: mpsc::Receiver<String>,
    }

    /// A runner context over a temp dir, with `restic` replaced by a script that records
    /// each call (one line of arguments in `restic-calls`) and behaves as `body` says.
    pub(crate) fn fixture(body: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("restic");
        let calls = dir.path().join("restic-calls");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\ncase \"$1\" in\n  snapshots) echo '[]'; exit 0;;\n  stats) echo '{{\"total_size\":7}}'; exit 0;;\nesac\n{body}\n",
                calls.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let secrets =
            Arc::new(SecretsFile::new(dir.path(), "h1", &SecretsFile::new_key()).unwrap());
        secrets
            .update(|s| {
                s.version = 1;
                s.repo = Some(RepoCredentials {
                    url: dir.path().join("repo").display().to_string(),
                    username: None,
                    password: "everyday".into(),
                });
            })
            .unwrap();
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        let (tx, frames) = mpsc::channel(4096);
        let ctx = Ctx {
            state_dir: dir.path().to_path_buf(),
            secrets,
            sender: Sender::new(outbox.clone(), tx),
            restic_bin: fake.display().to_string(),
            hostname: "web-1".into(),
            hook_timeout: Duration::from_secs(30),
        };
        Fixture {
            dir,
            ctx,
            outbox,
            frames,
        }
    }

    impl Fixture {
        pub(crate) fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("restic-calls"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }

        pub(crate) fn finished(&self) -> JobFinishedMsg {
            outbox_messages(&self.outbox)
                .into_iter()
                .find_map(|m| match m {
                    AgentMessage::JobFinished(f) => Some(f),
                    _ => None,
                })
                .expect("a job.finished")
        }

        pub(crate) fn log(&mut self) -> Vec<LogLine> {
            let mut out = vec![];
            while let Ok(f) = self.frames.try_recv() {
                let env = domain::protocol::decode_envelope(&f).unwrap();
                if let Ok(AgentMessage::JobLog(l)) = AgentMessage::from_envelope(&env) {
                    out.extend(l.lines);
                }
            }
            out
        }

        pub(crate) async fn run(&self, job: JobRunMsg) -> JobStatus {
            let (_tx, rx) = watch::channel(false);
            run_job(&self.ctx, job, rx).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use domain::jobs::JobParams;
    use domain::protocol::RepoCredentials;

    fn backup(pre: Option<&str>, post: Option<&str>) -> JobRunMsg {
        JobRunMsg {
            job_id: "job-1".into(),
            kind: JobKind::Backup,
            params: JobParams {
                paths: vec!["/srv".into()],
                tags: vec!["default".into()],
                ..Default::default()
            },
            hooks: Hooks {
                pre: pre.map(str::to_string),
                post: post.map(str::to_string),
            },
            admin_repo: None,
            source_repo: None,
        }
    }

    const BACKUP_OK: &str =
        r#"echo '{"message_type":"summary","files_new":1,"snapshot_id":"abcd1234"}'; exit 0"#;

    #[tokio::test]
    async fn a_failing_pre_hook_skips_restic_and_the_post_hook_still_runs() {
        let mut f = fixture(BACKUP_OK);
        let seen = f.dir.path().join("post-saw");
        let post = format!("echo \"$RM_JOB_STATUS $RM_JOB_ID\" > {}", seen.display());
        let status = f
            .run(backup(Some("echo dumping; exit 4"), Some(&post)))
            .await;
        assert_eq!(status, JobStatus::Failed);
        assert!(f.calls().is_empty(), "restic ran: {:?}", f.calls());
        let fin = f.finished();
        assert_eq!(fin.status, JobStatus::Failed);
        assert_eq!(
            fin.error.as_deref(),
            Some("pre-hook failed with exit status 4")
        );
        assert_eq!(fin.error_code.as_deref(), Some("hook_failed"));
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap().trim(),
            "failed job-1"
        );
        let log = f.log();
        assert!(log
            .iter()
            .any(|l| l.text == "hook: dumping" && l.stream == "stdout"));
        // The job's messages are in order: started, then finished.
        let kinds: Vec<&str> = outbox_messages(&f.outbox)
            .iter()
            .map(|m| m.msg_type())
            .collect();
        assert_eq!(kinds, ["job.started", "job.finished"]);
    }

    #[tokio::test]
    async fn hooks_around_a_successful_backup() {
        let mut f = fixture(BACKUP_OK);
        let seen = f.dir.path().join("post-saw");
        let post = format!(
            "echo \"$RM_JOB_STATUS $RM_SNAPSHOT_ID\" > {}; echo bye >&2",
            seen.display()
        );
        let status = f.run(backup(Some("echo pre-ran"), Some(&post))).await;
        assert_eq!(status, JobStatus::Succeeded);
        assert_eq!(f.calls().len(), 4, "backup, snapshots, stats ×2");
        assert!(f.calls()[0].starts_with("backup --json --host web-1 --tag=default -- /srv"));
        assert_eq!(
            std::fs::read_to_string(&seen).unwrap().trim(),
            "succeeded abcd1234"
        );
        let fin = f.finished();
        assert_eq!(fin.snapshot_id.as_deref(), Some("abcd1234"));
        assert_eq!(fin.error_code, None);
        let log = f.log();
        assert!(log.iter().any(|l| l.text == "hook: pre-ran"));
        assert!(log
            .iter()
            .any(|l| l.text == "hook: bye" && l.stream == "stderr"));
        // The snapshot report carries both sizes.
        let report = outbox_messages(&f.outbox)
            .into_iter()
            .find_map(|m| match m {
                AgentMessage::SnapshotsReport(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert_eq!(report.repo_size_bytes, Some(7));
        assert_eq!(report.restore_size_bytes, Some(7));
        assert!(f
            .calls()
            .iter()
            .any(|c| c == "stats --json --mode restore-size"));
    }

    #[tokio::test]
    async fn a_failing_post_hook_turns_success_into_warnings() {
        let f = fixture(BACKUP_OK);
        let status = f.run(backup(None, Some("exit 2"))).await;
        assert_eq!(status, JobStatus::SucceededWithWarnings);
        let fin = f.finished();
        assert_eq!(fin.status, JobStatus::SucceededWithWarnings);
        assert_eq!(fin.warnings, ["post-hook failed with exit status 2"]);
        assert_eq!(fin.error_code, None);
    }

    #[tokio::test]
    async fn the_post_hook_sees_a_restic_failure() {
        let f = fixture("echo 'Fatal: wrong password or no key found' >&2; exit 1");
        let seen = f.dir.path().join("post-saw");
        let post = format!("echo \"$RM_JOB_STATUS\" > {}; exit 1", seen.display());
        let status = f.run(backup(None, Some(&post))).await;
        assert_eq!(status, JobStatus::Failed);
        assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "failed");
        let fin = f.finished();
        assert_eq!(fin.status, JobStatus::Failed);
        assert_eq!(fin.error_code.as_deref(), Some("wrong_password"));
        assert_eq!(fin.warnings, ["post-hook failed with exit status 1"]);
        // A failed backup reports no snapshots.
        assert_eq!(f.calls().len(), 1);
    }

    #[tokio::test]
    async fn hooks_never_run_for_other_kinds() {
        let f = fixture("echo 'successfully removed locks'; exit 0");
        let marker = f.dir.path().join("hook-ran");
        let mut job = backup(Some(&format!("touch {}", marker.display())), None);
        job.kind = JobKind::Unlock;
        assert_eq!(f.run(job).await, JobStatus::Succeeded);
        assert!(!marker.exists());
        assert_eq!(f.calls(), ["unlock"]);
    }

    #[tokio::test]
    async fn forget_uses_the_admin_credential_and_removes_it_afterwards() {
        let forget_json = include_str!("../testdata/restic-0.14/forget.json").trim();
        // The fake restic proves which password it got, and that the slot exists meanwhile.
        let f = fixture(&format!(
            "echo \"pw=$RESTIC_PASSWORD\" >> \"$(dirname \"$0\")/restic-calls\"; echo '{forget_json}'; exit 0"
        ));
        let job = JobRunMsg {
            job_id: "job-f".into(),
            kind: JobKind::Forget,
            params: JobParams {
                tags: vec!["default".into()],
                retention: Some(domain::sources::RetentionPolicy {
                    keep_last: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            },
            hooks: Hooks::default(),
            admin_repo: Some(RepoCredentials {
                url: "/srv/repo".into(),
                username: None,
                password: "full-access".into(),
            }),
            source_repo: None,
        };
        assert_eq!(f.run(job).await, JobStatus::Succeeded);
        let calls = f.calls();
        assert_eq!(
            calls[0],
            "forget --json --tag=default --group-by=host,tags --keep-last=1"
        );
        assert_eq!(calls[1], "pw=full-access");
        // The report afterwards uses the everyday credential (no pw line after it).
        assert!(calls[2].starts_with("snapshots"));
        assert_eq!(f.ctx.secrets.load().unwrap().admin, None);
        assert_eq!(
            f.ctx.secrets.load().unwrap().repo.unwrap().password,
            "everyday"
        );
        let fin = f.finished();
        assert_eq!(
            fin.stats.unwrap(),
            serde_json::json!({
                "kept": ["d7e64723c4b8a18404a7dd72a9d58c628f48e11b864ac7015162b8549eaa7b7f"],
                "removed": ["3a7f0c4a9add436b3362d25581dc775caae64a7e9e5853cae238b356786b7bee"],
            })
        );
    }

    #[tokio::test]
    async fn forget_without_retention_is_refused() {
        let f = fixture("exit 0");
        let mut job = backup(None, None);
        job.kind = JobKind::Forget;
        assert_eq!(f.run(job.clone()).await, JobStatus::Failed);
        job.params.retention = Some(Default::default());
        assert_eq!(f.run(job).await, JobStatus::Failed);
        assert!(f.calls().is_empty());
        let fin = f.finished();
        assert!(fin.error.unwrap().contains("retention policy"));
        assert_eq!(fin.error_code.as_deref(), Some("restic_failed"));
    }

    #[tokio::test]
    async fn prune_reports_bytes_freed() {
        let out = include_str!("../testdata/restic-0.14/prune.txt");
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("prune.txt");
        std::fs::write(&sample, out).unwrap();
        let f = fixture(&format!("cat {}; exit 0", sample.display()));
        let mut job = backup(None, None);
        job.kind = JobKind::Prune;
        job.params = JobParams {
            limit_download_kbps: Some(50),
            ..Default::default()
        };
        assert_eq!(f.run(job).await, JobStatus::Succeeded);
        assert_eq!(f.calls()[0], "prune --limit-download=50");
        assert_eq!(
            f.finished().stats.unwrap(),
            serde_json::json!({"bytes_freed": 200_606})
        );
    }

    #[tokio::test]
    async fn a_failed_check_is_check_failed() {
        let dir = tempfile::tempdir().unwrap();
        let err = dir.path().join("err.txt");
        std::fs::write(
            &err,
            include_str!("../testdata/restic-0.14/check-damaged.stderr"),
        )
        .unwrap();
        let f = fixture(&format!("cat {} >&2; exit 1", err.display()));
        let mut job = backup(None, None);
        job.kind = JobKind::Check;
        job.params = JobParams {
            check_subset_pct: Some(5),
            ..Default::default()
        };
        assert_eq!(f.run(job).await, JobStatus::Failed);
        assert_eq!(f.calls(), ["check --read-data-subset=5%"]);
        let fin = f.finished();
        assert_eq!(fin.error_code.as_deref(), Some("check_failed"));
        assert!(fin
            .error
            .unwrap()
            .starts_with("restic check found errors in the repository: Pack ID does not match"));
    }

    #[tokio::test]
    async fn a_queued_scheduled_job_reports_its_status() {
        let f = fixture(BACKUP_OK);
        let tx = spawn(f.ctx.clone());
        let (done_tx, done_rx) = oneshot::channel();
        tx.send(Command::RunScheduled(backup(None, None), done_tx))
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), done_rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, JobStatus::Succeeded);
    }

    /// The whole maintenance cycle against the real restic on this machine (skipped where
    /// there is none): init, two backups, forget with the admin slot, prune, check, unlock.
    #[tokio::test]
    async fn real_restic_round_trip() {
        let bin = "/usr/bin/restic";
        if !Path::new(bin).exists() {
            eprintln!("skipped: no {bin}");
            return;
        }
        let mut f = fixture("exit 1");
        f.ctx.restic_bin = bin.into();
        let data = f.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Random, so restic's compression leaves the sizes as they are.
        let random = |n: usize| {
            let mut v = vec![0u8; n];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut v);
            v
        };
        std::fs::write(data.join("a"), random(200_000)).unwrap();
        let run = |kind: JobKind, id: &str, params: JobParams| JobRunMsg {
            job_id: id.into(),
            kind,
            params,
            hooks: Hooks::default(),
            admin_repo: None,
            source_repo: None,
        };
        let backup_params = JobParams {
            paths: vec![data.display().to_string()],
            tags: vec!["default".into()],
            ..Default::default()
        };
        assert_eq!(
            f.run(run(JobKind::Init, "i", JobParams::default())).await,
            JobStatus::Succeeded
        );
        assert_eq!(
            f.run(run(JobKind::Backup, "b1", backup_params.clone()))
                .await,
            JobStatus::Succeeded
        );
        std::fs::write(data.join("a"), random(300_000)).unwrap();
        assert_eq!(
            f.run(run(JobKind::Backup, "b2", backup_params)).await,
            JobStatus::Succeeded
        );
        let everyday = f.ctx.secrets.load().unwrap().repo.unwrap();
        let mut forget = run(
            JobKind::Forget,
            "f",
            JobParams {
                tags: vec!["default".into()],
                retention: Some(domain::sources::RetentionPolicy {
                    keep_last: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        forget.admin_repo = Some(everyday);
        assert_eq!(f.run(forget).await, JobStatus::Succeeded);
        assert_eq!(f.ctx.secrets.load().unwrap().admin, None);
        assert_eq!(
            f.run(run(JobKind::Prune, "p", JobParams::default())).await,
            JobStatus::Succeeded
        );
        assert_eq!(
            f.run(run(
                JobKind::Check,
                "c",
                JobParams {
                    check_subset_pct: Some(50),
                    ..Default::default()
                }
            ))
            .await,
            JobStatus::Succeeded
        );
        assert_eq!(
            f.run(run(JobKind::Unlock, "u", JobParams::default())).await,
            JobStatus::Succeeded
        );
        let msgs = outbox_messages(&f.outbox);
        let finished = |id: &str| {
            msgs.iter()
                .find_map(|m| match m {
                    AgentMessage::JobFinished(x) if x.job_id == id => Some(x.clone()),
                    _ => None,
                })
                .unwrap()
        };
        let fs = finished("f").stats.unwrap();
        assert_eq!(fs["kept"].as_array().unwrap().len(), 1);
        assert_eq!(fs["removed"].as_array().unwrap().len(), 1);
        assert_eq!(fs["kept"][0].as_str().unwrap().len(), 64);
        let freed = finished("p").stats.unwrap()["bytes_freed"]
            .as_u64()
            .unwrap();
        assert!(freed > 100_000, "{freed}");
        assert!(finished("b2").snapshot_id.is_some());
        // The last report (after prune): one snapshot, both sizes.
        let report = msgs
            .iter()
            .rev()
            .find_map(|m| match m {
                AgentMessage::SnapshotsReport(r) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(report.snapshots.len(), 1);
        assert_eq!(report.restore_size_bytes, Some(300_000));
        assert!(report.repo_size_bytes.unwrap() > 0);
        // Reports came after init, both backups, forget and prune — not after check/unlock.
        let reports = msgs
            .iter()
            .filter(|m| matches!(m, AgentMessage::SnapshotsReport(_)))
            .count();
        assert_eq!(reports, 5);
        assert!(f.log().iter().any(|l| l.text == "no errors were found"));
    }
}
