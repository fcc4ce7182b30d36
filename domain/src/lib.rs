//! The pure core of restic-manager.
//!
//! Everything here is deterministic: no IO, no clock, no randomness, no async runtime.
//! Ids and timestamps are handed in by the edges (the server and the agent), which is
//! what lets a recorded history be replayed into exactly the same state.
//!
//! - [`event`]: every fact the system records, with its wire name and schema version.
//! - [`envelope`]: an event as stored in the log (sequence, stream, actor, hash chain).
//! - [`upcast`]: turns old event shapes into current ones on read.
//! - [`users`]: the users/auth aggregate — state, commands and decisions.
//! - [`validation`]: newtypes that hold only valid values.

pub mod actor;
pub mod alerts;
pub mod envelope;
pub mod error;
pub mod event;
pub mod hosts;
pub mod jobs;
pub mod protocol;
pub mod retention;
pub mod sources;
pub mod timestamp;
pub mod upcast;
pub mod users;
pub mod validation;

pub use actor::Actor;
pub use envelope::RecordedEvent;
pub use error::DomainError;
pub use event::Event;
pub use timestamp::Timestamp;
