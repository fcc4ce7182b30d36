//! Passwords, tokens, sessions, CSRF and login rate limits.
//!
//! - Passwords: argon2id (the crate's defaults), hashed off the async threads; the hash is
//!   a vault secret, never an event.
//! - Tokens (sessions, setup): 32 random bytes, hex. Only their SHA-256 is stored, and
//!   comparisons are constant-time.
//! - CSRF: the token for a session is HMAC-SHA256(csrf key, session token), so it needs no
//!   storage and dies with the session.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Session cookie name.
pub const SESSION_COOKIE: &str = "rm_session";
/// Pre-session CSRF cookie for the login and setup forms (double submit).
pub const FORM_CSRF_COOKIE: &str = "rm_form_csrf";
/// How long a session lasts.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

/// A new random token: 32 bytes, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// SHA-256 of a token, hex: what the database keeps.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two strings.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Hashes a password with argon2id. Slow on purpose: call from a blocking thread.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored hash. Slow on purpose: call from a blocking thread.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a password nobody knows, verified when the username is unknown so that a
/// failed login takes as long whether or not the account exists.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&new_token()).unwrap_or_default())
}

/// Derives CSRF tokens from session tokens.
#[derive(Clone)]
pub struct Csrf {
    key: [u8; 32],
}

impl Csrf {
    /// With the given key.
    pub fn new(key: [u8; 32]) -> Self {
        Csrf { key }
    }

    /// The CSRF token of a session.
    pub fn token_for(&self, session_token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key size");
        mac.update(b"csrf:");
        mac.update(session_token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the CSRF token of `session_token`.
    pub fn check(&self, session_token: &str, given: &str) -> bool {
        ct_eq(&self.token_for(session_token), given)
    }
}

/// The logged-in user behind a request.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// User id.
    pub user_id: String,
    /// Login name.
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Public session id.
    pub session_id: String,
    /// Hash of the session token (the row key).
    pub token_hash: String,
}

/// Stores a new session row.
pub fn insert_session(
    conn: &Connection,
    token: &str,
    session_id: &str,
    user_id: &str,
    now: domain::Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, session_id, user_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        hash_token(token),
        session_id,
        user_id,
        now.to_string(),
        now.plus_seconds(SESSION_TTL_SECS).to_string()
    ])?;
    Ok(())
}

/// Finds the live session of a token.
pub fn find_session(
    conn: &Connection,
    token: &str,
    now: domain::Timestamp,
) -> rusqlite::Result<Option<SessionUser>> {
    let token_hash = hash_token(token);
    conn.prepare_cached(
        "SELECT s.user_id, u.username, u.role, s.session_id, s.token_hash
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )?
    .query_row(params![token_hash, now.to_string()], |r| {
        Ok(SessionUser {
            user_id: r.get(0)?,
            username: r.get(1)?,
            role: r.get(2)?,
            session_id: r.get(3)?,
            token_hash: r.get(4)?,
        })
    })
    .optional()
}

/// Login attempt limits, per client address and per username.
#[derive(Clone)]
pub struct LoginLimiter {
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Arc<DefaultKeyedRateLimiter<String>>,
}

impl LoginLimiter {
    /// `per_ip` and `per_user` attempts a minute (each also the burst).
    pub fn new(per_ip: u32, per_user: u32) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            per_ip: Arc::new(RateLimiter::keyed(q(per_ip))),
            per_user: Arc::new(RateLimiter::keyed(q(per_user))),
        }
    }

    /// Counts an attempt; `Err(seconds)` to wait when over either limit.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), u64> {
        let clock = governor::clock::DefaultClock::default();
        let wait = |nu: governor::NotUntil<governor::clock::QuantaInstant>| {
            use governor::clock::Clock;
            nu.wait_time_from(clock.now()).as_secs().max(1)
        };
        self.per_ip.check_key(&ip).map_err(wait)?;
        self.per_user
            .check_key(&username.to_lowercase())
            .map_err(wait)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let c = Csrf::new([1; 32]);
        let t = c.token_for("session-a");
        assert!(c.check("session-a", &t));
        assert!(!c.check("session-b", &t));
        assert!(!c.check("session-a", ""));
    }

    #[test]
    fn limiter_refuses_past_the_quota() {
        let l = LoginLimiter::new(100, 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip, "alice").is_ok());
        }
        assert!(l.check(ip, "ALICE").is_err());
        assert!(l.check(ip, "bob").is_ok());
    }
}
