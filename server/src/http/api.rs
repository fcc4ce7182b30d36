//! JSON endpoints for sessions and users.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::json;

use super::error::AppError;
use super::extract::{AppJson, ClientIp, CurrentUser};
use super::AppState;
use crate::accounts;
use crate::auth::{SESSION_COOKIE, SESSION_TTL_SECS};

/// The session cookie for a token: HttpOnly, SameSite=Strict, Secure over TLS.
pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies())
        .max_age(time::Duration::seconds(SESSION_TTL_SECS))
        .build()
}

/// The cookie that clears the session.
pub fn clear_session_cookie(state: &AppState) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies())
        .max_age(time::Duration::ZERO)
        .build()
}

/// `POST /api/bootstrap` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapBody {
    token: String,
    username: String,
    password: String,
}

/// First-run setup.
pub async fn bootstrap(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(b): AppJson<BootstrapBody>,
) -> Result<Response, AppError> {
    let opened = accounts::bootstrap(
        &state,
        &b.token,
        &b.username,
        &b.password,
        Some(ip.to_string()),
    )
    .await?;
    let jar = jar.add(session_cookie(&state, opened.token));
    Ok((
        StatusCode::CREATED,
        jar,
        Json(json!({ "user": opened.user })),
    )
        .into_response())
}

/// `POST /api/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// Logs in.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(b): AppJson<LoginBody>,
) -> Result<Response, AppError> {
    let opened = accounts::login(&state, &b.username, &b.password, ip).await?;
    let jar = jar.add(session_cookie(&state, opened.token));
    Ok((StatusCode::OK, jar, Json(json!({ "user": opened.user }))).into_response())
}

/// Logs out.
pub async fn logout(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
) -> Result<Response, AppError> {
    accounts::logout(&state, &me.user).await?;
    Ok((
        StatusCode::NO_CONTENT,
        jar.add(clear_session_cookie(&state)),
    )
        .into_response())
}

/// The current session and its CSRF token.
pub async fn session(State(state): State<AppState>, me: CurrentUser) -> Json<serde_json::Value> {
    Json(json!({
        "user": { "id": me.user.user_id, "username": me.user.username, "role": me.user.role },
        "csrf_token": state.csrf.token_for(&me.token),
    }))
}

/// Lists users (admin).
pub async fn list_users(
    State(state): State<AppState>,
    me: CurrentUser,
) -> Result<Json<serde_json::Value>, AppError> {
    me.require(&["admin"])?;
    let users = state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::users::list(c)?) })
        .await?;
    Ok(Json(json!({ "users": users })))
}

/// `POST /api/users` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    username: String,
    password: String,
    role: String,
}

/// Creates a user (admin).
pub async fn create_user(
    State(state): State<AppState>,
    me: CurrentUser,
    AppJson(b): AppJson<CreateUserBody>,
) -> Result<Response, AppError> {
    me.require(&["admin"])?;
    let user =
        accounts::create_user(&state, &me.user.user_id, &b.username, &b.password, &b.role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))).into_response())
}
