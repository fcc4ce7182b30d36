//! Errors of the event store.

use super::ExpectedVersion;

/// What can go wrong appending to or reading from the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream was not at the expected version.
    #[error("stream {stream} is at version {actual}, expected {expected:?}")]
    Conflict {
        /// The stream.
        stream: String,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// What it is (0 when the stream does not exist).
        actual: i64,
    },
    /// An append reused event ids of a different, earlier append.
    #[error("event id {0} was already used by another append")]
    DuplicateEventId(String),
    /// The writer has stopped (the server is shutting down).
    #[error("the event store is closed")]
    Closed,
    /// SQLite refused.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Schema migration failed.
    #[error("migration: {0}")]
    Migration(String),
    /// A projection could not apply an event.
    #[error("projection: {0}")]
    Projection(#[from] projections::ProjectionError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
    /// Reading or writing a file (import/export).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A line of an import file is not a stored event.
    #[error("line {line}: {message}")]
    BadImport {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}
