//! Server configuration: defaults, then flags, then `RM_*` environment (clap reads both;
//! see `main.rs`). No global statics: a [`Config`] value is handed to [`crate::run`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (used by the binary; [`crate::run`] takes a bound listener).
    pub listen: SocketAddr,
    /// Where the database, the key and the setup token live.
    pub data_dir: PathBuf,
    /// The master key file (`<data>/secret.key` by default).
    pub secret_key_file: PathBuf,
    /// Public URL, used in install commands and to decide on `Secure` cookies.
    pub base_url: Option<String>,
    /// Seconds without a heartbeat before a host is offline.
    pub offline_after_secs: u64,
    /// Login attempts per minute per client address.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per minute per username.
    pub login_per_user_per_minute: u32,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// TLS certificate chain (PEM) for the built-in TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the built-in TLS listener.
    pub tls_key: Option<PathBuf>,
    /// Where `/agent/binary/{os}/{arch}` finds agent builds (default: beside the server).
    pub agent_binaries_dir: PathBuf,
    /// Seconds between maintenance ticks (forget/prune/check cadences, pending runs);
    /// 0 turns the ticker off.
    pub maintenance_tick_secs: u64,
    /// Seconds a schedule's fire may be late before it counts as missed, and slack on the
    /// stale-backup alert.
    pub alert_grace_secs: u64,
    /// Seconds between the alert evaluator's clock checks (stale backups, missed runs).
    pub alert_tick_secs: u64,
    /// Events between time-travel checkpoints (a view of the past replays at most this many).
    pub asof_checkpoint_every: i64,
    /// Seconds between looks at whether a new time-travel checkpoint is due.
    pub asof_checkpoint_secs: u64,
    /// Fault injection for tests: record durable agent messages but never acknowledge
    /// them, as if the server died between commit and ack. Never set in production.
    pub fault_drop_agent_acks: bool,
}

impl Config {
    /// Defaults for a data dir.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secret_key_file: data_dir.join("secret.key"),
            data_dir,
            base_url: None,
            offline_after_secs: 90,
            login_per_ip_per_minute: 30,
            login_per_user_per_minute: 10,
            max_body_bytes: 256 * 1024,
            tls_cert: None,
            tls_key: None,
            agent_binaries_dir: std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.to_path_buf()))
                .unwrap_or_else(|| PathBuf::from(".")),
            maintenance_tick_secs: 60,
            alert_grace_secs: 300,
            alert_tick_secs: 30,
            asof_checkpoint_every: 50_000,
            asof_checkpoint_secs: 30,
            fault_drop_agent_acks: false,
        }
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("restic-manager.db")
    }

    /// The first-run setup token file.
    pub fn setup_token_path(&self) -> PathBuf {
        self.data_dir.join("setup-token")
    }

    /// Whether cookies must be `Secure` (served over TLS).
    pub fn secure_cookies(&self) -> bool {
        self.base_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}
