//! `/install/agent.sh` and `/agent/binary/{os}/{arch}`: what the install command fetches.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::http::error::AppError;
use crate::http::extract::AppQuery;
use crate::http::AppState;

/// The systemd unit the script installs. Sandboxed: the agent may read everything (it backs
/// it up) but write only its state dir.
pub const SYSTEMD_UNIT: &str = include_str!("../assets/restic-manager-agent.service");

const SCRIPT: &str = include_str!("../assets/agent.sh");

/// `?token=`.
#[derive(Deserialize)]
pub struct ScriptQuery {
    token: String,
}

fn is_token(t: &str) -> bool {
    t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The install script with the server URL and token filled in.
pub fn render_script(base_url: &str, token: &str, cert_pin: &str) -> String {
    SCRIPT
        .replace("@SERVER@", base_url.trim_end_matches('/'))
        .replace("@TOKEN@", token)
        .replace("@CERT_PIN@", cert_pin)
        .replace("@UNIT@", SYSTEMD_UNIT.trim_end())
}

/// `GET /install/agent.sh?token=…`.
pub async fn script(
    State(state): State<AppState>,
    AppQuery(q): AppQuery<ScriptQuery>,
) -> Result<Response, AppError> {
    if !is_token(&q.token) {
        return Err(AppError::bad_request(
            "invalid_token",
            "token must be the 64 hex characters of an enrolment token",
        ));
    }
    let body = render_script(
        &state.base_url(),
        &q.token,
        state.tls_pin.as_deref().unwrap_or(""),
    );
    Ok((
        [(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")],
        body,
    )
        .into_response())
}

fn is_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `GET /agent/binary/{os}/{arch}`.
pub async fn binary(
    State(state): State<AppState>,
    Path((os, arch)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if !is_word(&os) || !is_word(&arch) {
        return Err(AppError::bad_request(
            "invalid_platform",
            "os and arch are words like linux and x86_64",
        ));
    }
    let dir = &state.config.agent_binaries_dir;
    let mut candidates = vec![dir
        .join(format!("{os}-{arch}"))
        .join("restic-manager-agent")];
    if os == std::env::consts::OS && arch == std::env::consts::ARCH {
        candidates.push(dir.join("restic-manager-agent"));
    }
    for path in candidates {
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return Ok((
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"restic-manager-agent\"",
                    ),
                ],
                Body::from(bytes),
            )
                .into_response());
        }
    }
    Err(AppError::NotFound(format!(
        "this server has no agent binary for {os}/{arch}"
    )))
}
