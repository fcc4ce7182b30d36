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
        as_of: None,
    }
}

/// The `as_of` of a page's query (an empty one counts as absent).
pub(crate) fn as_of_param(q: Option<&str>) -> Option<String> {
    query_get(&query_pairs(q), "as_of").map(str::to_string)
}

/// A page's raw query as pairs (an undecodable query reads as empty: pages only look for
/// keys they know).
pub(crate) fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(q.unwrap_or("")).unwrap_or_default()
}

/// The first non-blank value of `key`.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// The page's query without `as_of` (and without one-shot notices such as `done`).
pub(crate) fn query_without_as_of(q: Option<&str>) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.unwrap_or("")).unwrap_or_default();
    pairs
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "as_of" | "done" | "saved"))
        .collect()
}

/// The past view a page read at `seq` (None: the live page). `path` and `q` are the page's
/// address, for the banner's "back to now" link.
pub(crate) async fn as_of_view(
    state: &AppState,
    seq: Option<i64>,
    path: &str,
    q: Option<&str>,
) -> Result<Option<web::AsOfView>, AppError> {
    let Some(seq) = seq else {
        return Ok(None);
    };
    let at = state
        .store
        .read(move |c| -> Result<Option<String>, AppError> {
            use rusqlite::OptionalExtension;
            Ok(c.query_row(
                "SELECT occurred_at FROM events WHERE seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await?;
    let rest = query_without_as_of(q);
    let now_href = if rest.is_empty() {
        path.to_string()
    } else {
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(rest).unwrap_or_default()
        )
    };
    Ok(Some(web::AsOfView { seq, at, now_href }))
}

/// The viewer of a page read at `seq` (the banner and read-only rendering in the past).
pub(crate) async fn page_viewer(
    state: &AppState,
    me: &CurrentUser,
    seq: Option<i64>,
    path: &str,
    q: Option<&str>,
) -> Result<Viewer, AppError> {
    let mut v = viewer(state, me);
    v.as_of = as_of_view(state, seq, path, q).await?;
    Ok(v)
}

/// A page's failure as an HTML page (a bad `as_of` is a 400 with its message).
fn page_failure(state: &AppState, me: &CurrentUser, r: Result<Response, AppError>) -> Response {
    r.unwrap_or_else(|e| super::sources_pages::error_response(state, me, e))
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

/// `/jobs/{id}` *(as_of)*.
pub async fn job_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let r = render_job(&state, &me, id, q.as_deref()).await;
    Ok(page_failure(&state, &me, r))
}

async fn render_job(
    state: &AppState,
    me: &CurrentUser,
    id: String,
    q: Option<&str>,
) -> Result<Response, AppError> {
    let path = format!("/jobs/{id}");
    let (found, seq) = state
        .read_as_of(as_of_param(q).as_deref(), move |c| -> Result<_, AppError> {
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
    let v = page_viewer(state, me, seq, &path, q).await?;
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

/// `/audit` *(as_of)*: the event log, filtered and paged, with the chain's state, a time
/// slider that moves the whole UI's `as_of`, and an export of the filtered range.
pub async fn audit_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let r = render_audit(&state, &me, raw.as_deref()).await;
    Ok(page_failure(&state, &me, r))
}

/// The host and job an event concerns, from its stream or its data.
fn event_subjects(stream: &str, data: &serde_json::Value) -> (Option<String>, Option<String>) {
    let field = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let host = stream
        .strip_prefix("host-")
        .map(str::to_string)
        .or_else(|| field("host_id"));
    let job = stream
        .strip_prefix("job-")
        .map(str::to_string)
        .or_else(|| field("job_id"));
    (host, job)
}

async fn render_audit(
    state: &AppState,
    me: &CurrentUser,
    raw: Option<&str>,
) -> Result<Response, AppError> {
    let as_of = as_of_param(raw);
    let seq = match as_of {
        Some(a) => Some(
            state
                .store
                .read(move |c| -> Result<_, AppError> { Ok(crate::asof::resolve(c, &a)?) })
                .await?
                .map_err(|m| AppError::bad_request("invalid_query", m))?,
        ),
        None => None,
    };
    let v = page_viewer(state, me, seq, "/audit", raw).await?;
    let rest = query_without_as_of(raw);
    let q: super::events_api::AuditQuery =
        serde_urlencoded::from_str(&serde_urlencoded::to_string(&rest).unwrap_or_default())
            .unwrap_or_default();
    let filters = |q: &super::events_api::AuditQuery, after: Option<i64>| -> String {
        let pairs: Vec<(&str, String)> = [
            ("actor", q.actor.clone()),
            ("type", q.event_type.clone()),
            ("host", q.host.clone()),
            ("since", q.since.clone()),
            ("until", q.until.clone()),
            ("after", after.map(|a| a.to_string())),
            ("limit", q.limit.map(|l| l.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    };
    let with_query = |path: &str, query: String| {
        if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        }
    };
    let chain = state.chain.get();
    let mut page = web::fleet::AuditPage {
        actor: q.actor.clone().unwrap_or_default(),
        event_type: q.event_type.clone().unwrap_or_default(),
        host: q.host.clone().unwrap_or_default(),
        since: q.since.clone().unwrap_or_default(),
        until: q.until.clone().unwrap_or_default(),
        chain: web::fleet::ChainBanner {
            verified_seq: chain.verified_seq,
            verified_hash: chain.verified_hash,
            ok: chain.ok,
            broken_at: chain.broken_at,
            reason: chain.reason,
        },
        self_href: with_query("/audit", filters(&q, q.after)),
        export_href: with_query("/api/audit/export", filters(&q, q.after)),
        as_of: seq,
        ..Default::default()
    };
    let head = crate::store::EventLog::head(&state.store);
    page.head = (head.seq, head.hash);
    match super::events_api::audit_events(state, q.clone()).await {
        Ok((events, limit)) => {
            let full = events.len() == limit;
            let last = events.last().map(|e| e.seq);
            page.rows = events
                .into_iter()
                .filter(|e| seq.is_none_or(|s| e.seq <= s))
                .map(|e| {
                    let view = super::events_api::EventView::from_recorded(e);
                    let (seq, t, stream, actor, at) = view.parts();
                    let data: serde_json::Value =
                        serde_json::from_str(&view.pretty_data()).unwrap_or_default();
                    let (host_id, job_id) = event_subjects(stream, &data);
                    web::fleet::AuditRow {
                        seq,
                        event_type: t.to_string(),
                        stream: stream.to_string(),
                        actor: actor.to_string(),
                        occurred_at: at.to_string(),
                        data: view.pretty_data(),
                        host_id,
                        job_id,
                    }
                })
                .collect();
            let past_end = matches!((seq, last), (Some(s), Some(l)) if l >= s);
            if let (true, false, Some(last)) = (full, past_end, last) {
                page.next_href = Some(with_query("/audit", filters(&q, Some(last))));
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

/// `/` *(as_of)*: the dashboard, or a redirect to `/login`.
pub async fn home(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let r = render_home(&state, &me, q.as_deref()).await;
    Ok(page_failure(&state, &me, r))
}

async fn render_home(
    state: &AppState,
    me: &CurrentUser,
    q: Option<&str>,
) -> Result<Response, AppError> {
    let ((summary, hosts, digests), seq) = state
        .read_as_of(as_of_param(q).as_deref(), |c| -> Result<_, AppError> {
            Ok((
                projections::hosts::summary(c)?,
                projections::hosts::list(c)?,
                projections::config::schedule_digests(c)?,
            ))
        })
        .await?;
    let head = match seq {
        // The past view's own position in the log.
        Some(seq) => {
            let h = state
                .store
                .read(move |c| -> Result<String, AppError> {
                    use rusqlite::OptionalExtension;
                    Ok(
                        c.query_row("SELECT hash FROM events WHERE seq = ?1", [seq], |r| {
                            r.get(0)
                        })
                        .optional()?
                        .unwrap_or_default(),
                    )
                })
                .await?;
            (seq, h)
        }
        None => {
            let h = crate::store::EventLog::head(&state.store);
            (h.seq, h.hash)
        }
    };
    let now = state.clock.now();
    let schedules = super::sources_pages::schedule_cells(digests, now);
    let mut v = page_viewer(state, me, seq, "/", q).await?;
    v.open_alerts = Some(hosts.iter().map(|h| h.open_alerts).sum());
    let page = web::fleet::Dashboard {
        summary: &summary,
        hosts: &hosts,
        now,
        head,
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
    /// The page's query (`as_of`).
    query: Option<String>,
}

async fn render_host(
    state: &AppState,
    me: &CurrentUser,
    id: String,
    status: StatusCode,
    fb: HostFeedback,
) -> Result<Response, AppError> {
    let q = fb.query.as_deref();
    let path = format!("/hosts/{id}");
    let (found, seq) = state
        .read_as_of(as_of_param(q).as_deref(), move |c| -> Result<_, AppError> {
            let Some(host) = projections::hosts::get(c, &id)? else {
                return Ok(None);
            };
            let snapshots = projections::jobs::snapshots(c, &id)?;
            let jobs = projections::jobs::list_for_host(c, &id, 10)?;
            let settings = projections::config::settings(c, &id)?;
            let groups = projections::config::groups(c, &id)?;
            let digest = projections::config::schedule_digest(c, &id)?;
            let removed = projections::history::removals(c, &id)?;
            Ok(Some((
                host, snapshots, jobs, settings, groups, digest, removed,
            )))
        })
        .await?;
    let v = page_viewer(state, me, seq, &path, q).await?;
    let Some((host, snapshots, jobs, settings, groups, digest, removed)) = found else {
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
        removed: &removed,
        now,
        can_manage: can_manage(me) && seq.is_none(),
        csrf: &csrf,
        run_paths: &fb.run_paths,
        run_error: fb.run_error.as_deref(),
        delete_error: fb.delete_error.as_deref(),
    };
    Ok(html(status, web::fleet::host_page(&v, &page)))
}

/// `/hosts/{id}` *(as_of)*: the host's page.
pub async fn host_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Response, AppError> {
    let Some(me) = me else {
        return Ok(Redirect::to("/login").into_response());
    };
    let fb = HostFeedback {
        query: q,
        ..Default::default()
    };
    let r = render_host(&state, &me, id, StatusCode::OK, fb).await;
    Ok(page_failure(&state, &me, r))
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
