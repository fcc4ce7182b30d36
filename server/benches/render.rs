//! Server-side render time of the dashboard with 5,000 hosts in the read model: reading the
//! hosts, the fleet summary and every host's schedules from SQLite, working out each host's
//! next run, plus rendering the page (not paged: every host is one table row). Prints p50, p95 and p99 over repeated renders.
//!
//! Run: `cargo bench -p server --bench render` (`RM_BENCH_HOSTS`, default 5000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::hosts::{AgentFacts, HostCameOnline, HostEnrolled};
use domain::jobs::{JobFinished, JobKind, JobStatus, Snapshot, SnapshotsReported};
use domain::sources::{Schedule, ScheduleSaved, SourceGroup, SourceGroupSaved};
use domain::{Actor, Event};
use server::clock::{Clock, SystemClock};
use server::store::{AppendRequest, EventLog, EventStore, StoreOptions};

fn main() {
    let n: usize = std::env::var("RM_BENCH_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = EventStore::open(
        &dir.path().join("restic-manager.db"),
        Arc::new(SystemClock),
        StoreOptions {
            durable: false,
            ..Default::default()
        },
    )
    .unwrap();
    rt.block_on(async {
        for i in 0..n {
            let id = format!("host-{i:05}");
            let facts = AgentFacts {
                hostname: format!("web-{i:05}"),
                os: "linux".into(),
                arch: "x86_64".into(),
                agent_version: "0.1.0".into(),
                restic_version: "0.14.0".into(),
                protocol_version: 1,
            };
            let events: Vec<Event> = vec![
                HostEnrolled {
                    host_id: id.clone(),
                    token_id: format!("t{i}"),
                    hostname: facts.hostname.clone(),
                    os: facts.os.clone(),
                    arch: facts.arch.clone(),
                    agent_version: facts.agent_version.clone(),
                    restic_version: facts.restic_version.clone(),
                }
                .into(),
                HostCameOnline {
                    host_id: id.clone(),
                    facts,
                }
                .into(),
                JobFinished {
                    job_id: format!("j{i}"),
                    host_id: id.clone(),
                    kind: JobKind::Backup,
                    status: if i % 17 == 0 {
                        JobStatus::Failed
                    } else {
                        JobStatus::Succeeded
                    },
                    stats: None,
                    error: None,
                    snapshot_id: None,
                    warnings: vec![],
                    error_code: None,
                }
                .into(),
                SnapshotsReported {
                    host_id: id.clone(),
                    snapshots: vec![Snapshot {
                        id: format!("{i:064x}"),
                        short_id: format!("{i:08x}"),
                        time: "2026-11-28T10:00:00Z".into(),
                        paths: vec!["/srv".into()],
                        tags: vec![],
                        hostname: format!("web-{i:05}"),
                    }],
                    repo_size_bytes: Some(1 << 30),
                    restore_size_bytes: None,
                }
                .into(),
                SourceGroupSaved {
                    host_id: id.clone(),
                    group: SourceGroup::default_for_enrolment(format!("g{i}"), vec!["/srv".into()]),
                    schedule_version: 1,
                }
                .into(),
                ScheduleSaved {
                    host_id: id.clone(),
                    schedule: Schedule {
                        id: format!("s{i}"),
                        cron: format!("{} 3 * * *", i % 60),
                        enabled: true,
                        source_group_ids: vec![format!("g{i}")],
                    },
                    schedule_version: 2,
                }
                .into(),
            ];
            store
                .append(AppendRequest::new(
                    format!("host-{id}"),
                    Actor::System("bench".into()),
                    events,
                ))
                .await
                .unwrap();
        }
    });
    let viewer = web::Viewer {
        username: Some("admin".into()),
        role: Some("admin".into()),
        csrf_token: Some("t".repeat(64)),
        open_alerts: None,
        as_of: None,
    };
    let render = || {
        let (summary, hosts, digests) = rt
            .block_on(store.read(|c| -> Result<_, server::store::StoreError> {
                Ok((
                    projections::hosts::summary(c)?,
                    projections::hosts::list(c)?,
                    projections::config::schedule_digests(c)?,
                ))
            }))
            .unwrap();
        let head = store.head();
        let now = SystemClock.now();
        let schedules = server::http::sources_pages::schedule_cells(digests, now);
        let page = web::fleet::Dashboard {
            summary: &summary,
            hosts: &hosts,
            now,
            head: (head.seq, head.hash),
            schedules: &schedules,
        };
        web::fleet::dashboard(&viewer, &page).into_string()
    };
    let html = render();
    for _ in 0..20 {
        render();
    }
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let page = render();
        times.push(t.elapsed());
        assert!(page.len() > 1000);
    }
    times.sort();
    let q = |p: f64| {
        times[((times.len() as f64 * p).ceil() as usize).saturating_sub(1)].as_secs_f64() * 1000.0
    };
    println!("| dashboard with {n} hosts (not paged: {n} rows, {} KiB of HTML), read model + render, 200 renders | value | target |", html.len() / 1024);
    println!("|---|---|---|");
    println!("| p50 | {:.2} ms | |", q(0.50));
    println!("| p95 | {:.2} ms | < 50 ms |", q(0.95));
    println!("| p99 | {:.2} ms | |", q(0.99));
}
