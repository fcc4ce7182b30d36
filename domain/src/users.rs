//! Users and authentication: the state a decision needs, the commands, and the decisions.
//!
//! Password checking is not here: argon2 is slow on purpose and the hash lives in the vault,
//! so the server verifies the password first and hands the outcome in as a fact
//! ([`UserCommand::RecordLogin::password_ok`]). What *is* here is every rule about what
//! that outcome means and which events it produces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::event::{Event, UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed};
use crate::validation::Username;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and secrets.
    Admin,
    /// Runs the fleet: hosts, jobs, schedules.
    Operator,
    /// Reads only.
    Viewer,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored or typed role name.
    pub fn parse(s: &str) -> Result<Role, DomainError> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            _ => Err(DomainError::invalid(
                "role",
                "must be one of admin, operator, viewer",
            )),
        }
    }
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    /// No account has that name.
    UnknownUser,
    /// The password did not match.
    BadPassword,
}

/// One user as decisions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Vault row of the password hash.
    pub password_ref: String,
}

/// Everything the users decisions need, folded from events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsersState {
    /// Users by id.
    pub users: BTreeMap<String, UserState>,
}

impl UsersState {
    /// Folds a history.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut s = UsersState::default();
        for e in events {
            s.evolve(e);
        }
        s
    }

    /// Applies one event.
    pub fn evolve(&mut self, e: &Event) {
        if let Event::UserCreated(c) = e {
            self.users.insert(
                c.user_id.clone(),
                UserState {
                    username: c.username.clone(),
                    role: c.role,
                    password_ref: c.password_ref.clone(),
                },
            );
        }
    }

    /// Whether first-run setup has happened (any user exists).
    pub fn is_set_up(&self) -> bool {
        !self.users.is_empty()
    }

    /// Finds a user by login name.
    pub fn by_username(&self, name: &str) -> Option<(&String, &UserState)> {
        self.users.iter().find(|(_, u)| u.username == name)
    }
}

/// What can be asked of the users aggregate. Ids, refs and session ids are made by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// First-run setup: create the admin and log them in. The setup token has been checked.
    CompleteSetup {
        /// New user id.
        user_id: String,
        /// Admin's login name.
        username: Username,
        /// Vault row already holding the password hash.
        password_ref: String,
        /// Session opened for the admin.
        session_id: String,
        /// Client address.
        ip: Option<String>,
    },
    /// An admin creates another account.
    CreateUser {
        /// New user id.
        user_id: String,
        /// Login name.
        username: Username,
        /// Role.
        role: Role,
        /// Vault row already holding the password hash.
        password_ref: String,
    },
    /// Someone tried to log in; the server has checked the password.
    RecordLogin {
        /// The name as typed.
        username: String,
        /// Whether the password matched the named user's hash.
        password_ok: bool,
        /// Session to open on success.
        session_id: String,
        /// Client address.
        ip: Option<String>,
    },
    /// A user closes a session.
    Logout {
        /// Who.
        user_id: String,
        /// Which session.
        session_id: String,
    },
}

/// Decides what a command means given the current state.
pub fn decide(state: &UsersState, cmd: &UserCommand) -> Result<Vec<Event>, DomainError> {
    match cmd {
        UserCommand::CompleteSetup {
            user_id,
            username,
            password_ref,
            session_id,
            ip,
        } => {
            if state.is_set_up() {
                return Err(DomainError::AlreadyBootstrapped);
            }
            Ok(vec![
                UserCreated {
                    user_id: user_id.clone(),
                    username: username.as_str().to_string(),
                    role: Role::Admin,
                    password_ref: password_ref.clone(),
                    via_setup: true,
                }
                .into(),
                UserLoggedIn {
                    user_id: user_id.clone(),
                    session_id: session_id.clone(),
                    ip: ip.clone(),
                }
                .into(),
            ])
        }
        UserCommand::CreateUser {
            user_id,
            username,
            role,
            password_ref,
        } => {
            if !state.is_set_up() {
                return Err(DomainError::NotBootstrapped);
            }
            if state.by_username(username.as_str()).is_some() {
                return Err(DomainError::UsernameTaken(username.as_str().to_string()));
            }
            Ok(vec![UserCreated {
                user_id: user_id.clone(),
                username: username.as_str().to_string(),
                role: *role,
                password_ref: password_ref.clone(),
                via_setup: false,
            }
            .into()])
        }
        UserCommand::RecordLogin {
            username,
            password_ok,
            session_id,
            ip,
        } => Ok(vec![match state.by_username(username) {
            None => UserLoginFailed {
                username: username.clone(),
                user_id: None,
                reason: LoginFailure::UnknownUser,
                ip: ip.clone(),
            }
            .into(),
            Some((id, _)) if !password_ok => UserLoginFailed {
                username: username.clone(),
                user_id: Some(id.clone()),
                reason: LoginFailure::BadPassword,
                ip: ip.clone(),
            }
            .into(),
            Some((id, _)) => UserLoggedIn {
                user_id: id.clone(),
                session_id: session_id.clone(),
                ip: ip.clone(),
            }
            .into(),
        }]),
        UserCommand::Logout {
            user_id,
            session_id,
        } => {
            if !state.users.contains_key(user_id) {
                return Err(DomainError::UnknownUser);
            }
            Ok(vec![UserLoggedOut {
                user_id: user_id.clone(),
                session_id: session_id.clone(),
            }
            .into()])
        }
    }
}
