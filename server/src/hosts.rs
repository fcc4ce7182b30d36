//! Host flows shared by the API and the agent socket: enrolment tokens, enrolment,
//! repository credentials, deletion.

use domain::hosts::{self, AgentFacts, HostCommand};
use domain::protocol::{ConfigUpdate, RepoCredentials};
use domain::{Actor, DomainError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::auth::{self, hash_token};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{AppendRequest, ExpectedVersion, Uow};
use crate::vault::Vault;

/// How long an enrolment token lives.
pub const TOKEN_TTL_SECS: i64 = 3600;

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn credentials_ref(host_id: &str) -> String {
    format!("repo-{host_id}")
}

/// Validated repository credentials from a form or API body.
pub struct CredentialsInput {
    /// URL.
    pub url: String,
    /// Backend user, if any.
    pub username: Option<String>,
    /// Password; `None` keeps the stored one (edits only).
    pub password: Option<String>,
}

impl CredentialsInput {
    /// Validates typed values.
    pub fn parse(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Self, DomainError> {
        let url = hosts::validate_repo_url(url)?;
        let username = username
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if username
            .as_ref()
            .is_some_and(|u| u.len() > 256 || u.chars().any(char::is_control))
        {
            return Err(DomainError::invalid(
                "repo_username",
                "must be one line of at most 256 characters",
            ));
        }
        let password = password.filter(|p| !p.is_empty()).map(str::to_string);
        if password.as_ref().is_some_and(|p| p.len() > 4096) {
            return Err(DomainError::invalid(
                "repo_password",
                "is too long (4096 characters at most)",
            ));
        }
        Ok(CredentialsInput {
            url,
            username,
            password,
        })
    }
}

pub(crate) fn seal(
    vault: &Vault,
    conn: &Connection,
    id: &str,
    owner: &str,
    creds: &RepoCredentials,
    now: &str,
) -> Result<(), AppError> {
    let json = serde_json::to_vec(creds).map_err(|e| AppError::Internal(e.to_string()))?;
    vault.put(conn, id, owner, "repo_credentials", &json, now)?;
    Ok(())
}

pub(crate) fn open(
    vault: &Vault,
    conn: &Connection,
    id: &str,
) -> Result<Option<RepoCredentials>, AppError> {
    match vault.get(conn, id)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AppError::Internal(format!("vault row {id}: {e}"))),
    }
}

/// A freshly minted token, shown once.
#[derive(Debug, Serialize)]
pub struct MintedToken {
    /// Public id of the token, to follow the enrolment (`GET /api/enrollment-tokens/{id}`).
    pub token_id: String,
    /// The token (only ever shown here).
    pub token: String,
    /// When it expires.
    pub expires_at: String,
    /// A copy-pasteable install line.
    pub install_command: String,
}

/// The install line for a token.
pub fn install_command(base_url: &str, token: &str) -> String {
    let base = base_url.trim_end_matches('/');
    format!("curl -fsSL '{base}/install/agent.sh?token={token}' | sudo sh")
}

/// Mints a single-use enrolment token carrying the host's repository credentials.
pub async fn mint_token(
    state: &AppState,
    user_id: &str,
    hostname: &str,
    creds: CredentialsInput,
    paths: Option<Vec<String>>,
) -> Result<MintedToken, AppError> {
    let hostname = hosts::validate_hostname(hostname)?;
    if let Some(p) = &paths {
        // The same rules as a source group's includes.
        let probe = domain::sources::SourceGroup::default_for_enrolment(String::new(), p.clone());
        probe.validate().map_err(|e| match e {
            DomainError::Invalid { message, .. } => DomainError::invalid("paths", message),
            e => e,
        })?;
    }
    let paths_json = paths.map(|p| serde_json::to_string(&p).unwrap_or_default());
    let Some(password) = creds.password else {
        return Err(DomainError::invalid("repo_password", "is required").into());
    };
    let repo = RepoCredentials {
        url: creds.url,
        username: creds.username,
        password,
    };
    let token = auth::new_token();
    let token_hash = hash_token(&token);
    let token_id = new_id();
    let tid = token_id.clone();
    let vault = state.vault.clone();
    let actor = Actor::User(user_id.to_string());
    let expires_at = state
        .store
        .write(move |uow| -> Result<String, AppError> {
            let now = uow.now();
            let expires_at = now.plus_seconds(TOKEN_TTL_SECS).to_string();
            uow.conn().execute(
                "INSERT INTO enrollment_tokens (token_hash, token_id, hostname, created_at, expires_at, default_paths)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![token_hash, token_id, hostname, now.to_string(), expires_at, paths_json],
            )?;
            seal(
                &vault,
                uow.conn(),
                &format!("enroll-{token_id}"),
                &format!("enrollment-{token_id}"),
                &repo,
                &now.to_string(),
            )?;
            uow.append(
                AppendRequest::new(
                    format!("enrollment-{token_id}"),
                    actor,
                    vec![hosts::EnrollmentTokenIssued {
                        token_id: token_id.clone(),
                        hostname,
                        expires_at: expires_at.clone(),
                    }
                    .into()],
                )
                .expecting(ExpectedVersion::NoStream),
            )?;
            Ok(expires_at)
        })
        .await?;
    let install_command = install_command(&state.base_url(), &token);
    Ok(MintedToken {
        token_id: tid,
        token,
        expires_at,
        install_command,
    })
}

/// token_id, hostname, expires_at, used_at, default_paths.
type TokenRow = (String, String, String, Option<String>, Option<String>);

/// Where an enrolment token stands.
#[derive(Debug, Serialize)]
pub struct TokenStatus {
    /// `pending`, `enrolled` or `expired`.
    pub status: &'static str,
    /// The host it created, once used.
    pub host_id: Option<String>,
    /// That host's connection state, once it exists.
    pub host_status: Option<String>,
}

/// `GET /api/enrollment-tokens/{id}`: lets the add-host page follow the agent's arrival.
pub async fn token_status(state: &AppState, token_id: &str) -> Result<TokenStatus, AppError> {
    let id = token_id.to_string();
    let now = state.clock.now().to_string();
    state
        .store
        .read(move |c| -> Result<_, AppError> {
            let row: Option<(String, Option<String>)> = c
                .query_row(
                    "SELECT expires_at, host_id FROM enrollment_tokens WHERE token_id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((expires_at, host_id)) = row else {
                return Err(AppError::NotFound(format!("no enrolment token {id}")));
            };
            let host_status = match &host_id {
                Some(h) => projections::hosts::get(c, h)?.map(|h| h.status),
                None => None,
            };
            let status = match (&host_id, expires_at <= now) {
                (Some(_), _) => "enrolled",
                (None, true) => "expired",
                (None, false) => "pending",
            };
            Ok(TokenStatus {
                status,
                host_id,
                host_status,
            })
        })
        .await
}

/// What an enrolling agent gets back.
#[derive(Debug, Serialize)]
pub struct Enrolled {
    /// Its host id.
    pub host_id: String,
    /// Its persistent bearer (only ever shown here).
    pub bearer: String,
    /// SHA-256 of the server's TLS leaf certificate, hex, when the server terminates TLS.
    pub cert_pin: String,
}

/// Consumes a token (atomically: a second use fails) and creates the host, its bearer and its
/// credentials.
pub async fn enroll(
    state: &AppState,
    token: &str,
    facts: AgentFacts,
) -> Result<Enrolled, AppError> {
    let token_hash = hash_token(token.trim());
    let host_id = new_id();
    let bearer = auth::new_token();
    let bearer_hash = hash_token(&bearer);
    let vault = state.vault.clone();
    let hid = host_id.clone();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let now = uow.now();
            let row: Option<TokenRow> = uow
                .conn()
                .query_row(
                    "SELECT token_id, hostname, expires_at, used_at, default_paths FROM enrollment_tokens WHERE token_hash = ?1",
                    [&token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            let Some((token_id, hostname, expires_at, used_at, default_paths)) = row else {
                return Err(AppError::Unauthorized("unknown enrolment token"));
            };
            if used_at.is_some() {
                return Err(AppError::Unauthorized("this enrolment token has already been used"));
            }
            if expires_at <= now.to_string() {
                return Err(AppError::Unauthorized("this enrolment token has expired; mint a new one"));
            }
            let consumed = uow.conn().execute(
                "UPDATE enrollment_tokens SET used_at = ?2, host_id = ?3 WHERE token_hash = ?1 AND used_at IS NULL",
                params![token_hash, now.to_string(), hid],
            )?;
            if consumed != 1 {
                return Err(AppError::Unauthorized("this enrolment token has already been used"));
            }
            let creds = open(&vault, uow.conn(), &format!("enroll-{token_id}"))?
                .ok_or_else(|| AppError::Internal("enrolment credentials missing from the vault".into()))?;
            seal(&vault, uow.conn(), &credentials_ref(&hid), &format!("host-{hid}"), &creds, &now.to_string())?;
            vault.shred_owner(uow.conn(), &format!("enrollment-{token_id}"))?;
            uow.conn().execute(
                "INSERT INTO agent_bearers (token_hash, host_id, created_at) VALUES (?1, ?2, ?3)",
                params![bearer_hash, hid, now.to_string()],
            )?;
            let state = projections::hosts::load_state(uow.conn(), &hid)?;
            let mut facts = facts;
            facts.hostname = hostname;
            let events = hosts::decide(
                &state,
                &HostCommand::Enroll {
                    host_id: hid.clone(),
                    token_id,
                    credentials_ref: credentials_ref(&hid),
                    facts,
                },
            )?;
            uow.append(
                AppendRequest::new(format!("host-{hid}"), Actor::Agent(hid.clone()), events)
                    .expecting(ExpectedVersion::NoStream),
            )?;
            let paths = default_paths.and_then(|p| serde_json::from_str::<Vec<String>>(&p).ok());
            crate::sources::seed_default_group(uow, &hid, paths)?;
            Ok(())
        })
        .await?;
    Ok(Enrolled {
        host_id,
        bearer,
        cert_pin: state.tls_pin.clone().unwrap_or_default(),
    })
}

/// Why an agent's bearer was refused.
#[derive(Debug)]
pub enum BearerRefusal {
    /// Not a bearer we issued.
    Unknown,
    /// The host was deleted.
    Revoked,
}

/// The host of a bearer.
pub fn host_of_bearer(
    conn: &Connection,
    bearer: &str,
) -> Result<Result<String, BearerRefusal>, AppError> {
    let row: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT host_id, revoked_at FROM agent_bearers WHERE token_hash = ?1")?
        .query_row([hash_token(bearer)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Err(BearerRefusal::Unknown),
        Some((_, Some(_))) => Err(BearerRefusal::Revoked),
        Some((host, None)) => Ok(host),
    })
}

/// The redacted view of a host's credentials.
#[derive(Debug, Serialize)]
pub struct RedactedCredentials {
    /// URL.
    pub repo_url: String,
    /// Backend user.
    pub repo_username: Option<String>,
    /// Whether a password is stored.
    pub has_password: bool,
}

fn require_host(conn: &Connection, host_id: &str) -> Result<projections::hosts::Host, AppError> {
    projections::hosts::get(conn, host_id)?
        .ok_or_else(|| AppError::NotFound(format!("no host {host_id}")))
}

/// `GET /api/hosts/{id}/repo-credentials`.
pub async fn redacted_credentials(
    state: &AppState,
    host_id: &str,
) -> Result<RedactedCredentials, AppError> {
    let vault = state.vault.clone();
    let id = host_id.to_string();
    state
        .store
        .read(move |c| -> Result<_, AppError> {
            require_host(c, &id)?;
            let creds = open(&vault, c, &credentials_ref(&id))?.ok_or_else(|| {
                AppError::NotFound("this host has no repository credentials".into())
            })?;
            Ok(RedactedCredentials {
                repo_url: creds.url,
                repo_username: creds.username,
                has_password: !creds.password.is_empty(),
            })
        })
        .await
}

/// The `config.update` for a host, from the vault.
pub fn config_update(
    vault: &Vault,
    conn: &Connection,
    host_id: &str,
) -> Result<Option<ConfigUpdate>, AppError> {
    let Some(host) = projections::hosts::get(conn, host_id)? else {
        return Ok(None);
    };
    Ok(
        open(vault, conn, &credentials_ref(host_id))?.map(|repo| ConfigUpdate {
            version: host.credentials_version as u64,
            repo,
        }),
    )
}

/// `PUT /api/hosts/{id}/repo-credentials`: replaces the credentials (keeping the password
/// when none is given) and pushes them to the agent if it is connected.
pub async fn change_credentials(
    state: &AppState,
    user_id: &str,
    host_id: &str,
    input: CredentialsInput,
) -> Result<RedactedCredentials, AppError> {
    let vault = state.vault.clone();
    let id = host_id.to_string();
    let actor = Actor::User(user_id.to_string());
    let update = state
        .store
        .write(move |uow: &mut Uow<'_>| -> Result<ConfigUpdate, AppError> {
            require_host(uow.conn(), &id)?;
            let old = open(&vault, uow.conn(), &credentials_ref(&id))?;
            let password = match (input.password, old) {
                (Some(p), _) => p,
                (None, Some(old)) => old.password,
                (None, None) => {
                    return Err(DomainError::invalid("repo_password", "is required").into())
                }
            };
            let repo = RepoCredentials {
                url: input.url,
                username: input.username,
                password,
            };
            let now = uow.now().to_string();
            seal(
                &vault,
                uow.conn(),
                &credentials_ref(&id),
                &format!("host-{id}"),
                &repo,
                &now,
            )?;
            let state = projections::hosts::load_state(uow.conn(), &id)?;
            let events = hosts::decide(
                &state,
                &HostCommand::ChangeCredentials {
                    host_id: id.clone(),
                    credentials_ref: credentials_ref(&id),
                },
            )?;
            uow.append(AppendRequest::new(format!("host-{id}"), actor, events))?;
            let version = projections::hosts::load_state(uow.conn(), &id)?
                .hosts
                .get(&id)
                .map(|h| h.credentials_version)
                .unwrap_or(0);
            Ok(ConfigUpdate { version, repo })
        })
        .await?;
    let view = RedactedCredentials {
        repo_url: update.repo.url.clone(),
        repo_username: update.repo.username.clone(),
        has_password: true,
    };
    state.agents.push_config(host_id, &update);
    Ok(view)
}

/// `DELETE /api/hosts/{id}`: revokes the bearer, destroys the host's secrets, hides the host.
/// Its history stays in the log.
pub async fn delete_host(state: &AppState, user_id: &str, host_id: &str) -> Result<(), AppError> {
    let vault = state.vault.clone();
    let id = host_id.to_string();
    let actor = Actor::User(user_id.to_string());
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let state = projections::hosts::load_state(uow.conn(), &id)?;
            if !state.hosts.contains_key(&id) {
                return Err(AppError::NotFound(format!("no host {id}")));
            }
            let events = hosts::decide(&state, &HostCommand::Delete { host_id: id.clone() })?;
            uow.append(AppendRequest::new(format!("host-{id}"), actor, events))?;
            uow.conn().execute(
                "UPDATE agent_bearers SET revoked_at = ?2 WHERE host_id = ?1 AND revoked_at IS NULL",
                params![id, uow.now().to_string()],
            )?;
            vault.shred_owner(uow.conn(), &format!("host-{id}"))?;
            Ok(())
        })
        .await?;
    state.agents.disconnect(
        host_id,
        "host_deleted",
        "this host was deleted from restic-manager",
    );
    Ok(())
}
