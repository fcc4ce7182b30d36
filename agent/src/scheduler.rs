//! The local scheduler: fires the host's backup schedules on the agent itself, so backups
//! happen on time whether or not the server can be reached.
//!
//! The schedule set comes from the server (`schedules.update`) and is kept in the secrets
//! file, so a restarted agent arms it again before it has connected at all. Each fire of an
//! enabled schedule starts one backup job per source group: the agent picks the job id,
//! writes `job.scheduled` to the outbox and only then hands the job to the runner, so the
//! server receives `job.scheduled`, `job.started`, `job.finished` in that order, each once,
//! whenever it is reachable again.
//!
//! Rules:
//! - Cron is five fields, UTC ([`domain::sources::next_fire`]).
//! - Runs missed while the agent was not running are not made up: at start (and at every
//!   new set) a schedule is armed for its next time after *now*. A fire found more than
//!   [`MISSED_GRACE_SECS`] late (the machine slept, the clock jumped) is skipped too.
//! - A failed scheduled backup is retried as a new job (new id, new `job.scheduled`) after
//!   `retry_backoff_seconds × attempt`, at most `retry_max` times
//!   ([`domain::sources::next_attempt_after`]). Cancelled jobs are not retried.
//! - A group whose previous scheduled backup has not finished yet is skipped at the next
//!   fire rather than queued behind it (a slow backup must not pile up runs). A fresh fire
//!   replaces a retry that is still waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use domain::jobs::{JobKind, JobParams, JobStatus};
use domain::protocol::{
    AgentMessage, JobRunMsg, JobScheduledMsg, ScheduleSpec, ScheduledGroup, SchedulesUpdate,
};
use domain::sources::{next_attempt_after, next_fire, Bandwidth};
use tokio::sync::{mpsc, oneshot};

use crate::jobs;

/// How late a fire may be found and still run, in seconds.
pub const MISSED_GRACE_SECS: i64 = 600;

/// The longest the scheduler sleeps before looking at the clock again (sleeps follow the
/// monotonic clock, which stands still while the machine is suspended).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// (schedule id, source group id).
type Key = (String, String);

/// One backup to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The schedule.
    pub schedule_id: String,
    /// The group, as the current set has it.
    pub group: ScheduledGroup,
    /// 1 for the schedule's own run, 2 for the first retry, …
    pub attempt: u32,
}

impl Fire {
    fn key(&self) -> Key {
        (self.schedule_id.clone(), self.group.source_group_id.clone())
    }
}

/// A retry waiting for its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retry {
    at: i64,
    attempt: u32,
}

/// What the scheduler knows: the armed set, the next time of each enabled schedule, waiting
/// retries and the groups whose backup is running. No clock, no IO: callers pass `now`
/// (unix seconds).
#[derive(Debug, Default)]
pub struct Plan {
    set: Option<SchedulesUpdate>,
    next: BTreeMap<String, i64>,
    retries: BTreeMap<Key, Retry>,
    running: BTreeSet<Key>,
}

impl Plan {
    /// The version of the armed set.
    pub fn version(&self) -> Option<u64> {
        self.set.as_ref().map(|s| s.version)
    }

    /// The armed set's host-wide bandwidth caps.
    pub fn bandwidth(&self) -> Bandwidth {
        self.set.as_ref().map(|s| s.bandwidth).unwrap_or_default()
    }

    fn schedule(&self, id: &str) -> Option<&ScheduleSpec> {
        self.set
            .as_ref()?
            .schedules
            .iter()
            .find(|s| s.schedule_id == id)
    }

    /// The group of an enabled schedule.
    fn live_group(&self, key: &Key) -> Option<&ScheduledGroup> {
        self.schedule(&key.0)
            .filter(|s| s.enabled)?
            .groups
            .iter()
            .find(|g| g.source_group_id == key.1)
    }

    /// Arms a (new) set at `now`. A schedule whose cron did not change keeps the time it was
    /// armed for, so a set arriving just as it falls due does not swallow the fire. Retries
    /// of groups no longer scheduled are dropped. Returns problems worth logging.
    pub fn arm(&mut self, set: SchedulesUpdate, now: i64) -> Vec<String> {
        let mut problems = Vec::new();
        let mut next = BTreeMap::new();
        for s in set.schedules.iter().filter(|s| s.enabled) {
            let unchanged = self
                .schedule(&s.schedule_id)
                .is_some_and(|old| old.enabled && old.cron == s.cron);
            let kept = self.next.get(&s.schedule_id).filter(|_| unchanged).copied();
            match kept.or_else(|| next_fire(&s.cron, now)) {
                Some(t) => {
                    next.insert(s.schedule_id.clone(), t);
                }
                None => problems.push(format!(
                    "schedule {} has a cron expression that never fires or does not parse: {:?}",
                    s.schedule_id, s.cron
                )),
            }
        }
        self.next = next;
        self.set = Some(set);
        let retries = std::mem::take(&mut self.retries);
        self.retries = retries
            .into_iter()
            .filter(|(k, _)| self.live_group(k).is_some())
            .collect();
        problems
    }

    /// When something is due next (unix seconds).
    pub fn next_wake(&self) -> Option<i64> {
        self.next
            .values()
            .chain(self.retries.values().map(|r| &r.at))
            .min()
            .copied()
    }

    /// The next time of each armed schedule.
    pub fn armed(&self) -> &BTreeMap<String, i64> {
        &self.next
    }

    /// What is due at `now`: the groups of every schedule whose time has come (the schedule
    /// is armed again for its next time) and the retries whose wait is over. They count as
    /// running until [`Plan::finished`]. Also returns notes worth logging (skips).
    pub fn due(&mut self, now: i64) -> (Vec<Fire>, Vec<String>) {
        let mut fires = Vec::new();
        let mut notes = Vec::new();
        let due: Vec<(String, i64)> = self
            .next
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        for (id, at) in due {
            let Some(spec) = self.schedule(&id).cloned() else {
                self.next.remove(&id);
                continue;
            };
            match next_fire(&spec.cron, now) {
                Some(t) => self.next.insert(id.clone(), t),
                None => self.next.remove(&id),
            };
            if now - at > MISSED_GRACE_SECS {
                notes.push(format!(
                    "schedule {id} was due {} s ago (the machine slept or the clock jumped): skipped",
                    now - at
                ));
                continue;
            }
            for g in &spec.groups {
                let key = (id.clone(), g.source_group_id.clone());
                if self.running.contains(&key) {
                    notes.push(format!(
                        "schedule {id}: the previous backup of group {} has not finished: skipped",
                        g.name
                    ));
                    continue;
                }
                self.retries.remove(&key);
                self.running.insert(key);
                fires.push(Fire {
                    schedule_id: id.clone(),
                    group: g.clone(),
                    attempt: 1,
                });
            }
        }
        let ready: Vec<Key> = self
            .retries
            .iter()
            .filter(|(_, r)| r.at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in ready {
            let Some(r) = self.retries.remove(&key) else {
                continue;
            };
            let Some(group) = self.live_group(&key).cloned() else {
                continue;
            };
            if !self.running.insert(key.clone()) {
                continue;
            }
            fires.push(Fire {
                schedule_id: key.0,
                group,
                attempt: r.attempt,
            });
        }
        (fires, notes)
    }

    /// A fired job ended. A failure is retried when the group allows another attempt:
    /// returns when.
    pub fn finished(
        &mut self,
        schedule_id: &str,
        group_id: &str,
        attempt: u32,
        status: JobStatus,
        now: i64,
    ) -> Option<i64> {
        let key = (schedule_id.to_string(), group_id.to_string());
        self.running.remove(&key);
        if status != JobStatus::Failed {
            return None;
        }
        let g = self.live_group(&key)?;
        let at = next_attempt_after(attempt, g.retry_max, g.retry_backoff_seconds, now)?;
        self.retries.insert(
            key,
            Retry {
                at,
                attempt: attempt + 1,
            },
        );
        Some(at)
    }
}

/// The messages of one fire: `job.scheduled` for the server and the job for the runner.
pub fn job_for(
    fire: &Fire,
    bandwidth: Bandwidth,
    job_id: &str,
    fired_at: domain::Timestamp,
) -> (JobScheduledMsg, JobRunMsg) {
    let g = &fire.group;
    let params = JobParams {
        paths: g.includes.clone(),
        excludes: g.excludes.clone(),
        tags: vec![g.name.clone()],
        limit_upload_kbps: bandwidth.up_kbps,
        limit_download_kbps: bandwidth.down_kbps,
        ..Default::default()
    };
    (
        JobScheduledMsg {
            job_id: job_id.to_string(),
            schedule_id: fire.schedule_id.clone(),
            source_group_id: g.source_group_id.clone(),
            kind: JobKind::Backup,
            params: params.clone(),
            fired_at: fired_at.to_string(),
        },
        JobRunMsg {
            job_id: job_id.to_string(),
            kind: JobKind::Backup,
            params,
            hooks: g.hooks.clone(),
            admin_repo: None,
            source_repo: None,
        },
    )
}

/// A fired job's end, as the runner reported it.
struct Done {
    key: Key,
    attempt: u32,
    status: JobStatus,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts the scheduler with the cached set (if any); send it every new set.
pub fn spawn(
    initial: Option<SchedulesUpdate>,
    jobs: mpsc::UnboundedSender<jobs::Command>,
    sender: jobs::Sender,
) -> mpsc::UnboundedSender<SchedulesUpdate> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut plan = Plan::default();
    if let Some(set) = initial {
        for p in plan.arm(set, now_millis() / 1000) {
            tracing::warn!("{p}");
        }
        tracing::info!(
            version = plan.version(),
            schedules = plan.armed().len(),
            "armed the cached schedule set"
        );
    }
    tokio::spawn(run(plan, rx, jobs, sender));
    tx
}

async fn run(
    mut plan: Plan,
    mut updates: mpsc::UnboundedReceiver<SchedulesUpdate>,
    jobs: mpsc::UnboundedSender<jobs::Command>,
    sender: jobs::Sender,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut updates_open = true;
    loop {
        let now_ms = now_millis();
        let (fires, notes) = plan.due(now_ms / 1000);
        for n in notes {
            tracing::warn!("{n}");
        }
        for f in fires {
            fire(&f, plan.bandwidth(), now_ms, &jobs, &sender, &done_tx);
        }
        let wait = plan
            .next_wake()
            .map(|w| Duration::from_millis((w * 1000 - now_millis()).max(0) as u64))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        tokio::select! {
            u = updates.recv(), if updates_open => match u {
                Some(set) => {
                    for p in plan.arm(set, now_millis() / 1000) {
                        tracing::warn!("{p}");
                    }
                    tracing::info!(version = plan.version(), schedules = plan.armed().len(), "armed a new schedule set");
                }
                None => updates_open = false,
            },
            Some(d) = done_rx.recv() => {
                if let Some(at) = plan.finished(&d.key.0, &d.key.1, d.attempt, d.status, now_millis() / 1000) {
                    tracing::warn!(
                        schedule_id = d.key.0, group_id = d.key.1, attempt = d.attempt,
                        "scheduled backup failed; retrying in {} s", at - now_millis() / 1000
                    );
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// `job.scheduled` into the outbox, then the job to the runner; the runner's verdict comes
/// back on `done`.
fn fire(
    f: &Fire,
    bandwidth: Bandwidth,
    now_ms: i64,
    jobs: &mpsc::UnboundedSender<jobs::Command>,
    sender: &jobs::Sender,
    done: &mpsc::UnboundedSender<Done>,
) {
    let job_id = uuid::Uuid::now_v7().to_string();
    let fired_at = domain::Timestamp::from_unix_micros(now_ms * 1000)
        .unwrap_or_else(|| domain::Timestamp::new(::time::OffsetDateTime::now_utc()));
    let (scheduled, run) = job_for(f, bandwidth, &job_id, fired_at);
    tracing::info!(
        job_id,
        schedule_id = f.schedule_id,
        group = f.group.name,
        attempt = f.attempt,
        "schedule fired"
    );
    sender.send_durable(AgentMessage::JobScheduled(scheduled));
    let (tx, rx) = oneshot::channel();
    let _ = jobs.send(jobs::Command::RunScheduled(run, tx));
    let done = done.clone();
    let key = f.key();
    let attempt = f.attempt;
    tokio::spawn(async move {
        // A runner that went away (the agent is stopping) is no reason to retry.
        let status = rx.await.unwrap_or(JobStatus::Cancelled);
        let _ = done.send(Done {
            key,
            attempt,
            status,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::protocol::Hooks;

    /// 2026-11-29 00:00:00 UTC, a Sunday.
    const SUN: i64 = 1_795_910_400;

    fn group(id: &str, retry_max: u32, backoff: u64) -> ScheduledGroup {
        ScheduledGroup {
            source_group_id: id.into(),
            name: format!("name-{id}"),
            includes: vec![format!("/srv/{id}")],
            excludes: vec!["*.tmp".into()],
            retention_policy: Default::default(),
            retry_max,
            retry_backoff_seconds: backoff,
            hooks: Hooks {
                pre: Some("echo pre".into()),
                post: None,
            },
        }
    }

    fn sched(id: &str, cron: &str, enabled: bool, groups: Vec<ScheduledGroup>) -> ScheduleSpec {
        ScheduleSpec {
            schedule_id: id.into(),
            cron: cron.into(),
            enabled,
            groups,
        }
    }

    fn set(version: u64, schedules: Vec<ScheduleSpec>) -> SchedulesUpdate {
        SchedulesUpdate {
            version,
            schedules,
            bandwidth: Bandwidth {
                up_kbps: Some(100),
                down_kbps: None,
            },
        }
    }

    fn ids(fires: &[Fire]) -> Vec<(String, String, u32)> {
        fires
            .iter()
            .map(|f| {
                (
                    f.schedule_id.clone(),
                    f.group.source_group_id.clone(),
                    f.attempt,
                )
            })
            .collect()
    }

    #[test]
    fn arms_enabled_schedules_for_their_next_time() {
        let mut p = Plan::default();
        let problems = p.arm(
            set(
                1,
                vec![
                    sched("daily", "0 3 * * *", true, vec![group("g1", 0, 0)]),
                    sched("paused", "0 4 * * *", false, vec![group("g1", 0, 0)]),
                    sched("broken", "every day", true, vec![group("g1", 0, 0)]),
                ],
            ),
            SUN + 10,
        );
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken"));
        assert_eq!(p.armed().len(), 1);
        assert_eq!(p.armed()["daily"], SUN + 3 * 3600);
        assert_eq!(p.next_wake(), Some(SUN + 3 * 3600));
        assert_eq!(p.version(), Some(1));
        // Nothing is due before its time; missed runs from before `now` are not made up.
        assert!(p.due(SUN + 3 * 3600 - 1).0.is_empty());
    }

    #[test]
    fn fires_every_group_once_and_arms_the_next_time() {
        let mut p = Plan::default();
        p.arm(
            set(
                1,
                vec![sched(
                    "s",
                    "*/5 * * * *",
                    true,
                    vec![group("g1", 0, 0), group("g2", 0, 0)],
                )],
            ),
            SUN + 1,
        );
        let t = SUN + 300;
        let (fires, notes) = p.due(t);
        assert!(notes.is_empty());
        assert_eq!(
            ids(&fires),
            [("s".into(), "g1".into(), 1), ("s".into(), "g2".into(), 1)]
        );
        assert_eq!(p.armed()["s"], t + 300);
        // The same second again: nothing more.
        assert!(p.due(t).0.is_empty());
        // g1 still runs at the next fire: it is skipped, g2 (finished) fires.
        assert_eq!(p.finished("s", "g2", 1, JobStatus::Succeeded, t + 10), None);
        let (fires, notes) = p.due(t + 300);
        assert_eq!(ids(&fires), [("s".into(), "g2".into(), 1)]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("has not finished"));
    }

    #[test]
    fn a_late_fire_is_skipped_and_rearmed() {
        let mut p = Plan::default();
        p.arm(
            set(
                1,
                vec![sched("s", "0 3 * * *", true, vec![group("g1", 0, 0)])],
            ),
            SUN,
        );
        // Found two hours late (suspend): skipped, next day armed.
        let (fires, notes) = p.due(SUN + 5 * 3600);
        assert!(fires.is_empty());
        assert_eq!(notes.len(), 1);
        assert_eq!(p.armed()["s"], SUN + 27 * 3600);
        // A little late (within the grace) still runs.
        let (fires, _) = p.due(SUN + 27 * 3600 + 30);
        assert_eq!(fires.len(), 1);
    }

    #[test]
    fn failures_are_retried_with_growing_backoff_until_retry_max() {
        let mut p = Plan::default();
        p.arm(
            set(
                1,
                vec![sched("s", "0 3 * * *", true, vec![group("g1", 2, 60)])],
            ),
            SUN,
        );
        let t = SUN + 3 * 3600;
        assert_eq!(p.due(t).0.len(), 1);
        // Attempt 1 fails at t+100: retry 1 after 60 s.
        assert_eq!(
            p.finished("s", "g1", 1, JobStatus::Failed, t + 100),
            Some(t + 160)
        );
        assert_eq!(p.next_wake(), Some(t + 160));
        assert!(p.due(t + 159).0.is_empty());
        let (fires, _) = p.due(t + 160);
        assert_eq!(ids(&fires), [("s".into(), "g1".into(), 2)]);
        // Attempt 2 fails: retry 2 after 2 × 60 s.
        assert_eq!(
            p.finished("s", "g1", 2, JobStatus::Failed, t + 200),
            Some(t + 320)
        );
        assert_eq!(ids(&p.due(t + 320).0), [("s".into(), "g1".into(), 3)]);
        // Attempt 3 fails: retry_max (2) is used up.
        assert_eq!(p.finished("s", "g1", 3, JobStatus::Failed, t + 400), None);
        assert_eq!(p.next_wake(), Some(t + 86_400));
        // Cancelled and successful runs are not retried.
        p.due(t + 86_400);
        assert_eq!(
            p.finished("s", "g1", 1, JobStatus::Cancelled, t + 86_500),
            None
        );
    }

    #[test]
    fn a_new_set_drops_retries_of_removed_groups_and_keeps_due_times() {
        let mut p = Plan::default();
        p.arm(
            set(
                1,
                vec![sched(
                    "s",
                    "0 3 * * *",
                    true,
                    vec![group("g1", 3, 60), group("g2", 3, 60)],
                )],
            ),
            SUN,
        );
        let t = SUN + 3 * 3600;
        p.due(t);
        p.finished("s", "g1", 1, JobStatus::Failed, t + 10);
        p.finished("s", "g2", 1, JobStatus::Failed, t + 10);
        // g2 leaves the schedule: its retry goes, g1's stays.
        p.arm(
            set(
                2,
                vec![sched("s", "0 3 * * *", true, vec![group("g1", 3, 60)])],
            ),
            t + 20,
        );
        assert_eq!(ids(&p.due(t + 70).0), [("s".into(), "g1".into(), 2)]);

        // A set arriving exactly when an unchanged schedule falls due keeps that fire.
        let mut p = Plan::default();
        let s1 = set(
            1,
            vec![sched("s", "0 3 * * *", true, vec![group("g1", 0, 0)])],
        );
        p.arm(s1.clone(), SUN);
        let mut s2 = s1.clone();
        s2.version = 2;
        p.arm(s2, t);
        assert_eq!(p.due(t).0.len(), 1);
        // A changed cron is armed afresh.
        let s3 = set(
            3,
            vec![sched("s", "30 3 * * *", true, vec![group("g1", 0, 0)])],
        );
        p.arm(s3, t + 1);
        assert_eq!(p.armed()["s"], t + 1800);
        // Pausing disarms.
        p.arm(
            set(
                4,
                vec![sched("s", "30 3 * * *", false, vec![group("g1", 0, 0)])],
            ),
            t + 2,
        );
        assert_eq!(p.next_wake(), None);
    }

    #[test]
    fn a_fire_becomes_a_tagged_capped_backup_with_hooks() {
        let f = Fire {
            schedule_id: "s".into(),
            group: group("g1", 0, 0),
            attempt: 1,
        };
        let at = domain::Timestamp::from_unix_micros(SUN * 1_000_000).unwrap();
        let (sched, run) = job_for(
            &f,
            Bandwidth {
                up_kbps: Some(100),
                down_kbps: Some(200),
            },
            "j1",
            at,
        );
        assert_eq!(sched.job_id, "j1");
        assert_eq!(sched.kind, JobKind::Backup);
        assert_eq!(sched.schedule_id, "s");
        assert_eq!(sched.source_group_id, "g1");
        assert_eq!(sched.fired_at, "2026-11-29T00:00:00.000000Z");
        assert_eq!(sched.params.paths, ["/srv/g1"]);
        assert_eq!(sched.params.excludes, ["*.tmp"]);
        assert_eq!(sched.params.tags, ["name-g1"]);
        assert_eq!(sched.params.limit_upload_kbps, Some(100));
        assert_eq!(sched.params.limit_download_kbps, Some(200));
        assert_eq!(run.params, sched.params);
        assert_eq!(run.job_id, "j1");
        assert_eq!(run.hooks.pre.as_deref(), Some("echo pre"));
        assert!(run.admin_repo.is_none());
    }

    /// Drives the real loop (real runner, fake restic that always fails) from a retry that
    /// is due at once: the outbox must hold scheduled → started → finished for the first
    /// attempt, then the same for the one retry `retry_max = 1` allows, with new job ids.
    #[tokio::test]
    async fn fires_reach_the_outbox_in_order_and_failures_are_retried() {
        use crate::jobs::test_support::{fixture, outbox_messages};
        let f = fixture("echo 'Fatal: unable to open config file' >&2; exit 1");
        let jobs = crate::jobs::spawn(f.ctx.clone());
        let mut plan = Plan::default();
        let mut g = group("g1", 1, 0);
        g.hooks = Hooks::default();
        // Far in the future: only the retry below fires.
        plan.arm(set(1, vec![sched("s", "0 0 1 1 *", true, vec![g])]), SUN);
        plan.retries
            .insert(("s".into(), "g1".into()), Retry { at: 0, attempt: 1 });
        let (_updates_tx, updates_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(plan, updates_rx, jobs, f.ctx.sender.clone()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let msgs = loop {
            let msgs = outbox_messages(&f.outbox);
            let finished = msgs
                .iter()
                .filter(|m| matches!(m, AgentMessage::JobFinished(_)))
                .count();
            if finished >= 2 {
                // Give a third (wrong) attempt the chance to show up.
                tokio::time::sleep(Duration::from_millis(500)).await;
                break outbox_messages(&f.outbox);
            }
            assert!(std::time::Instant::now() < deadline, "{msgs:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        task.abort();
        let kinds: Vec<&str> = msgs.iter().map(|m| m.msg_type()).collect();
        assert_eq!(
            kinds,
            [
                "job.scheduled",
                "job.started",
                "job.finished",
                "job.scheduled",
                "job.started",
                "job.finished"
            ]
        );
        let job_of = |m: &AgentMessage| match m {
            AgentMessage::JobScheduled(x) => x.job_id.clone(),
            AgentMessage::JobStarted(x) => x.job_id.clone(),
            AgentMessage::JobFinished(x) => x.job_id.clone(),
            _ => unreachable!(),
        };
        assert_eq!(job_of(&msgs[0]), job_of(&msgs[1]));
        assert_eq!(job_of(&msgs[0]), job_of(&msgs[2]));
        assert_eq!(job_of(&msgs[3]), job_of(&msgs[5]));
        assert_ne!(job_of(&msgs[0]), job_of(&msgs[3]));
        assert!(uuid::Uuid::parse_str(&job_of(&msgs[0])).is_ok());
        match &msgs[0] {
            AgentMessage::JobScheduled(x) => {
                assert_eq!(x.schedule_id, "s");
                assert_eq!(x.source_group_id, "g1");
                assert_eq!(x.params.tags, ["name-g1"]);
                assert_eq!(x.params.limit_upload_kbps, Some(100));
            }
            _ => unreachable!(),
        }
        match &msgs[5] {
            AgentMessage::JobFinished(x) => {
                assert_eq!(x.status, JobStatus::Failed);
                assert_eq!(x.error_code.as_deref(), Some("repo_missing"));
            }
            _ => unreachable!(),
        }
        assert_eq!(
            f.calls().iter().filter(|c| c.starts_with("backup")).count(),
            2
        );
    }
}
