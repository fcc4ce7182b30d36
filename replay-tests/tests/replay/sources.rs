//! Host configuration decisions: groups, schedules, versions the agent acknowledges.

use domain::hosts::HostEnrolled;
use domain::sources::{
    ConfigCommand, Maintenance, MaintenanceChanged, RetentionPolicy, Schedule, ScheduleSaved,
    ScheduleSetApplied, SourceGroup, SourceGroupDeleted, SourceGroupSaved,
};
use domain::{DomainError, Event};
use replay_tests::{given, HostConfigOf};

fn enrolled() -> Event {
    HostEnrolled {
        host_id: "h1".into(),
        token_id: "t1".into(),
        hostname: "web-1".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
        restic_version: "0.14.0".into(),
    }
    .into()
}

fn group(id: &str, name: &str) -> SourceGroup {
    SourceGroup {
        id: id.into(),
        name: name.into(),
        includes: vec!["/srv".into()],
        excludes: vec!["*.tmp".into()],
        retention_policy: RetentionPolicy {
            keep_last: Some(3),
            ..Default::default()
        },
        retry_max: 2,
        retry_backoff_seconds: 60,
    }
}

fn saved(g: SourceGroup, v: u64) -> Event {
    SourceGroupSaved {
        host_id: "h1".into(),
        group: g,
        schedule_version: v,
    }
    .into()
}

fn schedule(id: &str, groups: &[&str]) -> Schedule {
    Schedule {
        id: id.into(),
        cron: "0 3 * * *".into(),
        enabled: true,
        source_group_ids: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn a_new_group_bumps_the_schedule_version() {
    given::<HostConfigOf>(vec![enrolled(), saved(group("g1", "default"), 1)])
        .when(ConfigCommand::SaveGroup {
            group: group("g2", "db"),
            create: true,
        })
        .then(vec![saved(group("g2", "db"), 2)]);
}

#[test]
fn a_group_in_use_is_not_deleted_and_the_schedules_are_named() {
    given::<HostConfigOf>(vec![
        enrolled(),
        saved(group("g1", "default"), 1),
        saved(group("g2", "db"), 2),
        ScheduleSaved {
            host_id: "h1".into(),
            schedule: schedule("s1", &["g2"]),
            schedule_version: 3,
        }
        .into(),
    ])
    .when(ConfigCommand::DeleteGroup {
        group_id: "g2".into(),
    })
    .then_error(DomainError::GroupInUse(vec!["s1".into()]));
}

#[test]
fn deleting_a_free_group_and_the_agents_acknowledgement() {
    let history = vec![
        enrolled(),
        saved(group("g1", "default"), 1),
        saved(group("g2", "db"), 2),
    ];
    given::<HostConfigOf>(history.clone())
        .when(ConfigCommand::DeleteGroup {
            group_id: "g2".into(),
        })
        .then(vec![SourceGroupDeleted {
            host_id: "h1".into(),
            group_id: "g2".into(),
            name: "db".into(),
            schedule_version: 3,
        }
        .into()]);
    given::<HostConfigOf>(history)
        .when(ConfigCommand::RecordApplied { version: 2 })
        .then(vec![ScheduleSetApplied {
            host_id: "h1".into(),
            version: 2,
        }
        .into()]);
}

#[test]
fn the_last_group_stays() {
    given::<HostConfigOf>(vec![enrolled(), saved(group("g1", "default"), 1)])
        .when(ConfigCommand::DeleteGroup {
            group_id: "g1".into(),
        })
        .then_error(DomainError::LastSourceGroup);
}

#[test]
fn maintenance_changes_do_not_bump_the_schedule_version() {
    let m = Maintenance {
        check_cadence: "daily".into(),
        ..Default::default()
    };
    given::<HostConfigOf>(vec![enrolled(), saved(group("g1", "default"), 1)])
        .when(ConfigCommand::SetMaintenance(m.clone()))
        .then(vec![MaintenanceChanged {
            host_id: "h1".into(),
            maintenance: m,
        }
        .into()]);
}
