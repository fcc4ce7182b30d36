//! Time-travel latency: how long an `as_of` view takes to build over a generated history of
//! 1,000,000 events (`RM_BENCH_ASOF_EVENTS`), at its start, middle and end, from the
//! nearest projection checkpoint (one every 50,000 events). Target: < 2 s.
//!
//! The history is a fleet: 1,000 hosts enrol (with their default source group), then backup
//! jobs run round-robin — queued, dispatched, started, one progress, a batch of log lines,
//! finished — and every job reports the host's snapshot list (its last 10 snapshots).
//!
//! Run: `cargo bench -p server --bench asof`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::hosts::{HostEnrolled, RepoCredentialsChanged};
use domain::jobs::{
    JobDispatched, JobFinished, JobKind, JobLogged, JobParams, JobProgressed, JobQueued,
    JobStarted, JobStatus, LogLine, Progress, Snapshot, SnapshotsReported, Trigger,
};
use domain::sources::{SourceGroup, SourceGroupSaved};
use domain::{Actor, Event};
use server::asof::TimeTravel;
use server::clock::SystemClock;
use server::store::{AppendRequest, EventStore, StoreError, StoreOptions};

const HOSTS: usize = 1000;

fn host(h: usize) -> String {
    format!("01a22490-0000-7000-8000-{h:012}")
}

fn enrol(h: usize) -> Vec<Event> {
    let id = host(h);
    vec![
        HostEnrolled {
            host_id: id.clone(),
            token_id: format!("t{h}"),
            hostname: format!("web-{h:04}"),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            restic_version: "0.14.0".into(),
        }
        .into(),
        RepoCredentialsChanged {
            host_id: id.clone(),
            version: 1,
            credentials_ref: format!("repo-{id}"),
        }
        .into(),
        SourceGroupSaved {
            host_id: id.clone(),
            group: SourceGroup::default_for_enrolment(format!("g{h}"), vec!["/srv".into()]),
            schedule_version: 1,
        }
        .into(),
    ]
}

/// The 7 events of backup job `j` (on host `j % HOSTS`), in their streams.
fn job(j: usize) -> Vec<(String, Event)> {
    let h = j % HOSTS;
    let hid = host(h);
    let jid = format!("job-{j:09}");
    let js = format!("job-{jid}");
    let round = j / HOSTS;
    let snaps = (round.saturating_sub(9)..=round)
        .map(|r| Snapshot {
            id: format!("{:064x}", r * HOSTS + h),
            short_id: format!("{:08x}", r * HOSTS + h),
            time: format!("2026-11-{:02}T03:00:00Z", 1 + r % 28),
            paths: vec!["/srv".into()],
            tags: vec!["default".into()],
            hostname: format!("web-{h:04}"),
        })
        .collect();
    vec![
        (
            js.clone(),
            JobQueued {
                job_id: jid.clone(),
                host_id: hid.clone(),
                kind: JobKind::Backup,
                params: JobParams {
                    paths: vec!["/srv".into()],
                    tags: vec!["default".into()],
                    ..Default::default()
                },
                trigger: Trigger::Schedule,
                source_group_id: Some(format!("g{h}")),
                schedule_id: Some(format!("s{h}")),
                pending_run_id: None,
            }
            .into(),
        ),
        (
            js.clone(),
            JobDispatched {
                job_id: jid.clone(),
                host_id: hid.clone(),
            }
            .into(),
        ),
        (
            js.clone(),
            JobStarted {
                job_id: jid.clone(),
                host_id: hid.clone(),
            }
            .into(),
        ),
        (
            js.clone(),
            JobProgressed {
                job_id: jid.clone(),
                progress: Progress {
                    percent: 50.0,
                    bytes_done: 5 << 20,
                    total_bytes: 10 << 20,
                    files_done: 50,
                    total_files: 100,
                    seconds_remaining: Some(3),
                },
            }
            .into(),
        ),
        (
            js.clone(),
            JobLogged {
                job_id: jid.clone(),
                lines: (0..3)
                    .map(|i| LogLine {
                        at: "2026-11-29T03:00:01.000000Z".into(),
                        stream: "stdout".into(),
                        text: format!("line {i} of job {j}"),
                    })
                    .collect(),
            }
            .into(),
        ),
        (
            js,
            JobFinished {
                job_id: jid,
                host_id: hid.clone(),
                kind: JobKind::Backup,
                status: if j.is_multiple_of(13) {
                    JobStatus::Failed
                } else {
                    JobStatus::Succeeded
                },
                stats: Some(serde_json::json!({"files_new": 3, "data_added": 1234})),
                error: None,
                snapshot_id: Some(format!("{:08x}", round * HOSTS + h)),
                warnings: vec![],
                error_code: None,
            }
            .into(),
        ),
        (
            format!("host-{hid}"),
            SnapshotsReported {
                host_id: hid,
                snapshots: snaps,
                repo_size_bytes: Some(1 << 30),
                restore_size_bytes: Some(3 << 30),
            }
            .into(),
        ),
    ]
}

async fn generate(s: &EventStore, total: usize) -> i64 {
    for chunk in (0..HOSTS).collect::<Vec<_>>().chunks(100) {
        let chunk = chunk.to_vec();
        s.write(move |uow| -> Result<(), StoreError> {
            for h in chunk {
                uow.append(AppendRequest::new(
                    format!("host-{}", host(h)),
                    Actor::System("bench".into()),
                    enrol(h),
                ))?;
            }
            Ok(())
        })
        .await
        .expect("enrol");
    }
    let jobs = total.saturating_sub(HOSTS * 3) / 7;
    for start in (0..jobs).step_by(150) {
        let end = (start + 150).min(jobs);
        s.write(move |uow| -> Result<(), StoreError> {
            for j in start..end {
                for (stream, e) in job(j) {
                    uow.append(AppendRequest::new(
                        stream,
                        Actor::System("bench".into()),
                        vec![e],
                    ))?;
                }
            }
            Ok(())
        })
        .await
        .expect("jobs");
    }
    s.write(|uow| -> Result<i64, StoreError> {
        Ok(uow
            .conn()
            .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?)
    })
    .await
    .expect("head")
}

fn main() {
    let total = common::env_num("RM_BENCH_ASOF_EVENTS", 1_000_000) as usize;
    let every = common::env_num("RM_BENCH_ASOF_EVERY", 50_000) as i64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restic-manager.db");
    let t = Instant::now();
    let head = rt.block_on(async {
        let s = EventStore::open(
            &db,
            Arc::new(SystemClock),
            StoreOptions {
                durable: false,
                checkpoint_every: Duration::from_secs(1),
                ..StoreOptions::default()
            },
        )
        .expect("store");
        let head = generate(&s, total).await;
        s.close().await;
        head
    });
    let db_mib = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    println!("== time travel over {head} events (checkpoint every {every}) ==");
    println!(
        "  generated in {:.1} s, database {db_mib:.0} MiB",
        t.elapsed().as_secs_f64()
    );
    let tt = TimeTravel::new(db.clone(), dir.path().join("asof"), every);
    let t = Instant::now();
    let mut n = 0;
    while tt.maybe_checkpoint().expect("checkpoint").is_some() {
        n += 1;
    }
    // The background task takes one checkpoint per look; catching up on an old history
    // takes one here: the latest. Earlier ones come from a growing log over time — build
    // them the same way, at every multiple, as the running server would have.
    println!(
        "  checkpoint at head: {n} taken in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut cps = 0;
    for cp in (1..).map(|k| k * every).take_while(|c| *c < head) {
        let view = tt.build(cp).expect("view");
        let file = dir.path().join("asof").join(format!("cp-{cp}.db"));
        // Store the built view as the checkpoint for seq `cp`.
        view.execute("VACUUM INTO ?1", [file.to_string_lossy()])
            .expect("vacuum into");
        let c = rusqlite::Connection::open(&file).unwrap();
        c.execute_batch("DROP TABLE IF EXISTS job_logs").unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE cp_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO cp_meta VALUES ('projections', '{}'), ('seq', '{cp}');",
            server::asof::fingerprint()
        ))
        .unwrap();
        cps += 1;
    }
    println!(
        "  {cps} earlier checkpoints built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!("  checkpoints: {:?}", tt.checkpoints());
    let mut results = Vec::new();
    for (name, seq) in [
        ("start", 1000.min(head)),
        ("middle", head / 2),
        ("end", head),
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let fresh = TimeTravel::new(db.clone(), dir.path().join("asof"), every);
            let t = Instant::now();
            let view = fresh.view(seq).expect("view");
            let c = view.lock().unwrap();
            let hosts = projections::hosts::list(&c).unwrap();
            let summary = projections::hosts::summary(&c).unwrap();
            let jobs = projections::jobs::list_for_host(&c, &host(7), 500).unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert!(!hosts.is_empty() || seq < 3);
            let _ = (summary, jobs);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "  as_of {name:6} (seq {seq:>8}): median {:.3} s, max {:.3} s  (target < 2 s)",
            times[1], times[2]
        );
        results.push((name, seq, times[2]));
    }
    let worst = results.iter().map(|r| r.2).fold(0.0, f64::max);
    println!(
        "  worst {:.3} s -> {}",
        worst,
        if worst < 2.0 { "PASS" } else { "MISS" }
    );
}
