//! Numbered migrations from `migrations/`, embedded in the binary, each applied in a
//! transaction (rusqlite_migration keeps the version in `PRAGMA user_version`).

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

use super::StoreError;

const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/0001_event_log.sql")),
    M::up(include_str!("../../../migrations/0002_agents.sql")),
    M::up(include_str!("../../../migrations/0003_sources.sql")),
    M::up(include_str!("../../../migrations/0004_consumers.sql")),
    M::up(include_str!(
        "../../../migrations/0005_drop_actor_index.sql"
    )),
];

/// Brings the schema up to date.
pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    Migrations::from_slice(MIGRATIONS)
        .to_latest(conn)
        .map_err(|e| StoreError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(Migrations::from_slice(MIGRATIONS).validate().is_ok());
    }
}
