//! The restore wizard and the snapshot comparison pages. The flows live in
//! [`crate::restore`]; this module turns forms into requests and answers into pages. Like
//! every form, a refused one comes back with what was picked and typed, and each message
//! next to its field.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use domain::jobs::minimal_restore_paths;
use domain::DomainError;
use projections::hosts::Host;
use projections::jobs::SnapshotView;
use web::host::{Errors, Typed};
use web::restore::{
    self as pages, parse_pick, review_rows, review_warnings, DiffResult, Listing, TargetHost,
};

use super::error::AppError;
use super::extract::{CurrentUser, MaybeUser};
use super::pages::{can_manage, html, page_viewer, query_get, query_pairs};
use super::sources_pages::{form_error, load, respond, see_other, typed, Pairs};
use super::AppState;
use crate::restore::{self as flows, RestoreRequest};

/// Entries per directory page (the tree API pages the same way for the script).
const TREE_PAGE: u64 = 200;

const RESTORE_FIELDS: &[&str] = &["paths", "target_path", "target_host_id", "overwrite"];

/// A host as a restore target, with what its agent and restic can do now.
fn target_host(state: &AppState, h: &Host) -> TargetHost {
    TargetHost {
        id: h.id.clone(),
        hostname: h.hostname.clone(),
        online: state.agents.is_connected(&h.id),
        agent_uid: state.agents.calls.uid(&h.id),
        overwrite_policies: flows::overwrite_policies(&h.restic_version),
    }
}

/// The hosts a restore can go to: this one first, then the others by name.
fn targets(state: &AppState, this: &Host, all: &[Host]) -> Vec<TargetHost> {
    std::iter::once(target_host(state, this))
        .chain(
            all.iter()
                .filter(|h| h.id != this.id)
                .map(|h| target_host(state, h)),
        )
        .collect()
}

/// The snapshot a page names (a full id, or a prefix of 8 or more that names one).
fn find_snapshot<'a>(snapshots: &'a [SnapshotView], id: &str) -> Option<&'a SnapshotView> {
    match flows::matching_snapshots(snapshots, id).as_slice() {
        [one] if id.len() >= 8 || one.id == id => Some(one),
        _ => None,
    }
}

type WizardData = (Vec<SnapshotView>, Vec<Host>);

fn load_wizard_data(c: &rusqlite::Connection, hid: &str) -> Result<WizardData, AppError> {
    Ok((
        projections::jobs::snapshots(c, hid)?,
        projections::hosts::list(c)?,
    ))
}

/// Everything the wizard step renders from: the page's query or the form sent back.
struct Wizard<'a> {
    snapshot: Option<&'a str>,
    path: &'a str,
    offset: u64,
    typed: Typed,
    errors: Errors,
    status: StatusCode,
}

async fn render_wizard(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    query: Option<&str>,
    w: Wizard<'_>,
) -> Result<Response, AppError> {
    let l = load(state, host_id, query, load_wizard_data).await?;
    let (snapshots, hosts) = &l.data;
    let in_past = l.seq.is_some();
    let selected = match w.snapshot {
        Some(id) if !in_past => Some(find_snapshot(snapshots, id).ok_or_else(|| {
            AppError::NotFound(format!(
                "{} has no snapshot {id}: choose one from its list.",
                l.host.hostname
            ))
        })?),
        _ => None,
    };
    let tree = match selected {
        Some(s) => Some(
            flows::tree(
                state,
                host_id,
                &s.id,
                Some(w.path),
                Some(w.offset),
                Some(TREE_PAGE),
            )
            .await
            .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    let listing = tree.as_ref().map(|t| match t {
        Ok(page) => Listing::Shown {
            path: &page.path,
            entries: &page.entries,
            total: page.total,
            offset: page.offset,
            limit: page.limit,
        },
        Err(why) => Listing::Failed(why),
    });
    let targets = targets(state, &l.host, hosts);
    let csrf = state.csrf.token_for(&me.token);
    let page = pages::RestorePage {
        chrome: l.chrome(state),
        snapshots,
        selected,
        listing,
        targets: &targets,
        typed: &w.typed,
        errors: &w.errors,
        csrf: &csrf,
        can_manage: can_manage(me),
    };
    let path = format!("/hosts/{host_id}/restore");
    let v = page_viewer(state, me, l.seq, &path, query).await?;
    Ok(html(w.status, pages::restore_page(&v, &page)))
}

/// `GET /hosts/{id}/restore[?snapshot=&path=&offset=]`: the wizard.
pub async fn restore_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let pairs = query_pairs(q.as_deref());
    let r = async {
        let offset = match query_get(&pairs, "offset") {
            None => 0,
            Some(o) => o.parse::<u64>().map_err(|_| {
                AppError::from(DomainError::invalid("offset", "must be a whole number"))
            })?,
        };
        let w = Wizard {
            snapshot: query_get(&pairs, "snapshot"),
            path: query_get(&pairs, "path").unwrap_or("/"),
            offset,
            typed: Typed::default(),
            errors: Errors::default(),
            status: StatusCode::OK,
        };
        render_wizard(&state, &me, &id, q.as_deref(), w).await
    }
    .await;
    respond(&state, &me, r)
}

/// The wizard's form as a restore request, and the picked paths owned by root.
struct Sent {
    request: RestoreRequest,
    root_owned: Vec<String>,
}

fn read_form(t: &Typed, errors: &mut Errors) -> Sent {
    let mut all: Vec<String> = Vec::new();
    let mut root = Vec::new();
    for v in t.all("pick") {
        let (uid, path) = parse_pick(v);
        if uid == Some(0) {
            root.push(path.trim_end_matches('/').to_string());
        }
        all.push(path.to_string());
    }
    all.extend(
        t.get("typed_paths")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string),
    );
    let paths = minimal_restore_paths(&all);
    let root_owned = root.into_iter().filter(|r| paths.contains(r)).collect();
    let target_path = if t.get("location") == "path" {
        let p = t.get("target_path").trim();
        if p.is_empty() {
            errors.add(
                "target_path",
                "Type the directory to restore into, or choose the original location.",
            );
        }
        Some(p.to_string())
    } else {
        None
    };
    Sent {
        request: RestoreRequest {
            snapshot_id: t.get("snapshot_id").to_string(),
            paths,
            target_host_id: Some(t.get("target_host_id").to_string()).filter(|s| !s.is_empty()),
            target_path,
            overwrite: Some(t.get("overwrite").to_string()).filter(|s| !s.is_empty()),
        },
        root_owned,
    }
}

/// The form's fields to send again, without `step` and the CSRF token (ticks stay ticks).
fn back_to_wizard(mut t: Typed) -> Typed {
    t.0.retain(|(k, _)| k != "step" && k != "csrf_token");
    t
}

/// A refused restore: the messages for the form, or the error to show as a page.
fn refused(e: AppError) -> Result<(StatusCode, Errors), AppError> {
    match e {
        AppError::Domain(DomainError::HostOffline) => {
            let mut errors = Errors::default();
            errors.add(
                "target_host_id",
                "This host's agent is offline: the host that restores must be connected.",
            );
            Ok((StatusCode::CONFLICT, errors))
        }
        AppError::Domain(DomainError::Invalid {
            field: "snapshot_id",
            message,
        }) => {
            let mut errors = Errors::default();
            errors.add("", format!("The snapshot id {message}."));
            Ok((StatusCode::BAD_REQUEST, errors))
        }
        e => form_error(e, RESTORE_FIELDS),
    }
}

async fn submit(
    state: &AppState,
    me: &CurrentUser,
    host_id: &str,
    t: Typed,
) -> Result<Response, AppError> {
    me.require(&["admin", "operator"])?;
    let step = t.get("step").to_string();
    let snapshot = t.get("snapshot_id").to_string();
    if snapshot.is_empty() {
        return Err(
            DomainError::invalid("snapshot_id", "is required: choose a snapshot first").into(),
        );
    }
    let mut errors = Errors::default();
    let sent = read_form(&t, &mut errors);
    let wizard = |typed: Typed, errors: Errors, status: StatusCode| Wizard {
        snapshot: None,
        path: "/",
        offset: 0,
        typed,
        errors,
        status,
    };
    if step == "edit" || !errors.is_empty() {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        let w = Wizard {
            snapshot: Some(&snapshot),
            ..wizard(back_to_wizard(t.clone()), errors, status)
        };
        return render_wizard(state, me, host_id, None, w).await;
    }
    if step == "confirm" {
        let actor = domain::Actor::User(me.user.user_id.clone());
        return match flows::create(state, actor, host_id, sent.request).await {
            Ok(job) => Ok(see_other(&format!("/jobs/{job}"))),
            Err(e) => {
                let (status, errors) = refused(e)?;
                let w = Wizard {
                    snapshot: Some(&snapshot),
                    ..wizard(back_to_wizard(t), errors, status)
                };
                render_wizard(state, me, host_id, None, w).await
            }
        };
    }
    // Review.
    let plan = match flows::plan(state, host_id, sent.request).await {
        Ok(p) => p,
        Err(e) => {
            let (status, errors) = refused(e)?;
            let w = Wizard {
                snapshot: Some(&snapshot),
                ..wizard(back_to_wizard(t), errors, status)
            };
            return render_wizard(state, me, host_id, None, w).await;
        }
    };
    let l = load(state, host_id, None, |c, hid| {
        Ok(projections::jobs::snapshots(c, hid)?)
    })
    .await?;
    let snap = find_snapshot(&l.data, &plan.snapshot_id)
        .ok_or_else(|| AppError::NotFound("The snapshot is gone.".into()))?;
    let target = target_host(state, &plan.target);
    let rows = review_rows(&plan.paths, &plan.target_path, &sent.root_owned);
    let warnings = review_warnings(
        &target,
        &plan.target_path,
        &sent.root_owned,
        plan.overwrite.as_str(),
    );
    let carry = back_to_wizard(t);
    let csrf = state.csrf.token_for(&me.token);
    let page = pages::ReviewPage {
        chrome: l.chrome(state),
        snapshot: snap,
        target: &target,
        rows: &rows,
        target_path: &plan.target_path,
        overwrite: plan.overwrite.as_str(),
        warnings: &warnings,
        carry: &carry,
        csrf: &csrf,
    };
    let v = page_viewer(state, me, None, "", None).await?;
    Ok(html(StatusCode::OK, pages::review_page(&v, &page)))
}

/// `POST /hosts/{id}/restore`: `step=review` shows where everything lands, `step=confirm`
/// starts the job and opens its page, `step=edit` goes back to the wizard.
pub async fn restore_form(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    form: Pairs,
) -> Response {
    let r = submit(&state, &me, &id, typed(form)).await;
    respond(&state, &me, r)
}

/// `GET /hosts/{id}/diff?from=&to=`: what changed between two snapshots.
pub async fn diff_page(
    State(state): State<AppState>,
    MaybeUser(me): MaybeUser,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let Some(me) = me else {
        return see_other("/login");
    };
    let pairs = query_pairs(q.as_deref());
    let r = async {
        let l = load(&state, &id, q.as_deref(), |c, hid| {
            Ok(projections::jobs::snapshots(c, hid)?)
        })
        .await?;
        let from = query_get(&pairs, "from").unwrap_or("");
        let to = query_get(&pairs, "to").unwrap_or("");
        let mut error = None;
        // A past view shows the snapshots of then; comparing runs restic on the host now.
        let answer = if from.is_empty() || to.is_empty() || l.seq.is_some() {
            None
        } else if from == to {
            error = Some("Choose two different snapshots.");
            None
        } else {
            Some(
                flows::diff(&state, &id, Some(from), Some(to))
                    .await
                    .map_err(|e| e.to_string()),
            )
        };
        let result = answer.as_ref().map(|a| match a {
            Ok(v) => DiffResult::Shown {
                changes: &v.changes,
                stats: &v.stats,
                truncated: v.truncated,
            },
            Err(why) => DiffResult::Failed(why),
        });
        let page = pages::DiffPage {
            chrome: l.chrome(&state),
            snapshots: &l.data,
            from,
            to,
            result,
            error,
        };
        let path = format!("/hosts/{id}/diff");
        let v = page_viewer(&state, &me, l.seq, &path, q.as_deref()).await?;
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        Ok(html(status, pages::diff_page(&v, &page)))
    }
    .await;
    respond(&state, &me, r)
}
