//! The one error type of the domain crate.
//!
//! Variants name what went wrong in the product's language; the server decides which
//! HTTP status each one becomes (in one exhaustive match), the domain knows nothing of HTTP.

/// A decision or validation refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A value typed by a user did not pass validation.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (or query parameter) at fault.
        field: &'static str,
        /// What is wrong with it, in words a user understands.
        message: String,
    },
    /// First-run setup was already completed.
    #[error("setup has already been completed")]
    AlreadyBootstrapped,
    /// Setup is still pending, so there is nobody to log in as.
    #[error("setup has not been completed yet")]
    NotBootstrapped,
    /// A username is taken.
    #[error("the username {0:?} is already taken")]
    UsernameTaken(String),
    /// No such user.
    #[error("no such user")]
    UnknownUser,
    /// No such host.
    #[error("no such host")]
    UnknownHost,
    /// The host is not connected.
    #[error("the host is offline: its agent is not connected, so the job cannot start now")]
    HostOffline,
    /// No such job.
    #[error("no such job")]
    UnknownJob,
    /// The job is over.
    #[error("the job has already finished")]
    JobAlreadyFinished,
    /// The host was deleted.
    #[error("this host was deleted; enrol it again to use it")]
    HostDeleted,
    /// No such source group on this host.
    #[error("no such source group on this host")]
    UnknownSourceGroup,
    /// No such schedule on this host.
    #[error("no such schedule on this host")]
    UnknownSchedule,
    /// A group that schedules use cannot be deleted.
    #[error("this group is used by {} schedule(s); remove it from them first", .0.len())]
    GroupInUse(Vec<String>),
    /// A host keeps at least one group.
    #[error("a host needs at least one source group; this is its last")]
    LastSourceGroup,
    /// No such alert.
    #[error("no such alert")]
    UnknownAlert,
    /// No such notification channel.
    #[error("no such notification channel")]
    UnknownChannel,
    /// An event could not be decoded from its stored form.
    #[error("event {event_type} v{schema_version} could not be decoded: {message}")]
    UndecodableEvent {
        /// The stored `type` column.
        event_type: String,
        /// The stored `schema_version` column.
        schema_version: u32,
        /// The decoder's complaint.
        message: String,
    },
}

impl DomainError {
    /// Shorthand for [`DomainError::Invalid`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        DomainError::Invalid {
            field,
            message: message.into(),
        }
    }
}
