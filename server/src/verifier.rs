//! Keeps the hash chain checked in the background, so pages can say "verified through seq N"
//! without walking a million rows per request: a full walk at start and every ten minutes
//! (an edit in the middle shows up), an incremental one after new commits.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::envelope::{check_link, GENESIS_HASH};
use rusqlite::Connection;
use serde::Serialize;

use crate::http::AppState;
use crate::store::{query_events, EventQuery, StoreError};

/// What the verifier knows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ChainState {
    /// Every row up to here links correctly.
    pub verified_seq: i64,
    /// The hash at `verified_seq`.
    pub verified_hash: String,
    /// False once a broken link was found.
    pub ok: bool,
    /// The first bad seq, when broken.
    pub broken_at: Option<i64>,
    /// Why.
    pub reason: Option<String>,
    /// When the last walk ended (RFC 3339).
    pub checked_at: Option<String>,
}

/// Shared chain state.
#[derive(Default)]
pub struct ChainStatus(Mutex<ChainState>);

impl ChainStatus {
    /// A copy of the state.
    pub fn get(&self) -> ChainState {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Walks the chain from `from` (seq, hash) to the head. Blocking.
/// Ok(head) when every link holds; Err((last good seq, its hash, bad seq, why)) otherwise.
type Walked = Result<(i64, String), (i64, String, i64, String)>;

fn walk(conn: &Connection, from: (i64, String)) -> Result<Walked, StoreError> {
    let (mut seq, mut hash) = from;
    loop {
        let batch = query_events(
            conn,
            &EventQuery {
                after: Some(seq),
                limit: Some(10_000),
                ..Default::default()
            },
        )?;
        if batch.is_empty() {
            return Ok(Ok((seq, hash)));
        }
        for e in batch {
            let prev = if seq == 0 {
                None
            } else {
                Some((seq, hash.as_str()))
            };
            if let Err(f) = check_link(prev, &e) {
                return Ok(Err((seq, hash, e.seq, format!("{f:?}"))));
            }
            seq = e.seq;
            hash = e.hash;
        }
    }
}

/// Runs until shutdown.
pub async fn run(state: AppState) {
    let mut committed = state.store.subscribe();
    let shutdown = state.shutdown.clone();
    let mut last_full: Option<Instant> = None;
    loop {
        let full = last_full.is_none_or(|t| t.elapsed() > Duration::from_secs(600));
        let status = state.chain.clone();
        let now = state.clock.now().to_string();
        let r = state
            .store
            .read(move |c| -> Result<(), StoreError> {
                let cur = status.get();
                if !full && !cur.ok {
                    return Ok(());
                }
                let from = if full || cur.verified_hash.is_empty() {
                    (0, GENESIS_HASH.to_string())
                } else {
                    (cur.verified_seq, cur.verified_hash.clone())
                };
                let result = walk(c, from)?;
                let mut s = status.0.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok((seq, hash)) => {
                        s.verified_seq = seq;
                        s.verified_hash = hash;
                        s.ok = true;
                        s.broken_at = None;
                        s.reason = None;
                    }
                    Err((good_seq, good_hash, seq, reason)) => {
                        tracing::error!(seq, reason, "the event log's hash chain is broken");
                        s.verified_seq = good_seq;
                        s.verified_hash = good_hash;
                        s.ok = false;
                        s.broken_at = Some(seq);
                        s.reason = Some(reason);
                    }
                }
                s.checked_at = Some(now);
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "chain verification failed to run");
        }
        if full {
            last_full = Some(Instant::now());
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            r = committed.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                    return;
                }
                // Let a burst of commits settle.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
