//! Which hosts have a live socket, and when each was last heard from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::protocol::{ConfigUpdate, ServerMessage};
use tokio::sync::mpsc;

/// Something to send down one agent's socket.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame.
    Frame(String),
    /// An error frame, then close.
    Close {
        /// Error code.
        code: &'static str,
        /// Human text.
        message: String,
    },
}

struct Entry {
    conn_id: u64,
    tx: Option<mpsc::Sender<Outgoing>>,
    last_seen: Instant,
}

/// The live connections. Short critical sections only: a slow agent never holds the lock.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    next_id: AtomicU64,
    /// Questions to agents waiting for their answers, and the agents' user ids.
    pub calls: crate::restore::AgentCalls,
}

/// Per-socket outgoing queue size. A full queue means the agent is not reading; frames to it
/// are dropped (the next hello resends what matters).
pub const QUEUE: usize = 64;

impl Registry {
    /// Registers a new socket for a host (replacing any older one, which is told to close).
    /// Returns the connection id to pass to [`Registry::disconnected`].
    pub fn connect(&self, host_id: &str, tx: mpsc::Sender<Outgoing>) -> u64 {
        let conn_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let old = self.entries.lock().ok().and_then(|mut m| {
            m.insert(
                host_id.to_string(),
                Entry {
                    conn_id,
                    tx: Some(tx),
                    last_seen: Instant::now(),
                },
            )
        });
        if let Some(Entry { tx: Some(old), .. }) = old {
            let _ = old.try_send(Outgoing::Close {
                code: "replaced",
                message: "another connection of this agent took over".into(),
            });
        }
        conn_id
    }

    /// A frame arrived: the host is alive.
    pub fn touch(&self, host_id: &str) {
        if let Ok(mut m) = self.entries.lock() {
            if let Some(e) = m.get_mut(host_id) {
                e.last_seen = Instant::now();
            }
        }
    }

    /// The socket `conn_id` closed. The host keeps its last-seen time, so the sweeper still
    /// gives it the full grace period to reconnect.
    pub fn disconnected(&self, host_id: &str, conn_id: u64) {
        if let Ok(mut m) = self.entries.lock() {
            if let Some(e) = m.get_mut(host_id) {
                if e.conn_id == conn_id {
                    e.tx = None;
                }
            }
        }
    }

    /// Hosts the model shows online that have no entry (e.g. after a server restart) get one,
    /// as if seen now: they have the grace period to reconnect.
    pub fn adopt(&self, host_ids: impl IntoIterator<Item = String>) {
        if let Ok(mut m) = self.entries.lock() {
            for id in host_ids {
                m.entry(id).or_insert(Entry {
                    conn_id: 0,
                    tx: None,
                    last_seen: Instant::now(),
                });
            }
        }
    }

    /// Hosts silent for longer than `after`. Disconnected ones are forgotten; connected but
    /// silent ones are told to close (a half-open socket).
    pub fn take_silent(&self, after: Duration) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(mut m) = self.entries.lock() {
            m.retain(|id, e| {
                if e.last_seen.elapsed() <= after {
                    return true;
                }
                out.push(id.clone());
                if let Some(tx) = &e.tx {
                    let _ = tx.try_send(Outgoing::Close {
                        code: "silent",
                        message: format!("no frame for more than {} s", after.as_secs()),
                    });
                }
                false
            });
        }
        out
    }

    /// Hosts with a live socket.
    pub fn connected_ids(&self) -> Vec<String> {
        self.entries
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, e)| e.tx.is_some())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the host has a live socket.
    pub fn is_connected(&self, host_id: &str) -> bool {
        self.entries
            .lock()
            .map(|m| m.get(host_id).is_some_and(|e| e.tx.is_some()))
            .unwrap_or(false)
    }

    /// When the host was last heard from, as seconds ago.
    pub fn seconds_since_seen(&self, host_id: &str) -> Option<u64> {
        self.entries
            .lock()
            .ok()?
            .get(host_id)
            .filter(|e| e.tx.is_some())
            .map(|e| e.last_seen.elapsed().as_secs())
    }

    fn sender(&self, host_id: &str) -> Option<mpsc::Sender<Outgoing>> {
        self.entries.lock().ok()?.get(host_id)?.tx.clone()
    }

    /// Queues something for the host's socket; false when it is not connected or not reading.
    pub fn send(&self, host_id: &str, out: Outgoing) -> bool {
        match self.sender(host_id) {
            Some(tx) => tx.try_send(out).is_ok(),
            None => false,
        }
    }

    /// Sends new credentials to the host if it is connected.
    pub fn push_config(&self, host_id: &str, update: &ConfigUpdate) {
        if let Some(tx) = self.sender(host_id) {
            let frame = ServerMessage::ConfigUpdate(update.clone())
                .to_frame(uuid::Uuid::now_v7().to_string(), None);
            if tx.try_send(Outgoing::Frame(frame)).is_err() {
                tracing::warn!(
                    host_id,
                    "agent queue full: credentials will be sent on its next hello"
                );
            }
        }
    }

    /// Tells the host's socket to close with an error frame, and forgets it.
    pub fn disconnect(&self, host_id: &str, code: &'static str, message: &str) {
        let entry = self.entries.lock().ok().and_then(|mut m| m.remove(host_id));
        if let Some(Entry { tx: Some(tx), .. }) = entry {
            let _ = tx.try_send(Outgoing::Close {
                code,
                message: message.to_string(),
            });
        }
    }
}
