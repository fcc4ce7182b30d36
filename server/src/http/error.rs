//! The one place where errors become HTTP statuses.
//!
//! Every error variant of every crate maps to a status in one exhaustive `match` with no
//! catch-all arm, so a new variant cannot ship without a decided status. 5xx answers say
//! little to the client and log the whole cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::DomainError;
use serde_json::json;

use crate::store::StoreError;
use crate::vault::VaultError;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A decision or validation refused.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The event store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The request is malformed.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// No (valid) credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// An agent's bearer is refused for a reason it should print.
    #[error("{message}")]
    AgentRefused {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// Logged in but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The CSRF token is missing or wrong.
    #[error("missing or invalid CSRF token")]
    Csrf,
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// Wrong method on a known path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many attempts.
    #[error("too many attempts; try again in {retry_after} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The body's content type is not the one expected.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Something that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// Status, code, message and the field at fault (if any).
    pub fn parts(&self) -> (StatusCode, &'static str, String, Option<&'static str>) {
        use StatusCode as S;
        let msg = self.to_string();
        match self {
            AppError::Domain(d) => match d {
                DomainError::Invalid { field, message } => (
                    S::BAD_REQUEST,
                    "invalid_input",
                    format!("{field} {message}"),
                    Some(field),
                ),
                DomainError::AlreadyBootstrapped => {
                    (S::CONFLICT, "already_bootstrapped", msg, None)
                }
                DomainError::NotBootstrapped => (S::CONFLICT, "not_bootstrapped", msg, None),
                DomainError::UsernameTaken(_) => {
                    (S::CONFLICT, "username_taken", msg, Some("username"))
                }
                DomainError::UnknownUser => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::UnknownHost => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::UnknownJob => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::HostOffline => (S::CONFLICT, "host_offline", msg, None),
                DomainError::JobAlreadyFinished => (S::CONFLICT, "job_finished", msg, None),
                DomainError::HostDeleted => (S::NOT_FOUND, "host_deleted", msg, None),
                DomainError::UnknownSourceGroup => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::UnknownSchedule => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::GroupInUse(_) => (S::CONFLICT, "group_in_use", msg, None),
                DomainError::LastSourceGroup => (S::CONFLICT, "last_source_group", msg, None),
                DomainError::UnknownAlert => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::UnknownChannel => (S::NOT_FOUND, "not_found", msg, None),
                DomainError::UndecodableEvent { .. } => internal(),
            },
            AppError::Store(s) => match s {
                StoreError::Conflict { .. } => (S::CONFLICT, "conflict", msg, None),
                StoreError::DuplicateEventId(_) => (S::CONFLICT, "duplicate_event", msg, None),
                StoreError::Closed => (S::SERVICE_UNAVAILABLE, "shutting_down", msg, None),
                StoreError::BadImport { .. } => (S::BAD_REQUEST, "bad_import", msg, None),
                StoreError::Sql(_)
                | StoreError::Migration(_)
                | StoreError::Projection(_)
                | StoreError::Domain(_)
                | StoreError::Io(_) => internal(),
            },
            AppError::Vault(v) => match v {
                VaultError::Key { .. } | VaultError::Tampered(_) | VaultError::Sql(_) => internal(),
            },
            AppError::BadRequest { code, message } => (S::BAD_REQUEST, code, message.clone(), None),
            AppError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", msg, None),
            AppError::AgentRefused { code, .. } => (S::UNAUTHORIZED, code, msg, None),
            AppError::Forbidden(_) => (S::FORBIDDEN, "forbidden", msg, None),
            AppError::Csrf => (S::FORBIDDEN, "csrf", msg, None),
            AppError::NotFound(_) => (S::NOT_FOUND, "not_found", msg, None),
            AppError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed", msg, None),
            AppError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited", msg, None),
            AppError::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "payload_too_large", msg, None),
            AppError::UnsupportedMediaType(_) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                msg,
                None,
            ),
            AppError::Internal(_) => internal(),
        }
    }
}

fn internal() -> (StatusCode, &'static str, String, Option<&'static str>) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details".into(),
        None,
    )
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, field) = self.parts();
        if status.is_server_error() {
            let mut chain = self.to_string();
            let mut src = std::error::Error::source(&self);
            while let Some(s) = src {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                src = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let Some(f) = field {
            body["error"]["field"] = json!(f);
        }
        // The UI lists the schedules to edit first.
        if let AppError::Domain(DomainError::GroupInUse(ids)) = &self {
            body["error"]["schedules"] = json!(ids);
        }
        let mut resp = (status, Json(body)).into_response();
        if let AppError::RateLimited { retry_after } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Store(StoreError::Sql(e))
    }
}
