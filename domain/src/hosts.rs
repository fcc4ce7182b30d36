//! Hosts: enrolment, connection transitions, repository credentials, deletion.
//!
//! The rules are small but they are where "only transitions are events" lives: a heartbeat
//! never becomes an event, a `hello` becomes `HostCameOnline` only when the host was not
//! online (or reports different versions), and going offline is decided once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::event::Event;

/// `EnrollmentTokenIssued`: a one-time enrolment token was minted. The token is hashed in the
/// server's durable tables; the repository credentials are in the vault (`credentials_ref`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTokenIssued {
    /// Public id of the token (not the token).
    pub token_id: String,
    /// The hostname the operator expects.
    pub hostname: String,
    /// When it stops working.
    pub expires_at: String,
}

/// `HostEnrolled`: an agent consumed a token and got its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEnrolled {
    /// New host id.
    pub host_id: String,
    /// The token consumed.
    pub token_id: String,
    /// Hostname reported by the agent.
    pub hostname: String,
    /// OS reported by the agent.
    pub os: String,
    /// Architecture reported by the agent.
    pub arch: String,
    /// Agent build.
    pub agent_version: String,
    /// restic version found on the host.
    pub restic_version: String,
}

/// What a connected agent reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentFacts {
    /// Hostname.
    pub hostname: String,
    /// OS.
    pub os: String,
    /// Architecture.
    pub arch: String,
    /// Agent build.
    pub agent_version: String,
    /// restic version.
    pub restic_version: String,
    /// Protocol version spoken.
    pub protocol_version: u32,
}

/// `HostCameOnline`: the agent connected (after being offline or never seen), or reported new
/// versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCameOnline {
    /// Host.
    pub host_id: String,
    /// What it reported in `hello`.
    #[serde(flatten)]
    pub facts: AgentFacts,
}

/// `HostWentOffline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostWentOffline {
    /// Host.
    pub host_id: String,
    /// Why, in words.
    pub reason: String,
}

/// `RepoCredentialsChanged`: the host's repository credentials were set or replaced. The
/// values are in the vault; only the version is public.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoCredentialsChanged {
    /// Host.
    pub host_id: String,
    /// Increases with every change.
    pub version: u64,
    /// Vault row.
    pub credentials_ref: String,
}

/// `RepoCredentialsApplied`: the agent stored credentials version N.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoCredentialsApplied {
    /// Host.
    pub host_id: String,
    /// The version stored.
    pub version: u64,
}

/// `HostDeleted`: the host was removed; its bearer is revoked and its secrets destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDeleted {
    /// Host.
    pub host_id: String,
    /// Its name at the time, for the audit trail.
    pub hostname: String,
}

/// Connection state of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Enrolled, never connected.
    Pending,
    /// Connected.
    Online,
    /// Not connected.
    Offline,
}

impl HostStatus {
    /// API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            HostStatus::Pending => "pending",
            HostStatus::Online => "online",
            HostStatus::Offline => "offline",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> HostStatus {
        match s {
            "online" => HostStatus::Online,
            "offline" => HostStatus::Offline,
            _ => HostStatus::Pending,
        }
    }
}

/// One host as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState {
    /// Connection state.
    pub status: HostStatus,
    /// Last reported facts.
    pub facts: AgentFacts,
    /// Current credentials version.
    pub credentials_version: u64,
    /// Version the agent confirmed.
    pub applied_version: u64,
    /// Deleted hosts stay in the state (their history is kept) but refuse everything.
    pub deleted: bool,
}

/// All hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsState {
    /// By id.
    pub hosts: BTreeMap<String, HostState>,
}

impl HostsState {
    /// Applies one event.
    pub fn evolve(&mut self, e: &Event) {
        match e {
            Event::HostEnrolled(h) => {
                self.hosts.insert(
                    h.host_id.clone(),
                    HostState {
                        status: HostStatus::Pending,
                        facts: AgentFacts {
                            hostname: h.hostname.clone(),
                            os: h.os.clone(),
                            arch: h.arch.clone(),
                            agent_version: h.agent_version.clone(),
                            restic_version: h.restic_version.clone(),
                            protocol_version: 0,
                        },
                        credentials_version: 0,
                        applied_version: 0,
                        deleted: false,
                    },
                );
            }
            Event::HostCameOnline(h) => {
                if let Some(s) = self.hosts.get_mut(&h.host_id) {
                    s.status = HostStatus::Online;
                    s.facts = h.facts.clone();
                }
            }
            Event::HostWentOffline(h) => {
                if let Some(s) = self.hosts.get_mut(&h.host_id) {
                    s.status = HostStatus::Offline;
                }
            }
            Event::RepoCredentialsChanged(c) => {
                if let Some(s) = self.hosts.get_mut(&c.host_id) {
                    s.credentials_version = c.version;
                }
            }
            Event::RepoCredentialsApplied(c) => {
                if let Some(s) = self.hosts.get_mut(&c.host_id) {
                    s.applied_version = s.applied_version.max(c.version);
                }
            }
            Event::HostDeleted(d) => {
                if let Some(s) = self.hosts.get_mut(&d.host_id) {
                    s.deleted = true;
                    s.status = HostStatus::Offline;
                }
            }
            _ => {}
        }
    }
}

/// What can be asked of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCommand {
    /// An agent consumed a valid token.
    Enroll {
        /// New host id.
        host_id: String,
        /// Token consumed.
        token_id: String,
        /// Vault row holding the credentials.
        credentials_ref: String,
        /// What the agent reported.
        facts: AgentFacts,
    },
    /// The agent said hello.
    Connect {
        /// Host.
        host_id: String,
        /// What it reported.
        facts: AgentFacts,
    },
    /// The host is gone (silent past the threshold, or its socket closed for good).
    MarkOffline {
        /// Host.
        host_id: String,
        /// Why.
        reason: String,
    },
    /// New repository credentials, already in the vault.
    ChangeCredentials {
        /// Host.
        host_id: String,
        /// Vault row.
        credentials_ref: String,
    },
    /// The agent confirmed a credentials version.
    RecordApplied {
        /// Host.
        host_id: String,
        /// Version.
        version: u64,
    },
    /// Remove the host.
    Delete {
        /// Host.
        host_id: String,
    },
}

fn live<'a>(state: &'a HostsState, id: &str) -> Result<&'a HostState, DomainError> {
    match state.hosts.get(id) {
        Some(h) if !h.deleted => Ok(h),
        Some(_) => Err(DomainError::HostDeleted),
        None => Err(DomainError::UnknownHost),
    }
}

/// Decides a host command.
pub fn decide(state: &HostsState, cmd: &HostCommand) -> Result<Vec<Event>, DomainError> {
    match cmd {
        HostCommand::Enroll {
            host_id,
            token_id,
            credentials_ref,
            facts,
        } => {
            if state.hosts.contains_key(host_id) {
                return Err(DomainError::invalid("host_id", "is already in use"));
            }
            Ok(vec![
                HostEnrolled {
                    host_id: host_id.clone(),
                    token_id: token_id.clone(),
                    hostname: facts.hostname.clone(),
                    os: facts.os.clone(),
                    arch: facts.arch.clone(),
                    agent_version: facts.agent_version.clone(),
                    restic_version: facts.restic_version.clone(),
                }
                .into(),
                RepoCredentialsChanged {
                    host_id: host_id.clone(),
                    version: 1,
                    credentials_ref: credentials_ref.clone(),
                }
                .into(),
            ])
        }
        HostCommand::Connect { host_id, facts } => {
            let h = live(state, host_id)?;
            if h.status == HostStatus::Online && &h.facts == facts {
                return Ok(vec![]);
            }
            Ok(vec![HostCameOnline {
                host_id: host_id.clone(),
                facts: facts.clone(),
            }
            .into()])
        }
        HostCommand::MarkOffline { host_id, reason } => {
            let h = live(state, host_id)?;
            if h.status != HostStatus::Online {
                return Ok(vec![]);
            }
            Ok(vec![HostWentOffline {
                host_id: host_id.clone(),
                reason: reason.clone(),
            }
            .into()])
        }
        HostCommand::ChangeCredentials {
            host_id,
            credentials_ref,
        } => {
            let h = live(state, host_id)?;
            Ok(vec![RepoCredentialsChanged {
                host_id: host_id.clone(),
                version: h.credentials_version + 1,
                credentials_ref: credentials_ref.clone(),
            }
            .into()])
        }
        HostCommand::RecordApplied { host_id, version } => {
            let h = live(state, host_id)?;
            if *version <= h.applied_version || *version > h.credentials_version {
                return Ok(vec![]);
            }
            Ok(vec![RepoCredentialsApplied {
                host_id: host_id.clone(),
                version: *version,
            }
            .into()])
        }
        HostCommand::Delete { host_id } => {
            let h = live(state, host_id)?;
            Ok(vec![HostDeleted {
                host_id: host_id.clone(),
                hostname: h.facts.hostname.clone(),
            }
            .into()])
        }
    }
}

/// A hostname as an operator types it or an agent reports it: 1–253 characters of letters,
/// digits, `.`, `-` and `_`.
pub fn validate_hostname(s: &str) -> Result<String, DomainError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 253 {
        return Err(DomainError::invalid(
            "hostname",
            "must be 1 to 253 characters",
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(DomainError::invalid(
            "hostname",
            "may only contain letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(s.to_string())
}

/// A repository URL: a path or a `backend:` location, one line, at most 2048 characters.
pub fn validate_repo_url(s: &str) -> Result<String, DomainError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(DomainError::invalid("repo_url", "is required"));
    }
    if s.len() > 2048 || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "repo_url",
            "must be one line of at most 2048 characters",
        ));
    }
    Ok(s.to_string())
}

/// A short free-text field an agent reports (versions, OS): trimmed, at most 128 characters,
/// control characters dropped — an agent must not be able to bloat or garble the log.
pub fn clean_fact(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_and_urls() {
        assert_eq!(
            validate_hostname(" web-1.example ").unwrap(),
            "web-1.example"
        );
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname("a b").is_err());
        assert!(validate_repo_url("rest:http://x:8000/r").is_ok());
        assert!(validate_repo_url("/srv/repo\nrm -rf").is_err());
        assert_eq!(clean_fact("0.14\n\u{7}x"), "0.14x");
    }
}
