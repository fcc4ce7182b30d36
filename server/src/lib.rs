//! The restic-manager server as a library.
//!
//! The binary (`src/main.rs`) only parses the command line, sets up logging and calls
//! [`run`]; tests call [`run`] too, on a listener bound to port 0 with a temporary data dir.
//!
//! - [`store`]: the event log (one writer, group commit, inline projections, hash chain).
//! - [`vault`]: AEAD-encrypted secrets.
//! - [`auth`] and [`accounts`]: passwords, sessions, CSRF, rate limits; setup/login/logout.
//! - [`http`]: the router, the JSON API and the HTML pages.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod store;
pub mod vault;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use clock::{Clock, SystemClock};
use config::Config;
use http::AppState;
use store::{EventStore, StoreOptions};
use vault::{MasterKey, Vault};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The secret key could not be loaded.
    #[error(transparent)]
    Vault(#[from] vault::VaultError),
    /// The event store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Start-up work failed.
    #[error("start-up: {0}")]
    Startup(String),
}

/// Opens the data dir and builds the shared state (no listener). Issues the first-run
/// setup token when there are no users.
pub async fn build_state(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, ServerError> {
    std::fs::create_dir_all(&config.data_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let key = MasterKey::load_or_create(&config.secret_key_file)?;
    let store = EventStore::open(&config.db_path(), clock.clone(), StoreOptions::default())?;
    let state = AppState {
        store,
        vault: Vault::new(&key),
        csrf: auth::Csrf::new(key.derive("restic-manager csrf v1")),
        limiter: auth::LoginLimiter::new(
            config.login_per_ip_per_minute,
            config.login_per_user_per_minute,
        ),
        config: Arc::new(config),
        clock,
    };
    accounts::issue_setup_token_if_needed(&state)
        .await
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    Ok(state)
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
/// commits every queued append and returns.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let state = build_state(config, Arc::new(SystemClock)).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %state.config.data_dir.display(), "restic-manager listening");
    let app = http::router(state.clone());
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    state.store.close().await;
    tracing::info!("stopped; every queued append is committed");
    served.map_err(ServerError::Io)
}
