//! HTML pages and their forms. Forms work without JavaScript; failures re-render the form
//! with what was typed and the message next to the field.

use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use domain::validation::Password;
use domain::DomainError;
use maud::Markup;
use serde::Deserialize;
use web::pages::LoginPage;
use web::Viewer;

use super::api::{clear_session_cookie, session_cookie};
use super::error::AppError;
use super::extract::{ClientIp, CurrentUser, MaybeUser};
use super::AppState;
use crate::accounts;
use crate::auth::{self, FORM_CSRF_COOKIE};

pub(crate) fn html(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

/// The viewer of a logged-in page.
pub fn viewer(state: &AppState, me: &CurrentUser) -> Viewer {
    Viewer {
        username: Some(me.user.username.clone()),
        role: Some(me.user.role.clone()),
        csrf_token: Some(state.csrf.token_for(&me.token)),
        open_alerts: None,
    }
}

/// The embedded stylesheet.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        web::STYLESHEET,
    )
        .into_response()
}

/// The pages' script.
pub async fn app_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        web::APP_JS,
    )
        .into_response()
}

/// `/jobs/{id}`.
pub async fn job_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let v = viewer(&state, &me);
    let found = state
        .store
        .read(move |c| -> Result<_, AppError> {
            let Some(job) = projections::jobs::get(c, &id)? else {
                return Ok(None);
            };
            let hostname = projections::hosts::get(c, &job.host_id)?
                .map(|h| h.hostname)
                .unwrap_or_else(|| "a deleted host".into());
            let lines = projections::jobs::logs(c, &id, 0)?;
            Ok(Some((job, hostname, lines)))
        })
        .await?;
    let Some((job, hostname, lines)) = found else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            web::error_page(&v, 404, "No such job", "There is no job with this id."),
        ));
    };
    let page = web::fleet::JobPage {
        job: &job,
        hostname: &hostname,
        lines: &lines,
        now: state.clock.now(),
    };
    Ok(html(StatusCode::OK, web::fleet::job_page(&v, &page)))
}

fn cannot_add_hosts(v: &Viewer) -> Response {
    html(
        StatusCode::FORBIDDEN,
        web::error_page(
            v,
            403,
            "Not allowed",
            "Adding hosts needs the admin or operator role.",
        ),
    )
}

pub(crate) fn can_manage(me: &CurrentUser) -> bool {
    matches!(me.user.role.as_str(), "admin" | "operator")
}

/// `GET /hosts/new`.
pub async fn add_host_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let v = viewer(&state, &me);
    if !can_manage(&me) {
        return Ok(cannot_add_hosts(&v));
    }
    let page = web::fleet::AddHostPage {
        csrf: state.csrf.token_for(&me.token),
        ..Default::default()
    };
    Ok(html(StatusCode::OK, web::fleet::add_host(&v, &page)))
}

/// The add-host form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AddHostForm {
    hostname: String,
    repo_url: String,
    repo_username: String,
    repo_password: String,
    /// Paths of the default source group, one per line (empty: the built-in default).
    #[serde(default)]
    paths: String,
}

/// `POST /hosts/new` (the CSRF middleware has checked the form's token).
pub async fn add_host_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<AddHostForm>,
) -> Result<Response, AppError> {
    let v = viewer(&state, &me);
    if !can_manage(&me) {
        return Ok(cannot_add_hosts(&v));
    }
    let mut page = web::fleet::AddHostPage {
        csrf: state.csrf.token_for(&me.token),
        hostname: f.hostname.clone(),
        repo_url: f.repo_url.clone(),
        repo_username: f.repo_username.clone(),
        ..Default::default()
    };
    let username = Some(f.repo_username.as_str()).filter(|u| !u.trim().is_empty());
    let result = match crate::hosts::CredentialsInput::parse(
        &f.repo_url,
        username,
        Some(&f.repo_password),
    ) {
        Ok(creds) => {
            let paths: Vec<String> = f
                .paths
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            let paths = (!paths.is_empty()).then_some(paths);
            crate::hosts::mint_token(&state, &me.user.user_id, &f.hostname, creds, paths).await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(minted) => {
            page.hostname = f.hostname.trim().to_string();
            page.minted = Some((minted.token_id, minted.install_command, minted.expires_at));
            Ok(html(StatusCode::CREATED, web::fleet::add_host(&v, &page)))
        }
        Err(AppError::Domain(DomainError::Invalid { field, message })) => {
            page.field_errors.push((
                field.to_string(),
                format!("{} {message}", field.replace('_', " ")),
            ));
            Ok(html(
                StatusCode::BAD_REQUEST,
                web::fleet::add_host(&v, &page),
            ))
        }
        Err(e) => Err(e),
    }
}

/// `/audit`: the event log, filtered and paged.
pub async fn audit_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let v = viewer(&state, &me);
    let q: super::events_api::AuditQuery =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut page = web::fleet::AuditPage {
        actor: q.actor.clone().unwrap_or_default(),
        event_type: q.event_type.clone().unwrap_or_default(),
        host: q.host.clone().unwrap_or_default(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
        ..Default::default()
    };
    let head = crate::store::EventLog::head(&state.store);
    page.head = (head.seq, head.hash);
    match super::events_api::audit_events(&state, q.clone()).await {
        Ok((events, limit)) => {
            let full = events.len() == limit;
            let last = events.last().map(|e| e.seq);
            page.rows = events
                .into_iter()
                .map(|e| {
                    let view = super::events_api::EventView::from_recorded(e);
                    let (seq, t, stream, actor, at) = view.parts();
                    web::fleet::AuditRow {
                        seq,
                        event_type: t.to_string(),
                        stream: stream.to_string(),
                        actor: actor.to_string(),
                        occurred_at: at.to_string(),
                        data: view.pretty_data(),
                    }
                })
                .collect();
            if let (true, Some(last)) = (full, last) {
                let mut next = q;
                next.after = Some(last);
                let pairs: Vec<(&str, String)> = [
                    ("actor", next.actor),
                    ("type", next.event_type),
                    ("host", next.host),
                    ("since", next.since),
                    ("until", next.until),
                    ("after", next.after.map(|a| a.to_string())),
                    ("limit", next.limit.map(|l| l.to_string())),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
                .collect();
                page.next_href = Some(format!(
                    "/audit?{}",
                    serde_urlencoded::to_string(pairs).unwrap_or_default()
                ));
            }
            Ok(html(StatusCode::OK, web::fleet::audit_page(&v, &page)))
        }
        Err(AppError::Domain(DomainError::Invalid { field, message })) => {
            page.field_errors
                .push((field.to_string(), format!("{field} {message}")));
            Ok(html(
                StatusCode::BAD_REQUEST,
                web::fleet::audit_page(&v, &page),
            ))
        }
        Err(e) => Err(e),
    }
}

/// HTML 404.
pub async fn not_found(State(state): State<AppState>, MaybeUser(me): MaybeUser) -> Response {
    let v = me.map(|m| viewer(&state, &m)).unwrap_or_default();
    html(
        StatusCode::NOT_FOUND,
        web::error_page(&v, 404, "Not found", "There is no page at this address."),
    )
}

/// `/`: the dashboard, or a redirect to `/login`.
pub async fn home(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let head = crate::store::EventLog::head(&state.store);
    let (summary, hosts, digests) = state
        .store
        .read(|c| -> Result<_, AppError> {
            Ok((
                projections::hosts::summary(c)?,
                projections::hosts::list(c)?,
                projections::config::schedule_digests(c)?,
            ))
        })
        .await?;
    let now = state.clock.now();
    let schedules = super::sources_pages::schedule_cells(digests, now);
    let mut v = viewer(&state, &me);
    v.open_alerts = Some(hosts.iter().map(|h| h.open_alerts).sum());
    let page = web::fleet::Dashboard {
        summary: &summary,
        hosts: &hosts,
        now,
        head: (head.seq, head.hash),
        schedules: &schedules,
    };
    Ok(html(StatusCode::OK, web::fleet::dashboard(&v, &page)))
}

/// Errors and typed values to show again on a host's page.
#[derive(Default)]
struct HostFeedback {
    run_paths: String,
    run_error: Option<String>,
    delete_error: Option<String>,
}

async fn render_host(
    state: &AppState,
    me: &CurrentUser,
    id: String,
    status: StatusCode,
    fb: HostFeedback,
) -> Result<Response, AppError> {
    let v = viewer(state, me);
    let found = state
        .store
        .read(move |c| -> Result<_, AppError> {
            let Some(host) = projections::hosts::get(c, &id)? else {
                return Ok(None);
            };
            let snapshots = projections::jobs::snapshots(c, &id)?;
            let jobs = projections::jobs::list_for_host(c, &id, 10)?;
            let settings = projections::config::settings(c, &id)?;
            let groups = projections::config::groups(c, &id)?;
            let digest = projections::config::schedule_digest(c, &id)?;
            Ok(Some((host, snapshots, jobs, settings, groups, digest)))
        })
        .await?;
    let Some((host, snapshots, jobs, settings, groups, digest)) = found else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            web::error_page(
                &v,
                404,
                "No such host",
                "This host does not exist, or it was deleted.",
            ),
        ));
    };
    let csrf = state.csrf.token_for(&me.token);
    let now = state.clock.now();
    let schedule = super::sources_pages::host_schedule_cell(digest, now);
    let page = web::fleet::HostPage {
        host: &host,
        settings: settings.as_ref(),
        groups: &groups,
        schedule: schedule.as_ref(),
        snapshots: &snapshots,
        jobs: &jobs,
        now,
        can_manage: can_manage(me),
        csrf: &csrf,
        run_paths: &fb.run_paths,
        run_error: fb.run_error.as_deref(),
        delete_error: fb.delete_error.as_deref(),
    };
    Ok(html(status, web::fleet::host_page(&v, &page)))
}

/// `/hosts/{id}`: the host's page.
pub async fn host_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    render_host(&state, &me, id, StatusCode::OK, HostFeedback::default()).await
}

/// The Run-now form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RunForm {
    paths: String,
    limit_upload_kbps: String,
}

/// `POST /hosts/{id}/run`: starts a backup and lands on its job page.
pub async fn run_form(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(f): Form<RunForm>,
) -> Result<Response, AppError> {
    me.require(&["admin", "operator"])?;
    let limit_upload_kbps = match f.limit_upload_kbps.trim() {
        "" => None,
        l => match l.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                let fb = HostFeedback {
                    run_paths: f.paths,
                    run_error: Some("the upload limit must be a whole number of KiB/s".into()),
                    ..Default::default()
                };
                return render_host(&state, &me, id, StatusCode::BAD_REQUEST, fb).await;
            }
        },
    };
    let params = domain::jobs::JobParams {
        paths: f
            .paths
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        limit_upload_kbps,
        ..Default::default()
    };
    let actor = domain::Actor::User(me.user.user_id.clone());
    match crate::jobs::create(&state, actor, &id, domain::jobs::JobKind::Backup, params).await {
        Ok(job_id) => Ok(Redirect::to(&format!("/jobs/{job_id}")).into_response()),
        Err(AppError::Domain(e @ (DomainError::Invalid { .. } | DomainError::HostOffline))) => {
            let fb = HostFeedback {
                run_paths: f.paths,
                run_error: Some(e.to_string()),
                ..Default::default()
            };
            render_host(&state, &me, id, StatusCode::BAD_REQUEST, fb).await
        }
        Err(e) => Err(e),
    }
}

/// The delete form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteForm {
    confirm: String,
}

/// `POST /hosts/{id}/delete`: only when the typed name matches.
pub async fn delete_form(
    State(state): State<AppState>,
    me: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(f): Form<DeleteForm>,
) -> Result<Response, AppError> {
    me.require(&["admin", "operator"])?;
    let hid = id.clone();
    let host = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::hosts::get(c, &hid)?) })
        .await?;
    let Some(host) = host else {
        return Err(AppError::NotFound(format!("no host {id}")));
    };
    if f.confirm.trim() != host.hostname {
        let fb = HostFeedback {
            delete_error: Some(format!(
                "type {} exactly to delete this host",
                host.hostname
            )),
            ..Default::default()
        };
        return render_host(&state, &me, id, StatusCode::BAD_REQUEST, fb).await;
    }
    crate::hosts::delete_host(&state, &me.user.user_id, &id).await?;
    Ok(Redirect::to("/").into_response())
}

async fn setup_needed(state: &AppState) -> Result<bool, AppError> {
    Ok(!state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::users::any_user(c)?) })
        .await?)
}

/// Renders the login page with a fresh pre-session CSRF cookie.
async fn render_login(
    state: &AppState,
    jar: CookieJar,
    status: StatusCode,
    mut page: LoginPage,
) -> Result<Response, AppError> {
    page.setup_needed = setup_needed(state).await?;
    page.password_rule = Password::RULE.to_string();
    page.form_csrf = auth::new_token();
    let cookie = Cookie::build((FORM_CSRF_COOKIE, page.form_csrf.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies())
        .build();
    Ok((jar.add(cookie), html(status, web::pages::login(&page))).into_response())
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    jar: CookieJar,
) -> Result<Response, AppError> {
    if me.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    render_login(&state, jar, StatusCode::OK, LoginPage::default()).await
}

fn form_csrf_ok(jar: &CookieJar, given: &str) -> bool {
    jar.get(FORM_CSRF_COOKIE)
        .is_some_and(|c| !given.is_empty() && auth::ct_eq(c.value(), given))
}

/// The login form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf_token: String,
    username: String,
    password: String,
}

/// Turns a flow's error into the page's messages, or passes it on.
fn page_error(e: AppError, page: &mut LoginPage) -> Result<StatusCode, AppError> {
    match e {
        AppError::Domain(DomainError::Invalid { field, message }) => {
            page.field_errors
                .push((field.to_string(), format!("{field} {message}")));
            Ok(StatusCode::BAD_REQUEST)
        }
        AppError::Unauthorized(m) => {
            page.error = Some(m.to_string());
            Ok(StatusCode::UNAUTHORIZED)
        }
        e @ AppError::RateLimited { .. } => {
            page.error = Some(e.to_string());
            Ok(StatusCode::TOO_MANY_REQUESTS)
        }
        AppError::Domain(DomainError::AlreadyBootstrapped) => {
            page.error = Some("Setup is already complete: log in instead.".into());
            Ok(StatusCode::CONFLICT)
        }
        other => Err(other),
    }
}

/// After login or setup: the session cookie replaces the pre-session form cookie.
fn signed_in(state: &AppState, jar: CookieJar, token: String) -> Response {
    let jar = jar
        .remove(Cookie::build(FORM_CSRF_COOKIE).path("/"))
        .add(session_cookie(state, token));
    (jar, Redirect::to("/")).into_response()
}

fn csrf_failed(page: &mut LoginPage) -> StatusCode {
    page.error = Some("The form expired. Please try again.".into());
    StatusCode::FORBIDDEN
}

/// `POST /login`.
pub async fn login_form(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let mut page = LoginPage {
        username: f.username.clone(),
        ..Default::default()
    };
    let status = if !form_csrf_ok(&jar, &f.csrf_token) {
        csrf_failed(&mut page)
    } else {
        match accounts::login(&state, &f.username, &f.password, ip).await {
            Ok(opened) => return Ok(signed_in(&state, jar, opened.token)),
            Err(e) => page_error(e, &mut page)?,
        }
    };
    render_login(&state, jar, status, page).await
}

/// The setup form.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    csrf_token: String,
    token: String,
    username: String,
    password: String,
}

/// `POST /setup`.
pub async fn setup_form(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    Form(f): Form<SetupForm>,
) -> Result<Response, AppError> {
    let mut page = LoginPage {
        username: f.username.clone(),
        ..Default::default()
    };
    let status = if !form_csrf_ok(&jar, &f.csrf_token) {
        csrf_failed(&mut page)
    } else {
        match accounts::bootstrap(
            &state,
            &f.token,
            &f.username,
            &f.password,
            Some(ip.to_string()),
        )
        .await
        {
            Ok(opened) => return Ok(signed_in(&state, jar, opened.token)),
            Err(AppError::Unauthorized(m)) => {
                page.field_errors.push(("token".into(), m.to_string()));
                StatusCode::UNAUTHORIZED
            }
            Err(e) => page_error(e, &mut page)?,
        }
    };
    render_login(&state, jar, status, page).await
}

/// `POST /logout` (the CSRF middleware has checked the form's token).
pub async fn logout_form(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
) -> Result<Response, AppError> {
    accounts::logout(&state, &me.user).await?;
    Ok((
        jar.add(clear_session_cookie(&state)),
        Redirect::to("/login"),
    )
        .into_response())
}
