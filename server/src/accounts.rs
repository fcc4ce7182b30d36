//! The users/auth flows shared by the JSON API and the HTML forms: first-run setup, login,
//! logout and creating accounts. Each flow checks what needs slow or secret work at the
//! edge (argon2, the vault), then runs the domain decision inside the writer's transaction,
//! so the state it decides on cannot change underneath it.

use domain::users::{self, UserCommand};
use domain::validation::{Password, Username};
use domain::{Actor, DomainError, Event};
use projections::users::User;
use rusqlite::params;

use crate::auth::{self, ct_eq, hash_token};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{AppendRequest, ExpectedVersion};

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn password_ref(user_id: &str) -> String {
    format!("password-{user_id}")
}

async fn hash_blocking(password: Password) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || auth::hash_password(password.expose()))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)
}

/// A session just opened.
pub struct Opened {
    /// Who.
    pub user: User,
    /// The token for the cookie (never stored).
    pub token: String,
}

/// First-run setup: checks the token, creates the admin, opens their session.
pub async fn bootstrap(
    state: &AppState,
    token: &str,
    username: &str,
    password: &str,
    ip: Option<String>,
) -> Result<Opened, AppError> {
    let token_hash = hash_token(token.trim());
    let th = token_hash.clone();
    let (set_up, token_ok) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            let set_up = projections::users::any_user(c)?;
            let mut stmt = c.prepare("SELECT token_hash FROM setup_tokens")?;
            let hashes: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok((set_up, hashes.iter().any(|h| ct_eq(h, &th))))
        })
        .await?;
    if set_up {
        return Err(DomainError::AlreadyBootstrapped.into());
    }
    if !token_ok {
        return Err(AppError::Unauthorized(
            "the setup token is wrong or has already been used",
        ));
    }
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    let hash = hash_blocking(password).await?;

    let user_id = new_id();
    let session_id = new_id();
    let session_token = auth::new_token();
    let vault = state.vault.clone();
    let st = session_token.clone();
    let user = state
        .store
        .write(move |uow| -> Result<User, AppError> {
            let now = uow.now();
            let users_state = projections::users::load_state(uow.conn())?;
            let cmd = UserCommand::CompleteSetup {
                user_id: user_id.clone(),
                username,
                password_ref: password_ref(&user_id),
                session_id: session_id.clone(),
                ip,
            };
            let events = users::decide(&users_state, &cmd)?;
            let consumed = uow.conn().execute(
                "DELETE FROM setup_tokens WHERE token_hash = ?1",
                [&token_hash],
            )?;
            if consumed != 1 {
                return Err(AppError::Unauthorized(
                    "the setup token is wrong or has already been used",
                ));
            }
            vault.put(
                uow.conn(),
                &password_ref(&user_id),
                &format!("user-{user_id}"),
                "password_hash",
                hash.as_bytes(),
                &now.to_string(),
            )?;
            uow.append(
                AppendRequest::new(
                    format!("user-{user_id}"),
                    Actor::User(user_id.clone()),
                    events,
                )
                .expecting(ExpectedVersion::NoStream),
            )?;
            auth::insert_session(uow.conn(), &st, &session_id, &user_id, now)?;
            projections::users::get(uow.conn(), &user_id)?
                .ok_or_else(|| AppError::Internal("user missing after setup".into()))
        })
        .await?;
    let _ = std::fs::remove_file(state.config.setup_token_path());
    tracing::info!(username = %user.username, "first-run setup completed");
    Ok(Opened {
        user,
        token: session_token,
    })
}

/// Checks a login. Every attempt, good or bad, is an event.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    ip: std::net::IpAddr,
) -> Result<Opened, AppError> {
    let username: String = username.trim().chars().take(128).collect();
    if let Err(retry_after) = state.limiter.check(ip, &username) {
        return Err(AppError::RateLimited { retry_after });
    }
    let vault = state.vault.clone();
    let name = username.clone();
    let hash = state
        .store
        .read(move |c| -> Result<_, AppError> {
            let Some(u) = projections::users::find_by_username(c, &name)? else {
                return Ok(None);
            };
            Ok(vault
                .get(c, &u.password_ref)?
                .map(|h| String::from_utf8_lossy(&h).into_owned()))
        })
        .await?;
    let password = password.to_string();
    let password_ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => auth::verify_password(&password, &h),
        None => {
            // Same work as for a real account, so timing does not tell names apart.
            let _ = auth::verify_password(&password, auth::dummy_hash());
            false
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;

    let session_id = new_id();
    let token = auth::new_token();
    let t = token.clone();
    let ip_text = Some(ip.to_string());
    let outcome = state
        .store
        .write(move |uow| -> Result<Option<User>, AppError> {
            let users_state = projections::users::load_state(uow.conn())?;
            let cmd = UserCommand::RecordLogin {
                username,
                password_ok,
                session_id: session_id.clone(),
                ip: ip_text,
            };
            let events = users::decide(&users_state, &cmd)?;
            let mut opened = None;
            for e in &events {
                if let Event::UserLoggedIn(li) = e {
                    opened = Some(li.user_id.clone());
                }
            }
            let stream = events.first().map(Event::stream).unwrap_or_default();
            let actor = match &opened {
                Some(id) => Actor::User(id.clone()),
                None => Actor::System("login".into()),
            };
            uow.append(AppendRequest::new(stream, actor, events))?;
            match opened {
                Some(user_id) => {
                    // Expired sessions are useless; sweep them while we are writing anyway.
                    uow.conn().execute(
                        "DELETE FROM sessions WHERE expires_at <= ?1",
                        [uow.now().to_string()],
                    )?;
                    auth::insert_session(uow.conn(), &t, &session_id, &user_id, uow.now())?;
                    Ok(projections::users::get(uow.conn(), &user_id)?)
                }
                None => Ok(None),
            }
        })
        .await?;
    match outcome {
        Some(user) => Ok(Opened { user, token }),
        None => Err(AppError::Unauthorized("wrong username or password")),
    }
}

/// Closes the session.
pub async fn logout(state: &AppState, session: &auth::SessionUser) -> Result<(), AppError> {
    let (user_id, session_id, token_hash) = (
        session.user_id.clone(),
        session.session_id.clone(),
        session.token_hash.clone(),
    );
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let users_state = projections::users::load_state(uow.conn())?;
            let events = users::decide(
                &users_state,
                &UserCommand::Logout {
                    user_id: user_id.clone(),
                    session_id,
                },
            )?;
            uow.conn().execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                params![token_hash],
            )?;
            uow.append(AppendRequest::new(
                format!("user-{user_id}"),
                Actor::User(user_id),
                events,
            ))?;
            Ok(())
        })
        .await
}

/// An admin creates an account.
pub async fn create_user(
    state: &AppState,
    admin_id: &str,
    username: &str,
    password: &str,
    role: &str,
) -> Result<User, AppError> {
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    let role = users::Role::parse(role)?;
    let hash = hash_blocking(password).await?;
    let user_id = new_id();
    let admin = admin_id.to_string();
    let vault = state.vault.clone();
    state
        .store
        .write(move |uow| -> Result<User, AppError> {
            let users_state = projections::users::load_state(uow.conn())?;
            let events = users::decide(
                &users_state,
                &UserCommand::CreateUser {
                    user_id: user_id.clone(),
                    username,
                    role,
                    password_ref: password_ref(&user_id),
                },
            )?;
            vault.put(
                uow.conn(),
                &password_ref(&user_id),
                &format!("user-{user_id}"),
                "password_hash",
                hash.as_bytes(),
                &uow.now().to_string(),
            )?;
            uow.append(
                AppendRequest::new(format!("user-{user_id}"), Actor::User(admin), events)
                    .expecting(ExpectedVersion::NoStream),
            )?;
            projections::users::get(uow.conn(), &user_id)?
                .ok_or_else(|| AppError::Internal("user missing after create".into()))
        })
        .await
}

/// At start-up with no users: issues a fresh setup token, keeps its hash, writes it to
/// `<data>/setup-token` (0600) and logs it. Returns the token, or `None` once set up.
pub async fn issue_setup_token_if_needed(state: &AppState) -> Result<Option<String>, AppError> {
    let set_up = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::users::any_user(c)?) })
        .await?;
    if set_up {
        let _ = std::fs::remove_file(state.config.setup_token_path());
        return Ok(None);
    }
    let token = auth::new_token();
    let hash = hash_token(&token);
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let now = uow.now().to_string();
            uow.conn().execute("DELETE FROM setup_tokens", [])?;
            uow.conn().execute(
                "INSERT INTO setup_tokens (token_hash, created_at) VALUES (?1, ?2)",
                params![hash, now],
            )?;
            uow.append(AppendRequest::new(
                "setup",
                Actor::System("setup".into()),
                vec![domain::event::SetupTokenIssued {}.into()],
            ))?;
            Ok(())
        })
        .await?;
    crate::vault::write_private(
        &state.config.setup_token_path(),
        format!("{token}\n").as_bytes(),
    )
    .map_err(|e| AppError::Internal(format!("writing the setup token file: {e}")))?;
    tracing::warn!(
        setup_token = %token,
        file = %state.config.setup_token_path().display(),
        "no users yet: open /login and complete first-run setup with this one-time token"
    );
    Ok(Some(token))
}
