//! The agent's secrets file: repository credentials, AEAD-encrypted (ChaCha20-Poly1305)
//! under the per-host key from the config, in `<state dir>/secrets.enc` (0600). The
//! additional data binds the file to this host, so a file copied from another host does not
//! open.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use domain::protocol::RepoCredentials;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Secrets {
    /// Credentials version (0 when none yet).
    pub version: u64,
    /// The everyday repository credentials.
    pub repo: Option<RepoCredentials>,
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

/// The encrypted file.
pub struct SecretsFile {
    path: PathBuf,
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
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
    pub fn save(&self, s: &Secrets) -> Result<(), SecretsError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_encrypted_and_bound_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretsFile::new_key();
        let f = SecretsFile::new(dir.path(), "h1", &key).unwrap();
        assert_eq!(f.load().unwrap(), Secrets::default());
        let s = Secrets {
            version: 2,
            repo: Some(RepoCredentials {
                url: "/srv/repo".into(),
                username: None,
                password: "Plaintext-Password-123".into(),
            }),
        };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), s);
        let raw = std::fs::read(dir.path().join("secrets.enc")).unwrap();
        assert!(!raw.windows(9).any(|w| w == b"Plaintext"));
        let other_host = SecretsFile::new(dir.path(), "h2", &key).unwrap();
        assert!(matches!(
            other_host.load(),
            Err(SecretsError::Undecryptable(_))
        ));
        assert!(SecretsFile::new(dir.path(), "h1", "abc").is_err());
    }
}
