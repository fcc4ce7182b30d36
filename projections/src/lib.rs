//! Read models of restic-manager.
//!
//! A projection is a pure fold over the event log into SQL tables: it never reads the
//! clock, the network or the vault, only the events it is given (time comes from
//! `occurred_at`). That is what makes a rebuild byte-identical to the live tables, and what
//! lets the server show the fleet as it was at any past moment.
//!
//! The server applies every projection *inline*, in the same transaction that appends the
//! events, so a read model is never behind or ahead of the log. Each projection has a name
//! and a version; bumping the version makes the server rebuild that projection from seq 0
//! (into shadow tables, swapped in one transaction), so projection tables need no
//! migrations of their own.

use domain::{Event, RecordedEvent};
use rusqlite::Connection;

pub mod alerts;
pub mod config;
pub mod dump;
pub mod history;
pub mod hosts;
pub mod jobs;
pub mod users;

/// Errors of the projections crate.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// SQLite refused.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Domain(#[from] domain::DomainError),
}

/// Shorthand result.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

/// One read model.
pub trait Projection: Send + Sync {
    /// Stable name, the key in `projection_versions`.
    fn name(&self) -> &'static str;
    /// Bump to rebuild from seq 0 on next start.
    fn version(&self) -> u32;
    /// The tables it owns (dropped and recreated on rebuild).
    fn tables(&self) -> &'static [&'static str];
    /// `CREATE TABLE IF NOT EXISTS …` and indexes, unqualified names.
    fn schema(&self) -> &'static str;
    /// Folds one event in. Must only depend on `ev`, `event` and the tables it owns.
    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()>;
}

/// Every projection, in apply order.
pub fn registry() -> &'static [&'static dyn Projection] {
    &[
        &users::UsersProjection,
        &hosts::HostsProjection,
        &jobs::JobsProjection,
        &jobs::SnapshotsProjection,
        &config::ConfigProjection,
        &alerts::AlertsProjection,
        &history::HistoryProjection,
    ]
}

/// Creates every projection's tables where missing.
pub fn create_all(conn: &Connection) -> Result<()> {
    for p in registry() {
        conn.execute_batch(p.schema())?;
    }
    Ok(())
}

/// Decodes (upcasting old shapes) and applies one event to the given projections.
pub fn apply(
    conn: &Connection,
    projections: &[&'static dyn Projection],
    ev: &RecordedEvent,
) -> Result<()> {
    let event = ev.decode()?;
    apply_decoded(conn, projections, ev, &event)
}

/// Applies an already decoded event.
pub fn apply_decoded(
    conn: &Connection,
    projections: &[&'static dyn Projection],
    ev: &RecordedEvent,
    event: &Event,
) -> Result<()> {
    for p in projections {
        p.apply(conn, ev, event)?;
    }
    Ok(())
}

/// Every table owned by a projection, in registry order.
pub fn all_tables() -> Vec<&'static str> {
    registry()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect()
}
