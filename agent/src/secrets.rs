//! The agent's secrets file: repository credentials and the schedule set (whose hooks are
//! shell scripts, so secret too), AEAD-encrypted (ChaCha20-Poly1305) under the per-host key
//! from the config, in `<state dir>/secrets.enc` (0600). The additional data binds the file
//! to this host, so a file copied from another host does not open.
//!
//! The file has slots: the everyday credential (`repo`), the schedule set (`schedules`), and
//! the full-access credential of a running forget/prune (`admin`). Every writer changes one
//! slot through [`SecretsFile::update`], which reads, changes and writes under one lock, so
//! the connection storing new credentials cannot wipe the slot a running job just filled.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use domain::protocol::{RepoCredentials, SchedulesUpdate};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Secrets {
    /// Credentials version (0 when none yet).
    pub version: u64,
    /// The everyday repository credentials.
    pub repo: Option<RepoCredentials>,
    /// The last schedule set the server pushed, armed again at every start so the agent
    /// backs up on time even when the server cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<SchedulesUpdate>,
    /// The full-access credential of the forget/prune running now. Kept apart from `repo`
    /// so it never becomes the everyday credential, and removed when the job ends (or at the
    /// next start, when the agent died during the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSlot>,
}

/// The admin credential and the job it was handed for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSlot {
    /// The forget/prune job.
    pub job_id: String,
    /// The full-access credential.
    pub repo: RepoCredentials,
}

/// Errors of the secrets file.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading or writing.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Wrong key, another host's file, or a damaged file.
    #[error("{0} does not decrypt with this host's key")]
    Undecryptable(String),
    /// The key in the config is not 64 hex characters.
    #[error("the secrets key in the config is not 64 hex characters")]
    BadKey,
}

/// The encrypted file. Share one instance (`Arc`) between the connection, the runner and
/// the scheduler: its lock is what keeps their read-change-write cycles apart.
pub struct SecretsFile {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
    lock: Mutex<()>,
}

impl SecretsFile {
    /// The file in `state_dir` for `host_id`, under `key_hex`.
    pub fn new(state_dir: &Path, host_id: &str, key_hex: &str) -> Result<Self, SecretsError> {
        let key = hex::decode(key_hex).map_err(|_| SecretsError::BadKey)?;
        if key.len() != 32 {
            return Err(SecretsError::BadKey);
        }
        Ok(SecretsFile {
            path: state_dir.join("secrets.enc"),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
            aad: format!("restic-manager agent secrets v1:{host_id}").into_bytes(),
            lock: Mutex::new(()),
        })
    }

    /// A new random key, hex.
    pub fn new_key() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        hex::encode(k)
    }

    /// Reads the secrets (empty when the file does not exist yet).
    pub fn load(&self) -> Result<Secrets, SecretsError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.read()
    }

    /// Reads, changes and writes the secrets under the file's lock; returns what `change`
    /// returned. Nothing is written when `change` leaves the secrets as they were.
    pub fn update<T>(&self, change: impl FnOnce(&mut Secrets) -> T) -> Result<T, SecretsError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = self.read()?;
        let before = s.clone();
        let out = change(&mut s);
        if s != before {
            self.write(&s)?;
        }
        Ok(out)
    }

    fn read(&self) -> Result<Secrets, SecretsError> {
        let name = self.path.display().to_string();
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Secrets::default()),
            Err(e) => return Err(SecretsError::Io(name, e)),
        };
        if bytes.len() < 12 {
            return Err(SecretsError::Undecryptable(name));
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &self.aad,
                },
            )
            .map_err(|_| SecretsError::Undecryptable(name.clone()))?;
        serde_json::from_slice(&plain).map_err(|_| SecretsError::Undecryptable(name))
    }

    /// Writes the secrets atomically (0600).
    fn write(&self, s: &Secrets) -> Result<(), SecretsError> {
        let name = self.path.display().to_string();
        let plain = serde_json::to_vec(s).map_err(|e| SecretsError::Io(name.clone(), e.into()))?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &self.aad,
                },
            )
            .map_err(|_| SecretsError::Undecryptable(name.clone()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        crate::config::write_private(&self.path, &out).map_err(|e| SecretsError::Io(name, e))
    }

    /// Puts a job's full-access credential in the admin slot.
    pub fn set_admin(&self, job_id: &str, repo: &RepoCredentials) -> Result<(), SecretsError> {
        self.update(|s| {
            s.admin = Some(AdminSlot {
                job_id: job_id.to_string(),
                repo: repo.clone(),
            })
        })
    }

    /// Empties the admin slot when it holds `job_id`'s credential (or any, with `None`).
    pub fn clear_admin(&self, job_id: Option<&str>) -> Result<bool, SecretsError> {
        self.update(|s| {
            let matches = s
                .admin
                .as_ref()
                .is_some_and(|a| job_id.is_none_or(|j| a.job_id == j));
            if matches {
                s.admin = None;
            }
            matches
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::protocol::{ScheduleSpec, ScheduledGroup};

    fn creds(url: &str, pw: &str) -> RepoCredentials {
        RepoCredentials {
            url: url.into(),
            username: None,
            password: pw.into(),
        }
    }

    fn raw(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join("secrets.enc")).unwrap()
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn round_trips_encrypted_and_bound_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretsFile::new_key();
        let f = SecretsFile::new(dir.path(), "h1", &key).unwrap();
        assert_eq!(f.load().unwrap(), Secrets::default());
        let s = Secrets {
            version: 2,
            repo: Some(creds("/srv/repo", "Plaintext-Password-123")),
            ..Default::default()
        };
        f.update(|x| *x = s.clone()).unwrap();
        assert_eq!(f.load().unwrap(), s);
        assert!(!contains(&raw(dir.path()), "Plaintext"));
        let other_host = SecretsFile::new(dir.path(), "h2", &key).unwrap();
        assert!(matches!(
            other_host.load(),
            Err(SecretsError::Undecryptable(_))
        ));
        assert!(SecretsFile::new(dir.path(), "h1", "abc").is_err());
    }

    /// A file written before the schedule and admin slots existed still opens.
    #[test]
    fn files_without_the_new_slots_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let f = SecretsFile::new(dir.path(), "h1", &SecretsFile::new_key()).unwrap();
        let old = serde_json::json!({"version": 3, "repo": {"url": "/r", "password": "pw"}});
        f.write(&serde_json::from_value(old).unwrap()).unwrap();
        let s = f.load().unwrap();
        assert_eq!(s.version, 3);
        assert_eq!(s.schedules, None);
        assert_eq!(s.admin, None);
    }

    #[test]
    fn the_admin_slot_is_separate_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = SecretsFile::new(dir.path(), "h1", &SecretsFile::new_key()).unwrap();
        f.update(|s| {
            s.version = 1;
            s.repo = Some(creds("rest:http://b/h1", "everyday-pw"));
            s.schedules = Some(SchedulesUpdate {
                version: 4,
                schedules: vec![ScheduleSpec {
                    schedule_id: "s".into(),
                    cron: "0 3 * * *".into(),
                    enabled: true,
                    groups: vec![ScheduledGroup {
                        source_group_id: "g".into(),
                        name: "default".into(),
                        includes: vec!["/srv".into()],
                        excludes: vec![],
                        retention_policy: Default::default(),
                        retry_max: 0,
                        retry_backoff_seconds: 0,
                        hooks: domain::protocol::Hooks {
                            pre: Some("echo Hook-Secret-Token".into()),
                            post: None,
                        },
                    }],
                }],
                bandwidth: Default::default(),
            });
        })
        .unwrap();
        assert!(!contains(&raw(dir.path()), "Hook-Secret-Token"));

        f.set_admin("job-1", &creds("rest:http://b/h1", "Admin-Pass-999"))
            .unwrap();
        let s = f.load().unwrap();
        assert_eq!(s.admin.as_ref().unwrap().job_id, "job-1");
        assert_eq!(s.admin.as_ref().unwrap().repo.password, "Admin-Pass-999");
        // The everyday slot and the schedules are untouched.
        assert_eq!(s.repo.as_ref().unwrap().password, "everyday-pw");
        assert_eq!(s.schedules.as_ref().unwrap().version, 4);
        assert!(!contains(&raw(dir.path()), "Admin-Pass"));

        // A new everyday credential does not disturb the admin slot.
        f.update(|s| {
            s.version = 2;
            s.repo = Some(creds("rest:http://b/h1", "new-everyday"));
        })
        .unwrap();
        assert_eq!(f.load().unwrap().admin.unwrap().job_id, "job-1");

        // Another job's end leaves it; this job's end removes it.
        assert!(!f.clear_admin(Some("job-2")).unwrap());
        assert!(f.load().unwrap().admin.is_some());
        assert!(f.clear_admin(Some("job-1")).unwrap());
        let s = f.load().unwrap();
        assert_eq!(s.admin, None);
        assert_eq!(s.repo.unwrap().password, "new-everyday");
        assert_eq!(s.schedules.unwrap().version, 4);
        // Start-up sweep: any leftover goes.
        f.set_admin("job-3", &creds("/r", "x")).unwrap();
        assert!(f.clear_admin(None).unwrap());
        assert_eq!(f.load().unwrap().admin, None);
    }
}
