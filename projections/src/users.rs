//! The users read model: one row per account with its login statistics.

use domain::users::{Role, UserState, UsersState};
use domain::{Event, RecordedEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::Projection;

/// Folds user events into the `users` table.
pub struct UsersProjection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL,
    role                 TEXT NOT NULL,
    password_ref         TEXT NOT NULL,
    via_setup            INTEGER NOT NULL,
    created_at           TEXT NOT NULL,
    last_login_at        TEXT,
    login_count          INTEGER NOT NULL DEFAULT 0,
    last_failed_login_at TEXT,
    failed_login_count   INTEGER NOT NULL DEFAULT 0,
    last_logout_at       TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_username ON users(username);
";

impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        "users"
    }
    fn version(&self) -> u32 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["users"]
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }

    fn apply(&self, conn: &Connection, ev: &RecordedEvent, event: &Event) -> rusqlite::Result<()> {
        let at = ev.occurred_at.as_str();
        match event {
            Event::UserCreated(e) => {
                conn.prepare_cached(
                    "INSERT INTO users (id, username, role, password_ref, via_setup, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    e.user_id,
                    e.username,
                    e.role.as_str(),
                    e.password_ref,
                    e.via_setup,
                    at
                ])?;
            }
            Event::UserLoggedIn(e) => {
                conn.prepare_cached(
                    "UPDATE users SET last_login_at = ?2, login_count = login_count + 1 WHERE id = ?1",
                )?
                .execute(params![e.user_id, at])?;
            }
            Event::UserLoginFailed(e) => {
                if let Some(id) = &e.user_id {
                    conn.prepare_cached(
                        "UPDATE users SET last_failed_login_at = ?2,
                         failed_login_count = failed_login_count + 1 WHERE id = ?1",
                    )?
                    .execute(params![id, at])?;
                }
            }
            Event::UserLoggedOut(e) => {
                conn.prepare_cached("UPDATE users SET last_logout_at = ?2 WHERE id = ?1")?
                    .execute(params![e.user_id, at])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// When created.
    pub created_at: String,
    /// Last successful login.
    pub last_login_at: Option<String>,
}

/// A user with the reference to their password hash, for logging in.
#[derive(Debug, Clone)]
pub struct UserWithSecret {
    /// The public part.
    pub user: User,
    /// Vault row of the password hash.
    pub password_ref: String,
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        role: r.get(2)?,
        created_at: r.get(3)?,
        last_login_at: r.get(4)?,
    })
}

const USER_COLS: &str = "id, username, role, created_at, last_login_at";

/// Whether any user exists (first-run setup done).
pub fn any_user(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS(SELECT 1 FROM users)", [], |r| r.get(0))
}

/// One user by id.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
        .query_row([id], user_from_row)
        .optional()
}

/// One user by login name, with the password reference.
pub fn find_by_username(conn: &Connection, name: &str) -> rusqlite::Result<Option<UserWithSecret>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLS}, password_ref FROM users WHERE username = ?1"
    ))?
    .query_row([name], |r| {
        Ok(UserWithSecret {
            user: user_from_row(r)?,
            password_ref: r.get(5)?,
        })
    })
    .optional()
}

/// All users by name.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
    let rows = stmt.query_map([], user_from_row)?;
    rows.collect()
}

/// The state the users decisions need, read from the model. Equal to folding the log
/// with [`UsersState::evolve`] (the replay tests hold both to that).
pub fn load_state(conn: &Connection) -> rusqlite::Result<UsersState> {
    let mut stmt = conn.prepare_cached("SELECT id, username, role, password_ref FROM users")?;
    let rows = stmt.query_map([], |r| {
        let role: String = r.get(2)?;
        Ok((
            r.get::<_, String>(0)?,
            UserState {
                username: r.get(1)?,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                password_ref: r.get(3)?,
            },
        ))
    })?;
    let mut state = UsersState::default();
    for row in rows {
        let (id, u) = row?;
        state.users.insert(id, u);
    }
    Ok(state)
}
