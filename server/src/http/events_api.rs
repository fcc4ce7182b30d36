//! The audit view, the raw event stream and the chain head — all read from the log itself.

use axum::extract::State;
use axum::Json;
use domain::{RecordedEvent, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::AppError;
use super::extract::{AppQuery, CurrentUser};
use super::AppState;
use crate::store::{query_events, EventLog, EventQuery};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `GET /api/audit` query.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// `user:<id>`, `agent:<host>`, `system:<component>`.
    pub actor: Option<String>,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Host id.
    pub host: Option<String>,
    /// From (RFC 3339, inclusive).
    pub since: Option<String>,
    /// Until (RFC 3339, exclusive).
    pub until: Option<String>,
    /// Cursor: events after this seq.
    pub after: Option<i64>,
    /// Page size.
    pub limit: Option<usize>,
}

/// One event as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventView {
    seq: i64,
    #[serde(rename = "type")]
    event_type: String,
    stream: String,
    actor: String,
    occurred_at: String,
    data: Value,
}

impl EventView {
    /// The payload, pretty-printed.
    pub fn pretty_data(&self) -> String {
        serde_json::to_string_pretty(&self.data).unwrap_or_default()
    }

    /// (seq, type, stream, actor, occurred_at).
    pub fn parts(&self) -> (i64, &str, &str, &str, &str) {
        (
            self.seq,
            &self.event_type,
            &self.stream,
            &self.actor,
            &self.occurred_at,
        )
    }

    /// With the payload upcast to its current shape.
    pub fn from_recorded(e: RecordedEvent) -> Self {
        let data = domain::upcast::upcast(&e.event_type, e.schema_version, &e.data)
            .ok()
            .and_then(|d| serde_json::from_str(&d).ok())
            .or_else(|| serde_json::from_str(&e.data).ok())
            .unwrap_or(Value::Null);
        EventView {
            seq: e.seq,
            event_type: e.event_type,
            stream: e.stream,
            actor: e.actor,
            occurred_at: e.occurred_at,
            data,
        }
    }
}

fn time_param(field: &'static str, v: &Option<String>) -> Result<Option<String>, AppError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Timestamp>()
                .map(|t| t.to_string())
                .map_err(|_| domain::DomainError::invalid(field, "must be an RFC 3339 time").into())
        })
        .transpose()
}

fn limit_of(l: Option<usize>) -> Result<usize, AppError> {
    match l.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(domain::DomainError::invalid("limit", "must be at least 1").into()),
        n => Ok(n.min(MAX_LIMIT)),
    }
}

fn page(events: Vec<RecordedEvent>, limit: usize) -> Json<Value> {
    let next = if events.len() == limit {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    let events: Vec<EventView> = events.into_iter().map(EventView::from_recorded).collect();
    Json(json!({ "events": events, "next": next }))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// `GET /api/audit`: the log, filtered, cursor-paged by `after`.
pub async fn audit(
    State(state): State<AppState>,
    _me: CurrentUser,
    AppQuery(q): AppQuery<AuditQuery>,
) -> Result<Json<Value>, AppError> {
    let (events, limit) = audit_events(&state, q).await?;
    Ok(page(events, limit))
}

/// The events an audit query selects, and the page size used.
pub async fn audit_events(
    state: &AppState,
    q: AuditQuery,
) -> Result<(Vec<RecordedEvent>, usize), AppError> {
    let limit = limit_of(q.limit)?;
    let query = EventQuery {
        after: q.after,
        actor: non_empty(q.actor),
        event_type: non_empty(q.event_type),
        host: non_empty(q.host),
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        limit: Some(limit),
        ..Default::default()
    };
    let events = state
        .store
        .read(move |c| -> Result<_, AppError> { Ok(query_events(c, &query)?) })
        .await?;
    Ok((events, limit))
}

/// `GET /api/events` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/events`: the raw stream (admin).
pub async fn events(
    State(state): State<AppState>,
    me: CurrentUser,
    AppQuery(q): AppQuery<EventsQuery>,
) -> Result<Json<Value>, AppError> {
    me.require(&["admin"])?;
    let limit = limit_of(q.limit)?;
    let events = state.store.read_after(q.after.unwrap_or(0), limit).await?;
    Ok(page(events, limit))
}

/// `GET /api/events/head`: `{seq, hash}` of the last event.
pub async fn head(State(state): State<AppState>, _me: CurrentUser) -> Json<Value> {
    let h = state.store.head();
    Json(json!({ "seq": h.seq, "hash": h.hash }))
}

/// `GET /api/events/chain`: how far the hash chain is verified, and the head.
pub async fn chain(State(state): State<AppState>, _me: CurrentUser) -> Json<Value> {
    let c = state.chain.get();
    let h = state.store.head();
    Json(json!({
        "ok": c.ok,
        "verified_through": {"seq": c.verified_seq, "hash": c.verified_hash},
        "head": {"seq": h.seq, "hash": h.hash},
        "broken_at": c.broken_at,
        "reason": c.reason,
        "checked_at": c.checked_at,
    }))
}

/// `GET /api/audit/export`: the events an audit filter selects (no paging), as JSON lines
/// of the exact stored envelopes — evidence that `events verify` can check link by link.
pub async fn audit_export(
    State(state): State<AppState>,
    _me: CurrentUser,
    AppQuery(q): AppQuery<AuditQuery>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let query = EventQuery {
        after: q.after,
        actor: non_empty(q.actor),
        event_type: non_empty(q.event_type),
        host: non_empty(q.host),
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        limit: Some(q.limit.unwrap_or(1_000_000).clamp(1, 1_000_000)),
        ..Default::default()
    };
    let body = state
        .store
        .read(move |c| -> Result<Vec<u8>, AppError> {
            let mut out = Vec::new();
            for e in query_events(c, &query)? {
                serde_json::to_writer(&mut out, &e)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        })
        .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/x-ndjson"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"restic-manager-audit.jsonl\"",
            ),
        ],
        body,
    )
        .into_response())
}
