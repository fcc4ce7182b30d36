//! Marks hosts offline once they have been silent for `RM_OFFLINE_AFTER` seconds.

use std::time::Duration;

use domain::hosts::{self, HostCommand};
use domain::Actor;

use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::AppendRequest;

/// Runs until the server shuts down.
pub async fn run(state: AppState) {
    let after = Duration::from_secs(state.config.offline_after_secs.max(1));
    match state
        .store
        .read(|c| -> Result<_, AppError> { Ok(projections::hosts::online_ids(c)?) })
        .await
    {
        Ok(ids) => state.agents.adopt(ids),
        Err(e) => tracing::error!(error = %e, "sweeper could not read online hosts"),
    }
    let tick = (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.wait() => return,
        }
        for host_id in state.agents.take_silent(after) {
            let reason = format!("no contact for more than {} s", after.as_secs());
            if let Err(e) = mark_offline(&state, &host_id, reason.clone()).await {
                tracing::warn!(host_id, error = %e, "could not mark host offline");
            }
            if let Err(e) = crate::jobs::mark_lost(&state, &host_id, &reason).await {
                tracing::warn!(host_id, error = %e, "could not mark the host's jobs lost");
            }
        }
    }
}

/// Appends `HostWentOffline` if the host is online.
pub async fn mark_offline(state: &AppState, host_id: &str, reason: String) -> Result<(), AppError> {
    let id = host_id.to_string();
    state
        .store
        .write(move |uow| -> Result<(), AppError> {
            let s = projections::hosts::load_state(uow.conn(), &id)?;
            let events = match hosts::decide(
                &s,
                &HostCommand::MarkOffline {
                    host_id: id.clone(),
                    reason,
                },
            ) {
                Ok(e) => e,
                Err(_) => return Ok(()),
            };
            if !events.is_empty() {
                uow.append(AppendRequest::new(
                    format!("host-{id}"),
                    Actor::System("sweeper".into()),
                    events,
                ))?;
                tracing::info!(host_id = %id, "host offline");
            }
            Ok(())
        })
        .await
}
