//! `GET /api/agents/ws`: one agent's socket.
//!
//! The bearer is checked before the upgrade (a refused agent gets a plain 401 with the JSON
//! error body, which it prints). The first frame must be `hello`; a protocol version the
//! server cannot speak gets an `error` frame naming the supported range, then a clean close.
//! After that, every bad frame gets an `error` frame and the session goes on: a bad agent can
//! never panic or stall the server.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use domain::hosts::{self, AgentFacts, HostCommand};
use domain::protocol::{
    self, AgentMessage, Envelope, ErrorFrame, FrameError, ServerMessage, VersionCheck,
    VersionRange, Welcome,
};
use domain::{Actor, DomainError};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::registry::{Outgoing, QUEUE};
use crate::hosts::BearerRefusal;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::AppendRequest;

/// How long a new socket may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

fn bearer_of(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(bearer) = bearer_of(&headers) else {
        return AppError::Unauthorized("agents authenticate with Authorization: Bearer <bearer>")
            .into_response();
    };
    let checked = state
        .store
        .read(move |c| -> Result<_, AppError> { crate::hosts::host_of_bearer(c, &bearer) })
        .await;
    let host_id = match checked {
        Ok(Ok(h)) => h,
        Ok(Err(BearerRefusal::Unknown)) => {
            return AppError::Unauthorized("unknown agent bearer: enrol this agent again")
                .into_response()
        }
        Ok(Err(BearerRefusal::Revoked)) => {
            return AppError::AgentRefused {
                code: "host_deleted",
                message: "this host was deleted from restic-manager; enrol it again to back it up"
                    .into(),
            }
            .into_response()
        }
        Err(e) => return e.into_response(),
    };
    // Small buffers: thousands of idle agents each hold one socket, and frames are small.
    ws.max_message_size(protocol::MAX_FRAME_BYTES * 4)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| session(state, host_id, socket))
}

fn error_frame(
    code: &str,
    message: impl Into<String>,
    re: Option<String>,
    supported: Option<VersionRange>,
) -> String {
    ServerMessage::Error(ErrorFrame {
        code: code.to_string(),
        message: message.into(),
        supported,
    })
    .to_frame(uuid::Uuid::now_v7().to_string(), re)
}

async fn close_with(socket: &mut WebSocket, frame: String) {
    let _ = socket.send(Message::Text(frame.into())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1008,
            reason: "".into(),
        })))
        .await;
}

/// Reads the hello. `None` means the socket was answered and should close.
async fn read_hello(socket: &mut WebSocket) -> Option<(Envelope, protocol::Hello)> {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) => {
            close_with(
                socket,
                error_frame(
                    "bad_frame",
                    "the first frame must be a text hello",
                    None,
                    None,
                ),
            )
            .await;
            return None;
        }
        Ok(_) => return None,
        Err(_) => {
            close_with(
                socket,
                error_frame("unexpected", "no hello within 10 s", None, None),
            )
            .await;
            return None;
        }
    };
    let env = match protocol::decode_envelope(&first) {
        Ok(e) => e,
        Err(e) => {
            close_with(socket, error_frame(e.code(), e.to_string(), None, None)).await;
            return None;
        }
    };
    let (code, word) = match protocol::check_version(env.v) {
        VersionCheck::Supported => ("", ""),
        VersionCheck::TooOld => ("protocol_too_old", "too old"),
        VersionCheck::TooNew => ("protocol_too_new", "too new"),
    };
    if !code.is_empty() {
        let r = VersionRange::supported();
        let msg = format!(
            "agent protocol v{} is {word} for this server, which speaks v{} to v{}: install a matching agent",
            env.v, r.min, r.max
        );
        close_with(
            socket,
            error_frame(code, msg, Some(env.id.clone()), Some(r)),
        )
        .await;
        return None;
    }
    match AgentMessage::from_envelope(&env) {
        Ok(AgentMessage::Hello(h)) => Some((env, h)),
        Ok(other) => {
            let m = format!("the first frame must be hello, not {}", other.msg_type());
            close_with(socket, error_frame("unexpected", m, Some(env.id), None)).await;
            None
        }
        Err(e) => {
            close_with(
                socket,
                error_frame(e.code(), e.to_string(), Some(env.id), None),
            )
            .await;
            None
        }
    }
}

async fn session(state: AppState, host_id: String, mut socket: WebSocket) {
    let Some((hello_env, hello)) = read_hello(&mut socket).await else {
        return;
    };
    let facts = AgentFacts {
        hostname: hosts::clean_fact(&hello.hostname),
        os: hosts::clean_fact(&hello.os),
        arch: hosts::clean_fact(&hello.arch),
        agent_version: hosts::clean_fact(&hello.agent_version),
        restic_version: hosts::clean_fact(&hello.restic_version),
        protocol_version: hello_env.v,
    };
    let id = host_id.clone();
    let vault = state.vault.clone();
    let connected = state
        .store
        .write(move |uow| -> Result<_, AppError> {
            let s = projections::hosts::load_state(uow.conn(), &id)?;
            let events = hosts::decide(
                &s,
                &HostCommand::Connect {
                    host_id: id.clone(),
                    facts,
                },
            )?;
            if !events.is_empty() {
                uow.append(AppendRequest::new(
                    format!("host-{id}"),
                    Actor::Agent(id.clone()),
                    events,
                ))?;
            }
            crate::hosts::config_update(&vault, uow.conn(), &id)
        })
        .await;
    let config = match connected {
        Ok(c) => c,
        Err(AppError::Domain(DomainError::HostDeleted)) => {
            close_with(
                &mut socket,
                error_frame(
                    "host_deleted",
                    DomainError::HostDeleted.to_string(),
                    None,
                    None,
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::error!(host_id, error = %e, "agent hello failed");
            close_with(
                &mut socket,
                error_frame(
                    "internal",
                    "the server could not record this connection",
                    None,
                    None,
                ),
            )
            .await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Outgoing>(QUEUE);
    let conn_id = state.agents.connect(&host_id, tx);
    crate::restore::hello(&state, &host_id, hello.uid);
    tracing::info!(host_id, "agent connected");

    let heartbeat_secs = (state.config.offline_after_secs / 3).clamp(1, protocol::HEARTBEAT_SECS);
    let welcome = ServerMessage::Welcome(Welcome {
        host_id: host_id.clone(),
        server_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: protocol::PROTOCOL_VERSION,
        heartbeat_secs,
    })
    .to_frame(uuid::Uuid::now_v7().to_string(), Some(hello_env.id.clone()));
    let (mut sink, mut stream) = socket.split();
    let mut ok = sink.send(Message::Text(welcome.into())).await.is_ok();
    if let (true, Some(update)) = (ok, config) {
        let frame =
            ServerMessage::ConfigUpdate(update).to_frame(uuid::Uuid::now_v7().to_string(), None);
        ok = sink.send(Message::Text(frame.into())).await.is_ok();
    }
    if let Err(e) = crate::jobs::redeliver(&state, &host_id).await {
        tracing::warn!(host_id, error = %e, "could not send undelivered jobs again");
    }
    if let Err(e) = crate::sources::push_schedules(&state, &host_id).await {
        tracing::warn!(host_id, error = %e, "could not send the schedule set");
    }
    if let Err(e) = crate::maintenance::drain(&state, &host_id).await {
        tracing::warn!(host_id, error = %e, "could not drain pending runs");
    }
    let shutdown = state.shutdown.clone();
    while ok {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    state.agents.touch(&host_id);
                    if let Some(reply) = handle_frame(&state, &host_id, &text).await {
                        ok = sink.send(Message::Text(reply.into())).await.is_ok();
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let f = error_frame("bad_frame", "frames are JSON text", None, None);
                    ok = sink.send(Message::Text(f.into())).await.is_ok();
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => state.agents.touch(&host_id),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(host_id, error = %e, "agent socket error");
                    break;
                }
            },
            out = rx.recv() => match out {
                Some(Outgoing::Frame(f)) => ok = sink.send(Message::Text(f.into())).await.is_ok(),
                Some(Outgoing::Close { code, message }) => {
                    let _ = sink.send(Message::Text(error_frame(code, message, None, None).into())).await;
                    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1008, reason: "".into() }))).await;
                    break;
                }
                None => break,
            },
            _ = shutdown.wait() => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                break;
            }
        }
    }
    state.agents.disconnected(&host_id, conn_id);
    tracing::info!(host_id, "agent disconnected");
}

/// Handles one frame after hello; returns the reply frame, if any.
async fn handle_frame(state: &AppState, host_id: &str, text: &str) -> Option<String> {
    let env = match protocol::decode_envelope(text) {
        Ok(e) => e,
        Err(e) => return Some(error_frame(e.code(), e.to_string(), None, None)),
    };
    let msg = match AgentMessage::from_envelope(&env) {
        Ok(m) => m,
        Err(e @ FrameError::UnknownType(_)) | Err(e @ FrameError::BadPayload { .. }) => {
            return Some(error_frame(e.code(), e.to_string(), Some(env.id), None))
        }
        Err(e) => return Some(error_frame(e.code(), e.to_string(), Some(env.id), None)),
    };
    let ack = |re: String| {
        Some(
            ServerMessage::Ack(protocol::Ack {})
                .to_frame(uuid::Uuid::now_v7().to_string(), Some(re)),
        )
    };
    let durable = |r: Result<(), AppError>, re: String| match r {
        Ok(()) if state.config.fault_drop_agent_acks => None,
        Ok(()) => ack(re),
        Err(e) => {
            tracing::warn!(host_id, error = %e, "could not record an agent message");
            Some(error_frame(
                "internal",
                "not recorded; send it again",
                Some(re),
                None,
            ))
        }
    };
    match msg {
        AgentMessage::Heartbeat(_) | AgentMessage::Ack(_) => None,
        AgentMessage::JobStarted(m) => {
            let r = crate::jobs::record_report(
                state,
                host_id,
                &env.id,
                &m.job_id,
                domain::jobs::JobReport::Started,
            )
            .await;
            durable(r, env.id)
        }
        AgentMessage::JobFinished(m) => {
            let job_id = m.job_id.clone();
            let report = crate::jobs::finished_report(host_id, m);
            let r = crate::jobs::record_report(state, host_id, &env.id, &job_id, report).await;
            durable(r, env.id)
        }
        AgentMessage::SchedulesApplied(m) => {
            let r = crate::sources::record_applied(state, host_id, &env.id, m.version).await;
            durable(r, env.id)
        }
        AgentMessage::JobScheduled(m) => {
            let r = match crate::sources::record_scheduled(state, host_id, &env.id, m).await {
                // A malformed fire is refused for good: acknowledge it so the outbox moves on.
                Err(AppError::Domain(e @ DomainError::Invalid { .. })) => {
                    tracing::warn!(host_id, error = %e, "refused a scheduled job");
                    Ok(())
                }
                r => r,
            };
            durable(r, env.id)
        }
        AgentMessage::SnapshotsReport(m) => {
            let r = crate::jobs::snapshots(state, host_id, &env.id, m).await;
            durable(r, env.id)
        }
        AgentMessage::JobProgress(m) => {
            if let Err(e) = crate::jobs::progress(state, host_id, m).await {
                tracing::warn!(host_id, error = %e, "progress not recorded");
            }
            None
        }
        AgentMessage::JobLog(m) => {
            if let Err(e) = crate::jobs::log(state, host_id, m).await {
                tracing::warn!(host_id, error = %e, "log lines not recorded");
            }
            None
        }
        AgentMessage::SnapshotLsResult(m) => {
            crate::restore::ls_answer(state, host_id, m);
            None
        }
        AgentMessage::SnapshotDiffResult(m) => {
            crate::restore::diff_answer(state, host_id, m);
            None
        }
        AgentMessage::Hello(_) => Some(error_frame(
            "unexpected",
            "hello was already received",
            Some(env.id),
            None,
        )),
        AgentMessage::ConfigApplied(c) => {
            let id = host_id.to_string();
            let command_id = format!("agent:{id}:{}", env.id);
            let recorded = state
                .store
                .write(move |uow| -> Result<(), AppError> {
                    let s = projections::hosts::load_state(uow.conn(), &id)?;
                    let events = hosts::decide(
                        &s,
                        &HostCommand::RecordApplied {
                            host_id: id.clone(),
                            version: c.version,
                        },
                    )?;
                    if !events.is_empty() {
                        uow.append(
                            AppendRequest::new(
                                format!("host-{id}"),
                                Actor::Agent(id.clone()),
                                events,
                            )
                            .command(command_id),
                        )?;
                    }
                    Ok(())
                })
                .await;
            if recorded.is_ok() {
                if let Err(e) = crate::jobs::auto_init(state, host_id).await {
                    tracing::warn!(host_id, error = %e, "could not queue the repository's init job");
                }
            }
            durable(recorded, env.id)
        }
    }
}
