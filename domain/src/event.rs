//! Every fact the system records.
//!
//! Each event has a wire name (the stored `type`), a current schema version and a payload
//! struct. Payloads never hold secrets: passwords, tokens and keys live in the server's vault
//! and events carry only a reference to the vault row.
//!
//! To change a payload's shape: bump its version in [`events!`], keep the old shape readable
//! by adding an upcaster in [`crate::upcast`], and add a fixture in the old shape to
//! `replay-tests/fixtures`.

use serde::{Deserialize, Serialize};

pub use crate::alerts::{
    AlertAcknowledged, AlertRaised, AlertResolved, ChannelDeleted, ChannelSaved,
    NotificationAttempted, NotificationQueued,
};
use crate::error::DomainError;
pub use crate::hosts::{
    EnrollmentTokenIssued, HostCameOnline, HostDeleted, HostEnrolled, HostWentOffline,
    RepoCredentialsApplied, RepoCredentialsChanged,
};
pub use crate::jobs::{
    JobCancelRequested, JobDispatched, JobFinished, JobLogged, JobLost, JobProgressed, JobQueued,
    JobStarted, SnapshotsReported,
};
pub use crate::sources::{
    AdminCredentialsChanged, BandwidthChanged, HooksChanged, MaintenanceChanged,
    PendingRunAttempted, PendingRunCompleted, PendingRunDropped, PendingRunQueued,
    PendingRunRetryScheduled, ScheduleDeleted, ScheduleSaved, ScheduleSetApplied,
    SourceGroupDeleted, SourceGroupSaved,
};
use crate::users::{LoginFailure, Role};

macro_rules! events {
    ($( $(#[$doc:meta])* $name:ident = $ver:literal ),* $(,)?) => {
        /// One fact, decoded to its current shape.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Event {
            $( $(#[$doc])* $name($name), )*
        }

        impl Event {
            /// Every event type with its current schema version.
            pub const TYPES: &'static [(&'static str, u32)] = &[$( (stringify!($name), $ver), )*];

            /// The stored `type`.
            pub fn event_type(&self) -> &'static str {
                match self { $( Event::$name(_) => stringify!($name), )* }
            }

            /// The schema version this build writes for a type; `None` for an unknown type.
            pub fn current_version(event_type: &str) -> Option<u32> {
                match event_type { $( stringify!($name) => Some($ver), )* _ => None }
            }

            /// The schema version of this event's payload.
            pub fn schema_version(&self) -> u32 {
                match self { $( Event::$name(_) => $ver, )* }
            }

            /// The payload as JSON text, as it is stored in the `data` column.
            pub fn data_json(&self) -> String {
                let r = match self { $( Event::$name(e) => serde_json::to_string(e), )* };
                // Payloads are plain structs of strings, numbers and enums: serialising
                // them cannot fail.
                r.unwrap_or_else(|_| "{}".to_string())
            }

            /// Decodes a payload that is already in the current shape (see
            /// [`crate::upcast::decode`] for stored rows, which may be older).
            pub fn decode_current(event_type: &str, data: &str) -> Result<Event, DomainError> {
                let err = |m: String| DomainError::UndecodableEvent {
                    event_type: event_type.to_string(),
                    schema_version: Event::current_version(event_type).unwrap_or(0),
                    message: m,
                };
                match event_type {
                    $( stringify!($name) => serde_json::from_str::<$name>(data)
                        .map(Event::$name)
                        .map_err(|e| err(e.to_string())), )*
                    _ => Err(err("unknown event type".into())),
                }
            }
        }

        $(
            impl From<$name> for Event {
                fn from(e: $name) -> Event { Event::$name(e) }
            }
        )*
    };
}

events! {
    /// A one-time setup token was issued because no user exists yet. The token itself is
    /// only in `<data>/setup-token` and, hashed, in the server's durable tables.
    SetupTokenIssued = 1,
    /// A user account was created (the first one by first-run setup).
    UserCreated = 1,
    /// A user logged in and a session was opened.
    UserLoggedIn = 1,
    /// A login attempt was refused.
    UserLoginFailed = 2,
    /// A session was closed by its user.
    UserLoggedOut = 1,
    /// A one-time enrolment token was minted.
    EnrollmentTokenIssued = 1,
    /// An agent enrolled with a token.
    HostEnrolled = 1,
    /// A host's agent connected.
    HostCameOnline = 1,
    /// A host's agent went away.
    HostWentOffline = 1,
    /// A host's repository credentials were set or replaced.
    RepoCredentialsChanged = 1,
    /// A host's agent stored a credentials version.
    RepoCredentialsApplied = 1,
    /// A host was deleted.
    HostDeleted = 1,
    /// A job was created.
    JobQueued = 1,
    /// A job was sent to its agent.
    JobDispatched = 1,
    /// restic started.
    JobStarted = 1,
    /// Progress (at a bounded rate).
    JobProgressed = 1,
    /// Log lines (in batches).
    JobLogged = 1,
    /// Someone asked to stop the job.
    JobCancelRequested = 1,
    /// A job ended.
    JobFinished = 1,
    /// A job's agent stayed away too long.
    JobLost = 1,
    /// A host's snapshot list and repository size.
    SnapshotsReported = 1,
    /// A source group was created or changed.
    SourceGroupSaved = 1,
    /// A source group was deleted.
    SourceGroupDeleted = 1,
    /// A schedule was created or changed.
    ScheduleSaved = 1,
    /// A schedule was deleted.
    ScheduleDeleted = 1,
    /// The agent armed a schedule version.
    ScheduleSetApplied = 1,
    /// Repository maintenance cadences changed.
    MaintenanceChanged = 1,
    /// Bandwidth caps changed.
    BandwidthChanged = 1,
    /// Hooks were set (the scripts are in the vault).
    HooksChanged = 1,
    /// The admin (forget/prune) credential was set or removed.
    AdminCredentialsChanged = 1,
    /// A run waits for its offline host.
    PendingRunQueued = 1,
    /// A pending run was sent as a job.
    PendingRunAttempted = 1,
    /// A pending run's attempt failed; it waits for its next.
    PendingRunRetryScheduled = 1,
    /// A pending run is done.
    PendingRunCompleted = 1,
    /// A pending run was given up.
    PendingRunDropped = 1,
    /// An alert was raised.
    AlertRaised = 1,
    /// An operator acknowledged an alert.
    AlertAcknowledged = 1,
    /// An alert was resolved.
    AlertResolved = 1,
    /// A notification channel was created or changed.
    ChannelSaved = 1,
    /// A notification channel was deleted.
    ChannelDeleted = 1,
    /// A notification will be sent.
    NotificationQueued = 1,
    /// One delivery attempt of a notification.
    NotificationAttempted = 1,
    /// A cross-host restore job was given a read credential for the source host's
    /// repository (the credential itself is in the vault, owned by the job).
    RestoreCredentialGranted = 1,
    /// That credential was destroyed.
    RestoreCredentialRevoked = 1,
}

impl Event {
    /// The stream an event belongs to. Users' events go to `user-<id>`; failed logins for
    /// unknown names, which have no user, go to `auth`; setup to `setup`.
    pub fn stream(&self) -> String {
        match self {
            Event::SetupTokenIssued(_) => "setup".to_string(),
            Event::UserCreated(x) => format!("user-{}", x.user_id),
            Event::UserLoggedIn(x) => format!("user-{}", x.user_id),
            Event::UserLoggedOut(x) => format!("user-{}", x.user_id),
            Event::UserLoginFailed(x) => match &x.user_id {
                Some(id) => format!("user-{id}"),
                None => "auth".to_string(),
            },
            Event::EnrollmentTokenIssued(x) => format!("enrollment-{}", x.token_id),
            Event::HostEnrolled(x) => format!("host-{}", x.host_id),
            Event::HostCameOnline(x) => format!("host-{}", x.host_id),
            Event::HostWentOffline(x) => format!("host-{}", x.host_id),
            Event::RepoCredentialsChanged(x) => format!("host-{}", x.host_id),
            Event::RepoCredentialsApplied(x) => format!("host-{}", x.host_id),
            Event::HostDeleted(x) => format!("host-{}", x.host_id),
            Event::JobQueued(x) => format!("job-{}", x.job_id),
            Event::JobDispatched(x) => format!("job-{}", x.job_id),
            Event::JobStarted(x) => format!("job-{}", x.job_id),
            Event::JobCancelRequested(x) => format!("job-{}", x.job_id),
            Event::JobProgressed(x) => format!("job-{}", x.job_id),
            Event::JobLogged(x) => format!("job-{}", x.job_id),
            Event::JobFinished(x) => format!("job-{}", x.job_id),
            Event::JobLost(x) => format!("job-{}", x.job_id),
            Event::SnapshotsReported(x) => format!("host-{}", x.host_id),
            Event::SourceGroupSaved(x) => format!("host-{}", x.host_id),
            Event::SourceGroupDeleted(x) => format!("host-{}", x.host_id),
            Event::ScheduleSaved(x) => format!("host-{}", x.host_id),
            Event::ScheduleDeleted(x) => format!("host-{}", x.host_id),
            Event::ScheduleSetApplied(x) => format!("host-{}", x.host_id),
            Event::MaintenanceChanged(x) => format!("host-{}", x.host_id),
            Event::BandwidthChanged(x) => format!("host-{}", x.host_id),
            Event::HooksChanged(x) => format!("host-{}", x.host_id),
            Event::AdminCredentialsChanged(x) => format!("host-{}", x.host_id),
            Event::PendingRunQueued(x) => format!("pending-{}", x.run_id),
            Event::PendingRunAttempted(x) => format!("pending-{}", x.run_id),
            Event::PendingRunRetryScheduled(x) => format!("pending-{}", x.run_id),
            Event::PendingRunCompleted(x) => format!("pending-{}", x.run_id),
            Event::PendingRunDropped(x) => format!("pending-{}", x.run_id),
            Event::AlertRaised(x) => format!("alert-{}", x.alert_id),
            Event::AlertAcknowledged(x) => format!("alert-{}", x.alert_id),
            Event::AlertResolved(x) => format!("alert-{}", x.alert_id),
            Event::ChannelSaved(x) => format!("channel-{}", x.channel_id),
            Event::ChannelDeleted(x) => format!("channel-{}", x.channel_id),
            Event::NotificationQueued(x) => format!("notification-{}", x.notification_id),
            Event::NotificationAttempted(x) => format!("notification-{}", x.notification_id),
            Event::RestoreCredentialGranted(x) => format!("job-{}", x.job_id),
            Event::RestoreCredentialRevoked(x) => format!("job-{}", x.job_id),
        }
    }
}

/// Payload of [`Event::SetupTokenIssued`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SetupTokenIssued {}

/// Payload of [`Event::UserCreated`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The new user's id.
    pub user_id: String,
    /// Login name, unique.
    pub username: String,
    /// What the user may do.
    pub role: Role,
    /// Vault row holding the password hash.
    pub password_ref: String,
    /// True for the admin created by first-run setup.
    #[serde(default)]
    pub via_setup: bool,
}

/// Payload of [`Event::UserLoggedIn`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedIn {
    /// Who.
    pub user_id: String,
    /// The public id of the new session (never the session token).
    pub session_id: String,
    /// The client's address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// Payload of [`Event::UserLoginFailed`] (schema 2; schema 1 had no `reason`, see
/// [`crate::upcast`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoginFailed {
    /// The name that was tried.
    pub username: String,
    /// The account it matched, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Why it was refused.
    pub reason: LoginFailure,
    /// The client's address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// Payload of [`Event::UserLoggedOut`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedOut {
    /// Who.
    pub user_id: String,
    /// The public id of the closed session.
    pub session_id: String,
}

/// Payload of [`Event::RestoreCredentialGranted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreCredentialGranted {
    /// The restore job the credential is for (and which owns its vault row).
    pub job_id: String,
    /// The host whose repository it opens.
    pub source_host_id: String,
    /// The host that runs the restore and receives the credential.
    pub target_host_id: String,
    /// The vault row holding it.
    pub credential_ref: String,
}

/// Payload of [`Event::RestoreCredentialRevoked`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreCredentialRevoked {
    /// The restore job.
    pub job_id: String,
    /// Why: `job_finished`, `job_lost`, `job_over_at_startup`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_its_stored_form() {
        let e = Event::from(UserLoginFailed {
            username: "alice".into(),
            user_id: None,
            reason: LoginFailure::UnknownUser,
            ip: Some("127.0.0.1".into()),
        });
        let data = e.data_json();
        assert_eq!(
            data,
            r#"{"username":"alice","reason":"unknown_user","ip":"127.0.0.1"}"#
        );
        assert_eq!(Event::decode_current(e.event_type(), &data).unwrap(), e);
    }

    #[test]
    fn unknown_type_is_an_error_not_a_panic() {
        assert!(Event::decode_current("NoSuchThing", "{}").is_err());
        assert!(Event::decode_current("UserCreated", "[1,2]").is_err());
    }
}
