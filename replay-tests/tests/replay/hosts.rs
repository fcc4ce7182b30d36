//! Host decisions: only transitions become events.

use domain::hosts::{
    AgentFacts, HostCameOnline, HostCommand, HostDeleted, HostEnrolled, HostWentOffline,
    RepoCredentialsApplied, RepoCredentialsChanged,
};
use domain::{DomainError, Event};
use replay_tests::{given, Hosts};

fn facts(version: &str) -> AgentFacts {
    AgentFacts {
        hostname: "web-1".into(),
        os: "linux".into(),
        arch: "x86_64".into(),
        agent_version: version.into(),
        restic_version: "0.14.0".into(),
        protocol_version: 1,
    }
}

fn enrolled() -> Vec<Event> {
    vec![
        HostEnrolled {
            host_id: "h1".into(),
            token_id: "t1".into(),
            hostname: "web-1".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            restic_version: "0.14.0".into(),
        }
        .into(),
        RepoCredentialsChanged {
            host_id: "h1".into(),
            version: 1,
            credentials_ref: "repo-h1".into(),
        }
        .into(),
    ]
}

fn online(version: &str) -> Event {
    HostCameOnline {
        host_id: "h1".into(),
        facts: facts(version),
    }
    .into()
}

fn connect(version: &str) -> HostCommand {
    HostCommand::Connect {
        host_id: "h1".into(),
        facts: facts(version),
    }
}

#[test]
fn enrolment_creates_the_host_with_credentials_version_1() {
    let mut f = facts("0.1.0");
    f.protocol_version = 0;
    given::<Hosts>(vec![])
        .when(HostCommand::Enroll {
            host_id: "h1".into(),
            token_id: "t1".into(),
            credentials_ref: "repo-h1".into(),
            facts: f,
        })
        .then(enrolled());
}

#[test]
fn a_first_hello_is_a_transition_a_repeated_one_is_not() {
    given::<Hosts>(enrolled())
        .when(connect("0.1.0"))
        .then(vec![online("0.1.0")]);
    let mut history = enrolled();
    history.push(online("0.1.0"));
    given::<Hosts>(history.clone())
        .when(connect("0.1.0"))
        .then(vec![]);
    // An upgraded agent reports new facts: recorded.
    given::<Hosts>(history)
        .when(connect("0.2.0"))
        .then(vec![online("0.2.0")]);
}

#[test]
fn offline_is_decided_once() {
    let mut history = enrolled();
    history.push(online("0.1.0"));
    let off = HostCommand::MarkOffline {
        host_id: "h1".into(),
        reason: "no contact for more than 90 s".into(),
    };
    given::<Hosts>(history.clone())
        .when(off.clone())
        .then(vec![HostWentOffline {
            host_id: "h1".into(),
            reason: "no contact for more than 90 s".into(),
        }
        .into()]);
    history.push(
        HostWentOffline {
            host_id: "h1".into(),
            reason: "x".into(),
        }
        .into(),
    );
    given::<Hosts>(history).when(off).then(vec![]);
}

#[test]
fn credentials_versions_count_up_and_confirmations_only_move_forward() {
    let changed = given::<Hosts>(enrolled())
        .when(HostCommand::ChangeCredentials {
            host_id: "h1".into(),
            credentials_ref: "repo-h1".into(),
        })
        .then(vec![RepoCredentialsChanged {
            host_id: "h1".into(),
            version: 2,
            credentials_ref: "repo-h1".into(),
        }
        .into()]);
    assert_eq!(changed.hosts["h1"].credentials_version, 2);
    let mut history = enrolled();
    history.push(
        RepoCredentialsApplied {
            host_id: "h1".into(),
            version: 1,
        }
        .into(),
    );
    let apply = |v| HostCommand::RecordApplied {
        host_id: "h1".into(),
        version: v,
    };
    given::<Hosts>(history.clone()).when(apply(1)).then(vec![]);
    given::<Hosts>(history).when(apply(7)).then(vec![]);
}

#[test]
fn a_deleted_host_refuses_everything() {
    let mut history = enrolled();
    history.push(
        HostDeleted {
            host_id: "h1".into(),
            hostname: "web-1".into(),
        }
        .into(),
    );
    given::<Hosts>(history.clone())
        .when(connect("0.1.0"))
        .then_error(DomainError::HostDeleted);
    given::<Hosts>(history)
        .when(HostCommand::Delete {
            host_id: "h1".into(),
        })
        .then_error(DomainError::HostDeleted);
    given::<Hosts>(vec![])
        .when(connect("0.1.0"))
        .then_error(DomainError::UnknownHost);
}
