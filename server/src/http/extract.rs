//! Extractors that answer bad input with the same JSON error body as everything else.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use axum_extra::extract::CookieJar;
use serde::de::DeserializeOwned;

use super::error::AppError;
use super::AppState;
use crate::auth::{self, SessionUser, SESSION_COOKIE};

/// `Json<T>` whose rejections are [`AppError`]s.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(AppJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

/// A JSON body that may be left out entirely (no body: `T::default()`); a body that is
/// there must be valid JSON with the right content type, like [`AppJson`].
pub struct OptJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let h = req.headers();
        let empty = match h.get(axum::http::header::CONTENT_LENGTH) {
            Some(v) => v.as_bytes() == b"0",
            None => !h.contains_key(axum::http::header::TRANSFER_ENCODING),
        };
        if empty {
            return Ok(OptJson(T::default()));
        }
        AppJson::<T>::from_request(req, state)
            .await
            .map(|AppJson(v)| OptJson(v))
    }
}

fn json_rejection(rej: JsonRejection) -> AppError {
    match rej.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(
            "expected a body with Content-Type: application/json".into(),
        ),
        _ => match rej {
            JsonRejection::JsonSyntaxError(e) => {
                AppError::bad_request("invalid_json", e.body_text())
            }
            JsonRejection::JsonDataError(e) => AppError::bad_request("invalid_body", e.body_text()),
            other => AppError::bad_request("invalid_body", other.body_text()),
        },
    }
}

/// `Query<T>` whose rejections are [`AppError`]s.
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(AppQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(AppError::bad_request("invalid_query", e.body_text()))
            }
            Err(e) => Err(AppError::bad_request("invalid_query", e.body_text())),
        }
    }
}

/// The client's address (the TCP peer). `127.0.0.1` when unknown (in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(ip))
    }
}

/// The logged-in user; 401 when there is no live session.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The session's user.
    pub user: SessionUser,
    /// The raw session token (from the cookie), for the CSRF token.
    pub token: String,
}

impl CurrentUser {
    /// 403 unless the user has one of the roles.
    pub fn require(&self, roles: &[&str]) -> Result<(), AppError> {
        if roles.contains(&self.user.role.as_str()) {
            Ok(())
        } else {
            Err(AppError::Forbidden("your role does not allow this"))
        }
    }
}

/// Looks up the session of the request's cookie.
pub async fn session_of(parts: &Parts, state: &AppState) -> Result<Option<CurrentUser>, AppError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let now = state.clock.now();
    let t = token.clone();
    let user = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(auth::find_session(c, &t, now)?) })
        .await?;
    Ok(user.map(|user| CurrentUser { user, token }))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        session_of(parts, state)
            .await?
            .ok_or(AppError::Unauthorized("log in first"))
    }
}

/// The logged-in user, if any (pages redirect instead of answering 401).
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(session_of(parts, state).await?))
    }
}

/// `?as_of=<seq or RFC 3339 time>` on a read endpoint (other query parameters are left to
/// the handler).
#[derive(Debug, Default, serde::Deserialize)]
pub struct AsOf {
    /// The seq or time.
    #[serde(default)]
    pub as_of: Option<String>,
}

impl AsOf {
    /// The parameter, when given and not empty.
    pub fn get(&self) -> Option<&str> {
        self.as_of.as_deref().filter(|s| !s.trim().is_empty())
    }
}

/// Marks an answer with the seq it describes (`X-RM-As-Of-Seq`) when it is a past state.
pub fn with_as_of(
    seq: Option<i64>,
    body: axum::Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = body.into_response();
    if let Some(seq) = seq {
        if let Ok(v) = axum::http::HeaderValue::from_str(&seq.to_string()) {
            r.headers_mut().insert("x-rm-as-of-seq", v);
        }
    }
    r
}
