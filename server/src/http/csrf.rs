//! CSRF protection for every state-changing request made with the session cookie.
//!
//! The token (from `GET /api/session`, or embedded in every server-rendered form) travels
//! as the `X-CSRF-Token` header or the `csrf_token` form field. Requests without the
//! session cookie are not checked here: they are either anonymous (and refused by the
//! handlers that need a user) or agents with a bearer. Login and setup run before there is a
//! session and carry their own pre-session check (see `pages.rs`).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;

use super::error::AppError;
use super::AppState;
use crate::auth::SESSION_COOKIE;

/// Header carrying the token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Paths that do not act with the session: those that open one (and so cannot have its
/// token yet), and agent enrolment, whose credential is the enrolment token in the body.
const PRE_SESSION: &[&str] = &[
    "/api/login",
    "/api/bootstrap",
    "/login",
    "/setup",
    "/api/agents/enroll",
];

/// The middleware.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || PRE_SESSION.contains(&req.uri().path())
    {
        return next.run(req).await;
    }
    let jar = CookieJar::from_headers(req.headers());
    let Some(session_token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return next.run(req).await;
    };
    if let Some(given) = req.headers().get(CSRF_HEADER) {
        let ok = given
            .to_str()
            .map(|g| state.csrf.check(&session_token, g))
            .unwrap_or(false);
        return if ok {
            next.run(req).await
        } else {
            AppError::Csrf.into_response()
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return AppError::Csrf.into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return AppError::PayloadTooLarge.into_response(),
    };
    let ok = form_field(&bytes, "csrf_token").is_some_and(|g| state.csrf.check(&session_token, &g));
    if !ok {
        return AppError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// One field of a urlencoded body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
