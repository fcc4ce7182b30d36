//! A host's sub-pages — Sources, Schedules, Repository, Jobs — and their forms. Like every
//! page, forms work without JavaScript; a refused form comes back with what was typed and
//! each message next to its field.

use std::collections::HashMap;

use axum::extract::{Form, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use domain::jobs::JobKind;
use domain::sources::{
    describe_cron, next_fire, ConfigCommand, RetentionPolicy, Schedule, SourceGroup,
};
use domain::{Actor, DomainError, Timestamp};
use projections::config::{GroupView, HostSettings, ScheduleDigest, ScheduleView};
use projections::hosts::Host;
use rusqlite::Connection;
use web::fleet::{NextRun, ScheduleCell};
use web::host::{self as pages, DeleteRefusal, Errors, HooksEditor, HostChrome, RunFailure, Typed};

use super::error::AppError;
use super::extract::{CurrentUser, MaybeUser};
use super::pages::{as_of_param, can_manage, html, page_viewer, viewer};
use super::AppState;
use crate::hosts::CredentialsInput;
use crate::sources::{self as flows, RepoOpBody, RunOverrides};

pub(crate) type Pairs = Form<Vec<(String, String)>>;

const EDITORS: &[&str] = &["admin", "operator"];
const ADMINS: &[&str] = &["admin"];

fn actor(me: &CurrentUser) -> Actor {
    Actor::User(me.user.user_id.clone())
}

fn is_admin(me: &CurrentUser) -> bool {
    me.user.role == "admin"
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn typed(Form(pairs): Pairs) -> Typed {
    Typed(
        pairs
            .into_iter()
            .filter(|(k, _)| k != "csrf_token")
            .collect(),
    )
}

pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// An error the page cannot show in place, as an HTML page with its status.
pub(crate) fn error_response(state: &AppState, me: &CurrentUser, e: AppError) -> Response {
    let (status, _, message, _) = e.parts();
    if status.is_server_error() {
        tracing::error!(error = %e, "page request failed");
    }
    let title = match status.as_u16() {
        400 => "Cannot do that",
        401 => "Log in first",
        403 => "Not allowed",
        404 => "Not found",
        409 => "Cannot do that now",
        413 => "Too large",
        _ => "Something went wrong",
    };
    html(
        status,
        web::error_page(&viewer(state, me), status.as_u16(), title, &message),
    )
}

pub(crate) fn respond(
    state: &AppState,
    me: &CurrentUser,
    r: Result<Response, AppError>,
) -> Response {
    r.unwrap_or_else(|e| error_response(state, me, e))
}

/// The `done` (or `saved`) key of a redirect's query.
fn done_key(query: Option<&str>) -> Option<String> {
    let q = super::pages::query_pairs(query);
    q.into_iter()
        .find(|(k, _)| k == "done" || k == "saved")
        .map(|(_, v)| v)
}

/// A line for `?done=…` after a redirect (known keys only: nothing typed is echoed).
fn done_notice(query: Option<&str>) -> Option<&'static str> {
    Some(match done_key(query)?.as_str() {
        "group-created" => "Source group created.",
        "group-saved" => "Source group saved.",
        "group-deleted" => "Source group deleted.",
        "hooks" => "Hooks saved.",
        "schedule-created" => "Schedule created.",
        "schedule-saved" => "Schedule saved.",
        "schedule-deleted" => "Schedule deleted.",
        "schedule-paused" => "Schedule paused.",
        "schedule-resumed" => "Schedule resumed.",
        _ => return None,
    })
}

/// Which repository form was just saved.
fn saved_form(query: Option<&str>) -> Option<&'static str> {
    let key = done_key(query)?;
    ["connection", "bandwidth", "maintenance", "admin"]
        .into_iter()
        .find(|k| *k == key)
}

/// The field a domain message belongs to on a form (`""`: the whole form) and its text.
fn field_message(field: &str, message: &str, form_fields: &[&str]) -> (String, String) {
    if field == "retention_policy" {
        let first = message.split_whitespace().next().unwrap_or("");
        if first.starts_with("keep_") && form_fields.contains(&first) {
            let text = message.replacen(first, &first.replacen("keep_", "Keep ", 1), 1);
            return (first.to_string(), text);
        }
        return (String::new(), capitalized(message));
    }
    let label = match field {
        "name" => "The name",
        "includes" => "The path list",
        "excludes" => "The exclude list",
        "cron" => "The expression",
        "retry_max" => "Retries",
        "retry_backoff_seconds" => "The wait",
        "source_group_ids" => "The selection",
        "up_kbps" | "down_kbps" | "limit_upload_kbps" | "limit_download_kbps" => "The limit",
        "forget_cadence" | "prune_cadence" | "check_cadence" => "The cadence",
        "check_subset_pct" => "The percentage",
        "repo_url" => "The repository URL",
        "repo_username" => "The user",
        "repo_password" => "The password",
        "pre_hook" | "post_hook" => "The script",
        other => other,
    };
    let predicate = ["must ", "is ", "needs ", "lists ", "has ", "cannot "]
        .iter()
        .any(|v| message.starts_with(v));
    let text = if predicate {
        format!("{label} {message}")
    } else {
        capitalized(message)
    };
    if form_fields.contains(&field) {
        (field.to_string(), text)
    } else {
        (String::new(), text)
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Splits a flow's error into a message for the form, or passes it on.
pub(crate) fn form_error(
    e: AppError,
    form_fields: &[&str],
) -> Result<(StatusCode, Errors), AppError> {
    let mut errors = Errors::default();
    match e {
        AppError::Domain(DomainError::Invalid { field, message }) => {
            let (k, m) = field_message(field, &message, form_fields);
            errors.add(&k, m);
            Ok((StatusCode::BAD_REQUEST, errors))
        }
        AppError::Domain(e @ DomainError::HostOffline) => {
            errors.add("", capitalized(&e.to_string()));
            Ok((StatusCode::CONFLICT, errors))
        }
        other => Err(other),
    }
}

// ---------------------------------------------------------------------------------------
// Loading

pub(crate) struct Loaded<T> {
    pub(crate) host: Host,
    pub(crate) settings: Option<HostSettings>,
    pub(crate) data: T,
    /// The seq of a past view (`?as_of=`).
    pub(crate) seq: Option<i64>,
}

impl<T> Loaded<T> {
    pub(crate) fn chrome(&self, state: &AppState) -> HostChrome<'_> {
        HostChrome {
            host: &self.host,
            settings: self.settings.as_ref(),
            now: state.clock.now(),
        }
    }
}

/// Reads the host, its settings and the page's data — live, or as of the page's `as_of`.
pub(crate) async fn load<T, F>(
    state: &AppState,
    host_id: &str,
    query: Option<&str>,
    f: F,
) -> Result<Loaded<T>, AppError>
where
    F: FnOnce(&Connection, &str) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let hid = host_id.to_string();
    let (mut l, seq) = state
        .read_as_of(
            as_of_param(query).as_deref(),
            move |c| -> Result<Loaded<T>, AppError> {
                let host = projections::hosts::get(c, &hid)?.ok_or_else(|| {
                    AppError::NotFound("This host does not exist, or it was deleted.".into())
                })?;
                let settings = projections::config::settings(c, &hid)?;
                let data = f(c, &hid)?;
                Ok(Loaded {
                    host,
                    settings,
                    data,
                    seq: None,
                })
            },
        )
        .await?;
    l.seq = seq;
    Ok(l)
}

fn unknown_group() -> AppError {
    AppError::NotFound("This host has no such source group.".into())
}

fn unknown_schedule() -> AppError {
    AppError::NotFound("This host has no such schedule.".into())
}

/// Next fires by cron expression: (unix seconds, the forms a page shows).
type NextMemo = HashMap<String, Option<(i64, NextRun)>>;

/// When the first of some cron expressions fires next; each distinct expression is worked
/// out once per page (a fleet shares a handful).
fn next_of(crons: &[String], now: Timestamp, memo: &mut NextMemo) -> Option<NextRun> {
    let now_secs = now.unix_micros().div_euclid(1_000_000);
    for c in crons {
        if !memo.contains_key(c.as_str()) {
            let next = next_fire(c, now_secs).and_then(|secs| {
                let at = Timestamp::from_unix_micros(secs.checked_mul(1_000_000)?)?;
                Some((secs, NextRun::new(now, at.to_string())))
            });
            memo.insert(c.clone(), next);
        }
    }
    crons
        .iter()
        .filter_map(|c| memo.get(c.as_str()).and_then(Option::as_ref))
        .min_by_key(|(secs, _)| *secs)
        .map(|(_, n)| n.clone())
}

/// The dashboard's schedule column, from one query's digests.
pub fn schedule_cells(
    digests: HashMap<String, ScheduleDigest>,
    now: Timestamp,
) -> HashMap<String, ScheduleCell> {
    let mut memo = NextMemo::new();
    digests
        .into_iter()
        .map(|(host, d)| {
            let cell = schedule_cell(d, now, &mut memo);
            (host, cell)
        })
        .collect()
}

fn schedule_cell(d: ScheduleDigest, now: Timestamp, memo: &mut NextMemo) -> ScheduleCell {
    ScheduleCell {
        count: d.count,
        next_run: next_of(&d.enabled_crons, now, memo),
        last_run_at: d.last_run_at,
        last_run_status: d.last_run_status,
        last_job_id: d.last_job_id,
    }
}

/// One host's schedule cell (the overview).
pub(crate) fn host_schedule_cell(
    d: Option<ScheduleDigest>,
    now: Timestamp,
) -> Option<ScheduleCell> {
    d.map(|d| schedule_cell(d, now, &mut NextMemo::new()))
}

// ---------------------------------------------------------------------------------------
// Sources

#[derive(Default)]
struct SourcesFb {
    run_failure: Option<RunFailure>,
    refusal: Option<DeleteRefusal>,
    hooks_typed: Option<Typed>,
    hooks_errors: Errors,
    notice: Option<&'static str>,
    /// The page's query (`as_of`).
    query: Option<String>,
}

fn hooks_typed(h: flows::HooksView) -> Typed {
    let mut t = Typed::default();
    t.set("pre_hook", h.pre.unwrap_or_default());
    t.set("post_hook", h.post.unwrap_or_default());
    t
}

async fn render_sources(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    status: StatusCode,
    fb: SourcesFb,
) -> Result<Response, AppError> {
    let q = fb.query.as_deref();
    let l = load(state, host_id, q, |c, hid| {
        Ok((
            projections::config::groups(c, hid)?,
            projections::config::schedules(c, hid)?,
        ))
    })
    .await?;
    let v = page_viewer(state, me, l.seq, &format!("/hosts/{host_id}/sources"), q).await?;
    let hooks = match (is_admin(me) && l.seq.is_none(), fb.hooks_typed) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => Some(hooks_typed(flows::get_hooks(state, host_id, None).await?)),
    };
    let csrf = state.csrf.token_for(&me.token);
    let (groups, schedules) = &l.data;
    let page = pages::SourcesPage {
        chrome: l.chrome(state),
        groups,
        schedules,
        can_manage: can_manage(me) && l.seq.is_none(),
        csrf: &csrf,
        run_failure: fb.run_failure.as_ref(),
        delete_refusal: fb.refusal.as_ref(),
        host_hooks: hooks.as_ref().map(|t| HooksEditor {
            action: format!("/hosts/{host_id}/hooks"),
            typed: t,
            errors: &fb.hooks_errors,
            title: "Hooks for every group",
            intro: "Each group uses these for every hook it does not set itself.",
            saved: fb.notice == Some("Hooks saved."),
        }),
        notice: fb.notice,
    };
    Ok(html(status, pages::sources_page(&v, &page)))
}

/// `GET /hosts/{id}/sources`.
pub async fn sources_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let fb = SourcesFb {
        notice: done_notice(q.as_deref()),
        query: q,
        ..Default::default()
    };
    let r = render_sources(&state, &me, &id, StatusCode::OK, fb).await;
    respond(&state, &me, r)
}

const GROUP_FIELDS: &[&str] = &[
    "name",
    "includes",
    "excludes",
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "retry_max",
    "retry_backoff_seconds",
];

/// The group as typed, or the messages of the fields that are not numbers.
fn parse_group(t: &Typed, id: String) -> Result<SourceGroup, Errors> {
    let mut errors = Errors::default();
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut keep = |name: &str| -> Option<u32> {
        let v = t.get(name).trim();
        if v.is_empty() {
            return None;
        }
        match v.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(
                    name,
                    "Must be a whole number from 1 to 100000, or empty to not use this rule",
                );
                None
            }
        }
    };
    let retention_policy = RetentionPolicy {
        keep_last: keep("keep_last"),
        keep_hourly: keep("keep_hourly"),
        keep_daily: keep("keep_daily"),
        keep_weekly: keep("keep_weekly"),
        keep_monthly: keep("keep_monthly"),
        keep_yearly: keep("keep_yearly"),
        keep_within: Some(t.get("keep_within").trim().to_string()).filter(|s| !s.is_empty()),
    };
    let retry_max = match t.get("retry_max").trim() {
        "" => 0,
        v => v.parse::<u32>().unwrap_or_else(|_| {
            errors.add("retry_max", "Must be a whole number from 0 to 100");
            0
        }),
    };
    let retry_backoff_seconds = match t.get("retry_backoff_seconds").trim() {
        "" => 0,
        v => v.parse::<u64>().unwrap_or_else(|_| {
            errors.add(
                "retry_backoff_seconds",
                "Must be a whole number of seconds, at most 604800 (a week)",
            );
            0
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SourceGroup {
        id,
        name: t.get("name").trim().to_string(),
        includes: lines(t.get("includes")),
        excludes: lines(t.get("excludes")),
        retention_policy,
        retry_max,
        retry_backoff_seconds,
    })
}

struct GroupFb {
    typed: Option<Typed>,
    errors: Errors,
    hooks_typed: Option<Typed>,
    hooks_errors: Errors,
    notice: Option<&'static str>,
    /// The page's query (`as_of`).
    query: Option<String>,
}

async fn render_group(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    gid: Option<String>,
    status: StatusCode,
    fb: GroupFb,
) -> Result<Response, AppError> {
    let g2 = gid.clone();
    let q = fb.query.as_deref();
    let l = load(state, host_id, q, move |c, hid| {
        let group = match &g2 {
            Some(g) => Some(projections::config::group(c, hid, g)?.ok_or_else(unknown_group)?),
            None => None,
        };
        Ok((group, projections::config::schedules(c, hid)?))
    })
    .await?;
    let (group, schedules) = &l.data;
    let typed = match (fb.typed, group) {
        (Some(t), _) => t,
        (None, Some(g)) => pages::group_values(&g.group),
        (None, None) => pages::new_group_values(),
    };
    let path = match &gid {
        Some(g) => format!("/hosts/{host_id}/sources/{g}"),
        None => format!("/hosts/{host_id}/sources/new"),
    };
    let v = page_viewer(state, me, l.seq, &path, q).await?;
    let hooks = match (&gid, is_admin(me) && l.seq.is_none(), fb.hooks_typed) {
        (Some(_), true, Some(t)) => Some(t),
        (Some(g), true, None) => Some(hooks_typed(
            flows::get_hooks(state, host_id, Some(g.clone())).await?,
        )),
        _ => None,
    };
    let used_by: Vec<(String, String)> = match &gid {
        Some(g) => schedules
            .iter()
            .filter(|s| s.schedule.source_group_ids.contains(g))
            .map(|s| (s.schedule.id.clone(), describe_cron(&s.schedule.cron)))
            .collect(),
        None => vec![],
    };
    let csrf = state.csrf.token_for(&me.token);
    let page = pages::GroupFormPage {
        chrome: l.chrome(state),
        group_id: gid.as_deref(),
        typed: &typed,
        errors: &fb.errors,
        csrf: &csrf,
        can_manage: can_manage(me) && l.seq.is_none(),
        hooks: hooks.as_ref().map(|t| HooksEditor {
            action: format!(
                "/hosts/{host_id}/sources/{}/hooks",
                gid.as_deref().unwrap_or("")
            ),
            typed: t,
            errors: &fb.hooks_errors,
            title: "Hooks for this group",
            intro: "Run before and after this group's backups; a hook left empty falls back to the host-wide one on the Sources tab.",
            saved: fb.notice == Some("Hooks saved."),
        }),
        hook_flags: group.as_ref().map(|g| (g.has_pre_hook, g.has_post_hook)),
        used_by: &used_by,
        notice: fb.notice.filter(|n| *n != "Hooks saved."),
    };
    Ok(html(status, pages::group_form(&v, &page)))
}

fn group_fb(typed: Option<Typed>, errors: Errors) -> GroupFb {
    GroupFb {
        typed,
        errors,
        hooks_typed: None,
        hooks_errors: Errors::default(),
        notice: None,
        query: None,
    }
}

/// `GET /hosts/{id}/sources/new`.
pub async fn new_group_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = render_group(
        &state,
        &me,
        &id,
        None,
        StatusCode::OK,
        group_fb(None, Errors::default()),
    )
    .await;
    respond(&state, &me, r)
}

/// `GET /hosts/{id}/sources/{gid}`: the group's editor.
pub async fn group_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path((id, gid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let fb = GroupFb {
        notice: done_notice(q.as_deref()),
        query: q,
        ..group_fb(None, Errors::default())
    };
    let r = render_group(&state, &me, &id, Some(gid), StatusCode::OK, fb).await;
    respond(&state, &me, r)
}

async fn save_group(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    gid: Option<String>,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let create = gid.is_none();
    let group_id = gid.clone().unwrap_or_else(new_id);
    let group = match parse_group(&t, group_id) {
        Ok(g) => g,
        Err(errors) => {
            return render_group(
                state,
                me,
                id,
                gid,
                StatusCode::BAD_REQUEST,
                group_fb(Some(t), errors),
            )
            .await
        }
    };
    match flows::configure(
        state,
        actor(me),
        id,
        ConfigCommand::SaveGroup { group, create },
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/hosts/{id}/sources?done={}",
            if create {
                "group-created"
            } else {
                "group-saved"
            }
        ))),
        Err(AppError::Domain(DomainError::UnknownSourceGroup)) => Err(unknown_group()),
        Err(e) => {
            let (status, errors) = form_error(e, GROUP_FIELDS)?;
            render_group(state, me, id, gid, status, group_fb(Some(t), errors)).await
        }
    }
}

/// `POST /hosts/{id}/sources/new`.
pub async fn create_group_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_group(&state, &me, &id, None, typed(form)).await;
    respond(&state, &me, r)
}

/// `POST /hosts/{id}/sources/{gid}`.
pub async fn update_group_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, gid)): Path<(String, String)>,
    form: Pairs,
) -> Response {
    let r = save_group(&state, &me, &id, Some(gid), typed(form)).await;
    respond(&state, &me, r)
}

async fn delete_group(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    gid: String,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let result = flows::configure(
        state,
        actor(me),
        id,
        ConfigCommand::DeleteGroup {
            group_id: gid.clone(),
        },
    )
    .await;
    let (message, schedule_ids) = match result {
        Ok(_) => return Ok(see_other(&format!("/hosts/{id}/sources?done=group-deleted"))),
        Err(AppError::Domain(DomainError::UnknownSourceGroup)) => return Err(unknown_group()),
        Err(AppError::Domain(DomainError::GroupInUse(ids))) => (
            format!(
                "it is used by {} schedule{}.",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" }
            ),
            ids,
        ),
        Err(AppError::Domain(DomainError::LastSourceGroup)) => (
            "it is the last group of this host, and a host keeps at least one. Create another group first."
                .to_string(),
            vec![],
        ),
        Err(e) => return Err(e),
    };
    let (hid, g2) = (id.to_string(), gid.clone());
    let (name, schedules) = state
        .store
        .read(move |c| -> Result<_, AppError> {
            Ok((
                projections::config::group(c, &hid, &g2)?.map(|g| g.group.name),
                projections::config::schedules(c, &hid)?,
            ))
        })
        .await?;
    let refusal = DeleteRefusal {
        group_name: name.unwrap_or(gid),
        message,
        schedules: schedules
            .iter()
            .filter(|s| schedule_ids.contains(&s.schedule.id))
            .map(|s| {
                (
                    s.schedule.id.clone(),
                    format!("{} ({})", describe_cron(&s.schedule.cron), s.schedule.cron),
                )
            })
            .collect(),
    };
    let fb = SourcesFb {
        refusal: Some(refusal),
        ..Default::default()
    };
    render_sources(state, me, id, StatusCode::CONFLICT, fb).await
}

/// `POST /hosts/{id}/sources/{gid}/delete`: refused while schedules use it, or for the last
/// group, with the reason on the Sources page.
pub async fn delete_group_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, gid)): Path<(String, String)>,
) -> Response {
    let r = delete_group(&state, &me, &id, gid).await;
    respond(&state, &me, r)
}

fn limit(t: &Typed, name: &str, errors: &mut Errors) -> Option<u64> {
    match t.get(name).trim() {
        "" => None,
        v => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(name, "The limit must be a whole number of KiB/s, or empty");
                None
            }
        },
    }
}

async fn run_group(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    gid: String,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let mut errors = Errors::default();
    let o = RunOverrides {
        limit_upload_kbps: limit(&t, "limit_upload_kbps", &mut errors),
        limit_download_kbps: limit(&t, "limit_download_kbps", &mut errors),
    };
    let status = if errors.is_empty() {
        match flows::run_group(state, actor(me), id, &gid, o).await {
            Ok(job) => return Ok(see_other(&format!("/jobs/{job}"))),
            Err(AppError::Domain(DomainError::UnknownSourceGroup)) => return Err(unknown_group()),
            Err(e) => {
                let (status, errs) = form_error(e, &["limit_upload_kbps", "limit_download_kbps"])?;
                errors = errs;
                status
            }
        }
    } else {
        StatusCode::BAD_REQUEST
    };
    let fb = SourcesFb {
        run_failure: Some(RunFailure {
            group_id: gid,
            typed: t,
            errors,
        }),
        ..Default::default()
    };
    render_sources(state, me, id, status, fb).await
}

/// `POST /hosts/{id}/sources/{gid}/run`: Run-now, landing on the job's page.
pub async fn run_group_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, gid)): Path<(String, String)>,
    form: Pairs,
) -> Response {
    let r = run_group(&state, &me, &id, gid, typed(form)).await;
    respond(&state, &me, r)
}

async fn save_hooks(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    gid: Option<String>,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    if let Some(g) = &gid {
        let (hid, g) = (id.to_string(), g.clone());
        let found = state
            .store
            .read(move |c| -> Result<_, AppError> { Ok(projections::config::group(c, &hid, &g)?) })
            .await?;
        if found.is_none() {
            return Err(unknown_group());
        }
    }
    let result = flows::set_hooks(
        state,
        actor(me),
        id,
        gid.clone(),
        Some(t.get("pre_hook").to_string()),
        Some(t.get("post_hook").to_string()),
    )
    .await;
    match (result, gid) {
        (Ok(()), Some(g)) => Ok(see_other(&format!(
            "/hosts/{id}/sources/{g}?done=hooks#hooks"
        ))),
        (Ok(()), None) => Ok(see_other(&format!("/hosts/{id}/sources?done=hooks#hooks"))),
        (Err(e), gid) => {
            let (status, errors) = form_error(e, &["pre_hook", "post_hook"])?;
            match gid {
                Some(g) => {
                    let fb = GroupFb {
                        hooks_typed: Some(t),
                        hooks_errors: errors,
                        ..group_fb(None, Errors::default())
                    };
                    render_group(state, me, id, Some(g), status, fb).await
                }
                None => {
                    let fb = SourcesFb {
                        hooks_typed: Some(t),
                        hooks_errors: errors,
                        ..Default::default()
                    };
                    render_sources(state, me, id, status, fb).await
                }
            }
        }
    }
}

/// `POST /hosts/{id}/sources/{gid}/hooks` (admins).
pub async fn group_hooks_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, gid)): Path<(String, String)>,
    form: Pairs,
) -> Response {
    let r = save_hooks(&state, &me, &id, Some(gid), typed(form)).await;
    respond(&state, &me, r)
}

/// `POST /hosts/{id}/hooks`: the host-wide hooks (admins).
pub async fn host_hooks_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_hooks(&state, &me, &id, None, typed(form)).await;
    respond(&state, &me, r)
}

// ---------------------------------------------------------------------------------------
// Schedules

async fn render_schedules(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    status: StatusCode,
    row_error: Option<(String, String)>,
    notice: Option<&'static str>,
    query: Option<&str>,
) -> Result<Response, AppError> {
    let l = load(state, host_id, query, |c, hid| {
        Ok((
            projections::config::groups(c, hid)?,
            projections::config::schedules(c, hid)?,
        ))
    })
    .await?;
    let now = state.clock.now();
    let (groups, schedules) = &l.data;
    let rows: Vec<pages::ScheduleRow> = schedules
        .iter()
        .map(|s| pages::ScheduleRow {
            next_run_at: flows::next_run_at(&s.schedule.cron, s.schedule.enabled, now),
            view: s.clone(),
        })
        .collect();
    let csrf = state.csrf.token_for(&me.token);
    let page = pages::SchedulesPage {
        chrome: l.chrome(state),
        rows: &rows,
        groups,
        can_manage: can_manage(me) && l.seq.is_none(),
        csrf: &csrf,
        row_error: row_error.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        notice,
    };
    let v = page_viewer(
        state,
        me,
        l.seq,
        &format!("/hosts/{host_id}/schedules"),
        query,
    )
    .await?;
    Ok(html(status, pages::schedules_page(&v, &page)))
}

/// `GET /hosts/{id}/schedules`.
pub async fn schedules_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = render_schedules(
        &state,
        &me,
        &id,
        StatusCode::OK,
        None,
        done_notice(q.as_deref()),
        q.as_deref(),
    )
    .await;
    respond(&state, &me, r)
}

fn find_schedule(list: &[ScheduleView], sid: &str) -> Option<Schedule> {
    list.iter()
        .find(|s| s.schedule.id == sid)
        .map(|s| s.schedule.clone())
}

// The page's query rides along with the form's feedback (typed values, errors).
#[allow(clippy::too_many_arguments)]
async fn render_schedule(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    sid: Option<String>,
    status: StatusCode,
    typed: Option<Typed>,
    errors: Errors,
    query: Option<&str>,
) -> Result<Response, AppError> {
    let s2 = sid.clone();
    let l = load(state, host_id, query, move |c, hid| {
        let schedule = match &s2 {
            Some(s) => Some(
                find_schedule(&projections::config::schedules(c, hid)?, s)
                    .ok_or_else(unknown_schedule)?,
            ),
            None => None,
        };
        Ok((schedule, projections::config::groups(c, hid)?))
    })
    .await?;
    let (schedule, groups) = &l.data;
    let typed = match (typed, schedule) {
        (Some(t), _) => t,
        (None, Some(s)) => pages::schedule_values(s),
        (None, None) => {
            let mut t = Typed::default();
            t.set("enabled", "on");
            if let [only] = groups.as_slice() {
                t.push("source_group_ids", &only.group.id);
            }
            t
        }
    };
    let next = schedule
        .as_ref()
        .and_then(|s| flows::next_run_at(&s.cron, s.enabled, state.clock.now()));
    let presets = domain::sources::cron_presets();
    let csrf = state.csrf.token_for(&me.token);
    let page = pages::ScheduleFormPage {
        chrome: l.chrome(state),
        schedule_id: sid.as_deref(),
        typed: &typed,
        errors: &errors,
        groups,
        presets: &presets,
        next_run_at: next.as_deref(),
        csrf: &csrf,
        can_manage: can_manage(me) && l.seq.is_none(),
    };
    let path = match &sid {
        Some(s) => format!("/hosts/{host_id}/schedules/{s}"),
        None => format!("/hosts/{host_id}/schedules/new"),
    };
    let v = page_viewer(state, me, l.seq, &path, query).await?;
    Ok(html(status, pages::schedule_form(&v, &page)))
}

/// `GET /hosts/{id}/schedules/new`.
pub async fn new_schedule_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = render_schedule(
        &state,
        &me,
        &id,
        None,
        StatusCode::OK,
        None,
        Errors::default(),
        None,
    )
    .await;
    respond(&state, &me, r)
}

/// `GET /hosts/{id}/schedules/{sid}` *(as_of)*: the schedule's editor.
pub async fn schedule_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path((id, sid)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = render_schedule(
        &state,
        &me,
        &id,
        Some(sid),
        StatusCode::OK,
        None,
        Errors::default(),
        q.as_deref(),
    )
    .await;
    respond(&state, &me, r)
}

async fn save_schedule(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    sid: Option<String>,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let create = sid.is_none();
    let schedule = Schedule {
        id: sid.clone().unwrap_or_else(new_id),
        cron: t.get("cron").trim().to_string(),
        enabled: t.checked("enabled"),
        source_group_ids: t
            .all("source_group_ids")
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    match flows::configure(
        state,
        actor(me),
        id,
        ConfigCommand::SaveSchedule { schedule, create },
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/hosts/{id}/schedules?done={}",
            if create {
                "schedule-created"
            } else {
                "schedule-saved"
            }
        ))),
        Err(AppError::Domain(DomainError::UnknownSchedule)) => Err(unknown_schedule()),
        Err(e) => {
            let (status, errors) = form_error(e, &["cron", "source_group_ids"])?;
            render_schedule(state, me, id, sid, status, Some(t), errors, None).await
        }
    }
}

/// `POST /hosts/{id}/schedules/new`.
pub async fn create_schedule_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_schedule(&state, &me, &id, None, typed(form)).await;
    respond(&state, &me, r)
}

/// `POST /hosts/{id}/schedules/{sid}`.
pub async fn update_schedule_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, sid)): Path<(String, String)>,
    form: Pairs,
) -> Response {
    let r = save_schedule(&state, &me, &id, Some(sid), typed(form)).await;
    respond(&state, &me, r)
}

async fn stored_schedule(state: &AppState, id: &str, sid: &str) -> Result<Schedule, AppError> {
    let (hid, s) = (id.to_string(), sid.to_string());
    state
        .store
        .read(move |c| -> Result<_, AppError> {
            flows::require_live_host(c, &hid)?;
            Ok(find_schedule(&projections::config::schedules(c, &hid)?, &s))
        })
        .await?
        .ok_or_else(unknown_schedule)
}

async fn delete_schedule(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    sid: String,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    match flows::configure(
        state,
        actor(me),
        id,
        ConfigCommand::DeleteSchedule { schedule_id: sid },
    )
    .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/hosts/{id}/schedules?done=schedule-deleted"
        ))),
        Err(AppError::Domain(DomainError::UnknownSchedule)) => Err(unknown_schedule()),
        Err(e) => Err(e),
    }
}

/// `POST /hosts/{id}/schedules/{sid}/delete`.
pub async fn delete_schedule_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, sid)): Path<(String, String)>,
) -> Response {
    let r = delete_schedule(&state, &me, &id, sid).await;
    respond(&state, &me, r)
}

async fn toggle_schedule(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    sid: String,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let mut s = stored_schedule(state, id, &sid).await?;
    s.enabled = !s.enabled;
    let done = if s.enabled {
        "schedule-resumed"
    } else {
        "schedule-paused"
    };
    flows::configure(
        state,
        actor(me),
        id,
        ConfigCommand::SaveSchedule {
            schedule: s,
            create: false,
        },
    )
    .await?;
    Ok(see_other(&format!("/hosts/{id}/schedules?done={done}")))
}

/// `POST /hosts/{id}/schedules/{sid}/toggle`: pause or resume.
pub async fn toggle_schedule_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, sid)): Path<(String, String)>,
) -> Response {
    let r = toggle_schedule(&state, &me, &id, sid).await;
    respond(&state, &me, r)
}

async fn run_schedule(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    sid: String,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let s = stored_schedule(state, id, &sid).await?;
    let mut jobs = Vec::new();
    for gid in &s.source_group_ids {
        match flows::run_group(state, actor(me), id, gid, RunOverrides::default()).await {
            Ok(j) => jobs.push(j),
            Err(e) => {
                let (status, errors) = form_error(e, &[])?;
                let msg = errors.get("").unwrap_or("The run could not start.");
                let msg = if jobs.is_empty() {
                    msg.to_string()
                } else {
                    format!("{msg} ({} of the groups started.)", jobs.len())
                };
                return render_schedules(state, me, id, status, Some((sid, msg)), None, None).await;
            }
        }
    }
    match jobs.first() {
        Some(j) => Ok(see_other(&format!("/jobs/{j}"))),
        None => Ok(see_other(&format!("/hosts/{id}/schedules"))),
    }
}

/// `POST /hosts/{id}/schedules/{sid}/run`: each of its groups now (paused or not), landing
/// on the first job.
pub async fn run_schedule_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, sid)): Path<(String, String)>,
) -> Response {
    let r = run_schedule(&state, &me, &id, sid).await;
    respond(&state, &me, r)
}

// ---------------------------------------------------------------------------------------
// Repository

#[derive(Default)]
struct RepoFb {
    connection: Option<Typed>,
    bandwidth: Option<Typed>,
    maintenance: Option<Typed>,
    admin: Option<Typed>,
    errors: Errors,
    saved: Option<&'static str>,
    /// The page's query (`as_of`).
    query: Option<String>,
}

async fn render_repo(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    status: StatusCode,
    fb: RepoFb,
) -> Result<Response, AppError> {
    let q = fb.query.as_deref();
    let l = load(state, host_id, q, |c, hid| {
        Ok((
            projections::config::repo_status(c, hid)?.unwrap_or_default(),
            projections::config::pending_runs(c, hid, false)?,
            projections::config::groups(c, hid)?,
        ))
    })
    .await?;
    let settings = l.settings.clone().unwrap_or(HostSettings {
        schedule_version: 0,
        applied_version: 0,
        maintenance: Default::default(),
        bandwidth: Default::default(),
        default_has_pre_hook: false,
        default_has_post_hook: false,
        has_admin_credentials: false,
    });
    let stored = match crate::hosts::redacted_credentials(state, host_id).await {
        Ok(c) => Some(c),
        Err(AppError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let mut connection = fb.connection.unwrap_or_else(|| {
        let mut t = Typed::default();
        if let Some(c) = &stored {
            t.set("repo_url", &c.repo_url);
            t.set("repo_username", c.repo_username.clone().unwrap_or_default());
        }
        t
    });
    if stored.as_ref().is_some_and(|c| c.has_password) {
        connection.set("has_password", "on");
    }
    let bandwidth = fb.bandwidth.unwrap_or_else(|| {
        let mut t = Typed::default();
        let b = settings.bandwidth;
        t.set(
            "up_kbps",
            b.up_kbps.map(|v| v.to_string()).unwrap_or_default(),
        );
        t.set(
            "down_kbps",
            b.down_kbps.map(|v| v.to_string()).unwrap_or_default(),
        );
        t
    });
    let maintenance = fb.maintenance.unwrap_or_else(|| {
        let m = &settings.maintenance;
        let mut t = Typed::default();
        t.set("forget_cadence", &m.forget_cadence);
        t.set("prune_cadence", &m.prune_cadence);
        t.set("check_cadence", &m.check_cadence);
        t.set("check_subset_pct", m.check_subset_pct.to_string());
        if m.enabled {
            t.set("enabled", "on");
        }
        t
    });
    let admin = if is_admin(me) && l.seq.is_none() {
        let view = flows::admin_credentials_view(state, host_id).await?;
        let mut t = fb.admin.unwrap_or_else(|| {
            let mut t = Typed::default();
            t.set("repo_url", view.repo_url.clone().unwrap_or_default());
            t.set(
                "repo_username",
                view.repo_username.clone().unwrap_or_default(),
            );
            t
        });
        if view.configured {
            t.set("configured", "on");
        }
        Some(t)
    } else {
        None
    };
    let csrf = state.csrf.token_for(&me.token);
    let (repo_status, pending, groups) = &l.data;
    let page = pages::RepoPage {
        chrome: l.chrome(state),
        status: repo_status,
        settings: &settings,
        pending,
        groups,
        connection: &connection,
        bandwidth: &bandwidth,
        maintenance: &maintenance,
        admin_credentials: admin.as_ref(),
        errors: &fb.errors,
        saved: fb.saved,
        can_manage: can_manage(me) && l.seq.is_none(),
        is_admin: is_admin(me) && l.seq.is_none(),
        csrf: &csrf,
    };
    let v = page_viewer(state, me, l.seq, &format!("/hosts/{host_id}/repo"), q).await?;
    Ok(html(status, pages::repo_page(&v, &page)))
}

/// `GET /hosts/{id}/repo`.
pub async fn repo_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let fb = RepoFb {
        saved: saved_form(q.as_deref()),
        query: q,
        ..Default::default()
    };
    let r = render_repo(&state, &me, &id, StatusCode::OK, fb).await;
    respond(&state, &me, r)
}

/// Prefixes a form's messages with its name (`bandwidth.up_kbps`, `ops.`).
fn scoped(form: &str, errors: Errors) -> Errors {
    Errors(
        errors
            .0
            .into_iter()
            .map(|(k, m)| (format!("{form}.{k}"), m))
            .collect(),
    )
}

fn credentials_input(t: &Typed) -> Result<CredentialsInput, DomainError> {
    CredentialsInput::parse(
        t.get("repo_url"),
        Some(t.get("repo_username")),
        Some(t.get("repo_password")),
    )
}

const CREDENTIAL_FIELDS: &[&str] = &["repo_url", "repo_username", "repo_password"];

fn without_password(mut t: Typed) -> Typed {
    t.0.retain(|(k, _)| k != "repo_password");
    t
}

async fn save_connection(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let result = match credentials_input(&t) {
        Ok(input) => crate::hosts::change_credentials(state, &me.user.user_id, id, input)
            .await
            .map(|_| ()),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/hosts/{id}/repo?saved=connection#connection"
        ))),
        Err(e) => {
            let (status, errors) = form_error(e, CREDENTIAL_FIELDS)?;
            let fb = RepoFb {
                connection: Some(without_password(t)),
                errors: scoped("connection", errors),
                ..Default::default()
            };
            render_repo(state, me, id, status, fb).await
        }
    }
}

/// `POST /hosts/{id}/repo/connection`: URL, user, password (empty keeps the stored one).
pub async fn connection_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_connection(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

async fn save_bandwidth(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let mut errors = Errors::default();
    let cap = |name: &str, errors: &mut Errors| match t.get(name).trim() {
        "" => None,
        v => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.add(
                    name,
                    "Must be a whole number of KiB/s, or empty for unlimited",
                );
                None
            }
        },
    };
    let bw = domain::sources::Bandwidth {
        up_kbps: cap("up_kbps", &mut errors),
        down_kbps: cap("down_kbps", &mut errors),
    };
    let fb = move || RepoFb {
        bandwidth: Some(t),
        ..Default::default()
    };
    let cmd = ConfigCommand::SetBandwidth(bw);
    save_setting(
        state,
        me,
        id,
        ("bandwidth", &["up_kbps", "down_kbps"]),
        cmd,
        errors,
        fb,
    )
    .await
}

/// `POST /hosts/{id}/repo/bandwidth`: host-wide caps, empty for unlimited.
pub async fn bandwidth_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_bandwidth(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

async fn save_maintenance(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let mut errors = Errors::default();
    let pct = match t.get("check_subset_pct").trim() {
        "" => 0,
        v => v.parse::<u8>().unwrap_or_else(|_| {
            errors.add("check_subset_pct", "Must be a whole number from 0 to 100");
            0
        }),
    };
    let m = domain::sources::Maintenance {
        forget_cadence: t.get("forget_cadence").trim().to_string(),
        prune_cadence: t.get("prune_cadence").trim().to_string(),
        check_cadence: t.get("check_cadence").trim().to_string(),
        check_subset_pct: pct,
        enabled: t.checked("enabled"),
    };
    let fb = move || RepoFb {
        maintenance: Some(t),
        ..Default::default()
    };
    let cmd = ConfigCommand::SetMaintenance(m);
    let fields = [
        "forget_cadence",
        "prune_cadence",
        "check_cadence",
        "check_subset_pct",
    ];
    save_setting(state, me, id, ("maintenance", &fields), cmd, errors, fb).await
}

/// Saves a settings form of the Repository page through the host-config aggregate, unless
/// the form already has messages: back to the form's anchor once saved, or the page again
/// with what was typed (`fb`) and each message next to its field. `form` is the form's key
/// (its anchor, `?saved=` and the scope of its messages) and its fields.
async fn save_setting(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    (key, fields): (&str, &[&str]),
    cmd: ConfigCommand,
    mut errors: Errors,
    fb: impl FnOnce() -> RepoFb,
) -> Result<Response, AppError> {
    let status = if errors.is_empty() {
        match flows::configure(state, actor(me), id, cmd).await {
            Ok(_) => return Ok(see_other(&format!("/hosts/{id}/repo?saved={key}#{key}"))),
            Err(e) => {
                let (status, errs) = form_error(e, fields)?;
                errors = errs;
                status
            }
        }
    } else {
        StatusCode::BAD_REQUEST
    };
    let fb = RepoFb {
        errors: scoped(key, errors),
        ..fb()
    };
    render_repo(state, me, id, status, fb).await
}

/// `POST /hosts/{id}/repo/maintenance`: cadences, check subset, on/off.
pub async fn maintenance_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_maintenance(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

/// Starts a repository operation; lands on its job (or the Jobs tab for several).
async fn repo_op(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    kind: JobKind,
    form: &str,
) -> Result<Response, AppError> {
    match flows::run_repo_op(state, actor(me), id, kind, RepoOpBody::default()).await {
        Ok(ids) => match ids.as_slice() {
            [one] => Ok(see_other(&format!("/jobs/{one}"))),
            _ => Ok(see_other(&format!("/hosts/{id}/jobs"))),
        },
        Err(e) => {
            let (status, errors) = match e {
                AppError::Domain(DomainError::Invalid { message, .. }) => {
                    let mut errors = Errors::default();
                    errors.add("", capitalized(&message));
                    (StatusCode::BAD_REQUEST, errors)
                }
                e => form_error(e, &[])?,
            };
            let fb = RepoFb {
                errors: scoped(form, errors),
                ..Default::default()
            };
            render_repo(state, me, id, status, fb).await
        }
    }
}

async fn run_op(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(EDITORS)?;
    let kind = match t.get("op") {
        "forget" => JobKind::Forget,
        "prune" => JobKind::Prune,
        "check" => JobKind::Check,
        "unlock" => JobKind::Unlock,
        _ => {
            let mut errors = Errors::default();
            errors.add("ops.", "Pick forget, prune, check or unlock.");
            let fb = RepoFb {
                errors,
                ..Default::default()
            };
            return render_repo(state, me, id, StatusCode::BAD_REQUEST, fb).await;
        }
    };
    repo_op(state, me, id, kind, "ops").await
}

/// `POST /hosts/{id}/repo/run` with `op` = forget, prune, check or unlock.
pub async fn run_op_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = run_op(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

async fn reinit(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let hid = id.to_string();
    let host = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(projections::hosts::get(c, &hid)?) })
        .await?
        .ok_or_else(|| AppError::NotFound("This host does not exist, or it was deleted.".into()))?;
    if t.get("confirm").trim() != host.hostname {
        let mut errors = Errors::default();
        errors.add(
            "init.confirm",
            format!("Type {} exactly to re-run init", host.hostname),
        );
        let fb = RepoFb {
            errors,
            ..Default::default()
        };
        return render_repo(state, me, id, StatusCode::BAD_REQUEST, fb).await;
    }
    repo_op(state, me, id, JobKind::Init, "init").await
}

/// `POST /hosts/{id}/repo/init`: the danger zone, with the hostname typed (admins).
pub async fn init_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = reinit(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

async fn save_admin_credentials(
    state: &AppState,
    me: &CurrentUser,
    id: &str,
    t: Option<Typed>,
) -> Result<Response, AppError> {
    me.require(ADMINS)?;
    let result = match &t {
        None => flows::set_admin_credentials(state, actor(me), id, None).await,
        Some(t) => match credentials_input(t) {
            Ok(input) => flows::set_admin_credentials(state, actor(me), id, Some(input)).await,
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/hosts/{id}/repo?saved=admin#admin-credentials"
        ))),
        Err(e) => {
            let (status, errors) = form_error(e, CREDENTIAL_FIELDS)?;
            let fb = RepoFb {
                admin: t.map(without_password),
                errors: scoped("admin", errors),
                ..Default::default()
            };
            render_repo(state, me, id, status, fb).await
        }
    }
}

/// `POST /hosts/{id}/repo/admin-credentials`: the full-access credential (admins).
pub async fn admin_credentials_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = save_admin_credentials(&state, &me, &id, Some(typed(form))).await;
    respond(&state, &me, r)
}

/// `POST /hosts/{id}/repo/admin-credentials/delete` (admins).
pub async fn delete_admin_credentials_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    let r = save_admin_credentials(&state, &me, &id, None).await;
    respond(&state, &me, r)
}

// ---------------------------------------------------------------------------------------
// Jobs

/// `GET /hosts/{id}/jobs` *(as_of)*.
pub async fn jobs_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let r = async {
        let l = load(&state, &id, q.as_deref(), |c, hid| {
            Ok((
                projections::jobs::list_for_host(c, hid, 200)?,
                projections::config::groups(c, hid)?,
            ))
        })
        .await?;
        let (jobs, groups): &(Vec<projections::jobs::Job>, Vec<GroupView>) = &l.data;
        let page = pages::JobsPage {
            chrome: l.chrome(&state),
            jobs,
            groups,
        };
        let path = format!("/hosts/{id}/jobs");
        let v = page_viewer(&state, &me, l.seq, &path, q.as_deref()).await?;
        Ok(html(StatusCode::OK, pages::jobs_page(&v, &page)))
    }
    .await;
    respond(&state, &me, r)
}
