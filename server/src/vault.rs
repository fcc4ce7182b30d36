//! The secret vault: AEAD-encrypted rows in the `vault` table.
//!
//! Secrets (password hashes, repository passwords, hook scripts) never enter an event;
//! events carry the vault row id. Each row is sealed with ChaCha20-Poly1305 under a key
//! derived from `RM_SECRET_KEY_FILE`, with a fresh random nonce, and the additional data
//! binds the ciphertext to its row id and owner: a ciphertext moved to another row does not
//! open. Deleting an owner's rows destroys its secrets for good (crypto-shredding) while the
//! history of what happened stays in the log.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::Sha256;

/// Errors of the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file is unreadable or malformed.
    #[error("secret key file {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A row did not decrypt: wrong key, or the row was tampered with or moved.
    #[error("vault row {0} does not decrypt with this key")]
    Tampered(String),
    /// SQLite refused.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The master key, 32 bytes, from which the vault and CSRF keys are derived.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// Reads the key file (64 hex characters), creating it with a random key and mode 0600
    /// when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, VaultError> {
        let err = |m: String| VaultError::Key {
            path: path.display().to_string(),
            message: m,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| err("expected 64 hex characters".into()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("expected 64 hex characters (32 bytes)".into()))?;
                Ok(MasterKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                write_private(path, hex::encode(key).as_bytes()).map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "created a new secret key");
                Ok(MasterKey(key))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// A key from raw bytes (tests and benchmarks).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(b)
    }

    /// A purpose-bound subkey: HMAC-SHA256(master, purpose).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key size");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Writes a file readable by its owner only (0600), atomically (tmp + fsync + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Seals and opens vault rows.
#[derive(Clone)]
pub struct Vault {
    cipher: ChaCha20Poly1305,
}

impl Vault {
    /// A vault under the given master key.
    pub fn new(master: &MasterKey) -> Self {
        let k = master.derive("restic-manager vault v1");
        Vault {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&k)),
        }
    }

    fn aad(id: &str, owner: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(id.len() + owner.len() + 16);
        aad.extend_from_slice(&(id.len() as u64).to_be_bytes());
        aad.extend_from_slice(id.as_bytes());
        aad.extend_from_slice(&(owner.len() as u64).to_be_bytes());
        aad.extend_from_slice(owner.as_bytes());
        aad
    }

    /// Seals `secret` into row `id` owned by `owner` (replacing any row with that id).
    pub fn put(
        &self,
        conn: &Connection,
        id: &str,
        owner: &str,
        kind: &str,
        secret: &[u8],
        now: &str,
    ) -> Result<(), VaultError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = Self::aad(id, owner);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Tampered(id.to_string()))?;
        conn.prepare_cached(
            "INSERT INTO vault (id, owner, kind, nonce, ciphertext, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, kind = excluded.kind,
               nonce = excluded.nonce, ciphertext = excluded.ciphertext, created_at = excluded.created_at",
        )?
        .execute(params![id, owner, kind, &nonce[..], ct, now])?;
        Ok(())
    }

    /// Opens row `id`; `None` when there is no such row (e.g. it was shredded).
    pub fn get(&self, conn: &Connection, id: &str) -> Result<Option<Vec<u8>>, VaultError> {
        let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
            .prepare_cached("SELECT owner, nonce, ciphertext FROM vault WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((owner, nonce, ct)) = row else {
            return Ok(None);
        };
        if nonce.len() != 12 {
            return Err(VaultError::Tampered(id.to_string()));
        }
        let aad = Self::aad(id, &owner);
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map(Some)
            .map_err(|_| VaultError::Tampered(id.to_string()))
    }

    /// Destroys one row (no error when it is not there).
    pub fn delete(&self, conn: &Connection, id: &str) -> Result<(), VaultError> {
        conn.execute("DELETE FROM vault WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Destroys every row of an owner. Returns how many.
    pub fn shred_owner(&self, conn: &Connection, owner: &str) -> Result<usize, VaultError> {
        Ok(conn.execute("DELETE FROM vault WHERE owner = ?1", [owner])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("../../migrations/0001_event_log.sql"))
            .unwrap();
        c
    }

    #[test]
    fn seals_opens_and_binds_rows_to_id_and_owner() {
        let c = db();
        let v = Vault::new(&MasterKey::from_bytes([7; 32]));
        v.put(&c, "a", "user-1", "password", b"hunter2-hunter2", "t")
            .unwrap();
        v.put(&c, "b", "user-2", "password", b"other", "t").unwrap();
        assert_eq!(v.get(&c, "a").unwrap().unwrap(), b"hunter2-hunter2");
        let raw: Vec<u8> = c
            .query_row("SELECT ciphertext FROM vault WHERE id='a'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!raw.windows(7).any(|w| w == b"hunter2"));
        // Moving a ciphertext to another owner makes it unreadable.
        c.execute("UPDATE vault SET owner = 'user-2' WHERE id = 'a'", [])
            .unwrap();
        assert!(matches!(v.get(&c, "a"), Err(VaultError::Tampered(_))));
        // A different key cannot open anything.
        let other = Vault::new(&MasterKey::from_bytes([8; 32]));
        assert!(other.get(&c, "b").is_err());
        assert_eq!(v.shred_owner(&c, "user-2").unwrap(), 2);
        assert_eq!(v.get(&c, "b").unwrap(), None);
    }

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.key");
        let a = MasterKey::load_or_create(&p).unwrap();
        let b = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(a.derive("x"), b.derive("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&p, "nothex").unwrap();
        assert!(MasterKey::load_or_create(&p).is_err());
    }
}
