//! The durable outbox: messages that must not be lost wait here, one file each, until the
//! server acknowledges them by id. A crash, a kill or a dropped connection loses nothing;
//! after reconnecting the agent sends them again, in order, with the same ids, and the server
//! ignores the ones it already has.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A queued frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The frame's id (what the server's `ack` names).
    pub id: String,
    /// The frame text.
    pub frame: String,
}

/// The folder `<state dir>/outbox`.
pub struct Outbox {
    dir: PathBuf,
    counter: AtomicU64,
}

impl Outbox {
    /// Opens (creating) the outbox.
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join("outbox");
        std::fs::create_dir_all(&dir)?;
        let next = Self::list(&dir)?
            .iter()
            .filter_map(|(n, _)| n.split('-').next()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        Ok(Outbox {
            dir,
            counter: AtomicU64::new(next + 1),
        })
    }

    fn list(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, _)| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Stores a frame durably before it is sent.
    pub fn push(&self, id: &str, frame: &str) -> std::io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("{n:020}-{id}.json"));
        crate::config::write_private(&path, frame.as_bytes())
    }

    /// Everything not yet acknowledged, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<Pending>> {
        let mut out = Vec::new();
        for (name, path) in Self::list(&self.dir)? {
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|s| s.split_once('-'))
                .map(|(_, id)| id.to_string())
            else {
                continue;
            };
            out.push(Pending {
                id,
                frame: std::fs::read_to_string(&path)?,
            });
        }
        Ok(out)
    }

    /// The server acknowledged `id`: forget it. Unknown ids are ignored.
    pub fn ack(&self, id: &str) -> std::io::Result<bool> {
        for (name, path) in Self::list(&self.dir)? {
            if name.ends_with(&format!("-{id}.json")) {
                std::fs::remove_file(path)?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening_keeps_order_and_forgets_acked() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path()).unwrap();
        o.push("a", "{1}").unwrap();
        o.push("b", "{2}").unwrap();
        drop(o);
        let o = Outbox::open(dir.path()).unwrap();
        o.push("c", "{3}").unwrap();
        let ids: Vec<String> = o.pending().unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(o.ack("b").unwrap());
        assert!(!o.ack("b").unwrap());
        let frames: Vec<String> = o.pending().unwrap().into_iter().map(|p| p.frame).collect();
        assert_eq!(frames, ["{1}", "{3}"]);
    }
}
