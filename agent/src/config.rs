//! The agent's config file (TOML, 0600, written atomically).
//!
//! It holds the bearer and the per-host key of the secrets file: both give access to this
//! host's backups, so the file is readable by root only — the same trust boundary for both.
//! Repository credentials are never here; they live encrypted in the state dir.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What `enroll` writes and `run` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Server URL (`http://…` or `https://…`).
    pub server: String,
    /// This host's id.
    pub host_id: String,
    /// The persistent bearer.
    pub bearer: String,
    /// SHA-256 (hex) of the server's TLS leaf certificate, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pin: Option<String>,
    /// Key of the secrets file (64 hex characters), minted at enrolment.
    pub secrets_key: String,
}

/// Config errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML for the config.
    #[error("{path}: {message}")]
    Invalid {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
}

impl AgentConfig {
    /// Reads the config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes the config atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let header = "# restic-manager agent. Holds this host's bearer and secrets key: keep it readable by root only.\n";
        write_private(path, format!("{header}{text}").as_bytes()).map_err(io)
    }
}

/// Writes a file readable by its owner only: temp file, fsync, rename, fsync of the folder.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
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
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/agent.toml");
        let c = AgentConfig {
            server: "http://127.0.0.1:8080".into(),
            host_id: "h1".into(),
            bearer: "b".repeat(64),
            cert_pin: None,
            secrets_key: "0".repeat(64),
        };
        c.save(&p).unwrap();
        assert_eq!(AgentConfig::load(&p).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, "server = 5").unwrap();
        assert!(AgentConfig::load(&p).is_err());
    }
}
