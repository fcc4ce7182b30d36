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
pub mod agents;
pub mod alerts;
pub mod asof;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod hosts;
pub mod http;
pub mod install;
pub mod jobs;
pub mod maintenance;
pub mod notify;
pub mod restore;
pub mod sources;
pub mod store;
pub mod vault;
pub mod verifier;

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
    build_state_with_tls(config, clock, None).await
}

async fn build_state_with_tls(
    config: Config,
    clock: Arc<dyn Clock>,
    tls_pin: Option<String>,
) -> Result<AppState, ServerError> {
    std::fs::create_dir_all(&config.data_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let key = MasterKey::load_or_create(&config.secret_key_file)?;
    let store = EventStore::open(&config.db_path(), clock.clone(), StoreOptions::default())?;
    let time_travel = Arc::new(asof::TimeTravel::new(
        config.db_path(),
        config.data_dir.join("asof"),
        config.asof_checkpoint_every,
    ));
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
        agents: Arc::new(agents::Registry::default()),
        hub: Arc::new(jobs::Hub::default()),
        tls_pin,
        shutdown: http::Shutdown::default(),
        time_travel,
        chain: Arc::new(verifier::ChainStatus::default()),
    };
    accounts::issue_setup_token_if_needed(&state)
        .await
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    Ok(state)
}

/// Loads the TLS certificate and key; returns the rustls config and the SHA-256 pin of the
/// leaf certificate (what agents pass as `--cert-pin`).
fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(rustls::ServerConfig, String), ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use sha2::{Digest, Sha256};
    let bad = |what: &str, e: &dyn std::fmt::Display| ServerError::Startup(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("reading {}", cert.display()), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&format!("parsing {}", cert.display()), &e))?;
    let leaf = certs
        .first()
        .ok_or_else(|| ServerError::Startup(format!("{} holds no certificate", cert.display())))?;
    let pin = hex::encode(Sha256::digest(leaf.as_ref()));
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(&format!("reading {}", key.display()), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("TLS certificate and key", &e))?;
    Ok((config, pin))
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
/// closes agent sockets, commits every queued append and returns.
///
/// With `tls_cert` and `tls_key` set, the listener speaks HTTPS (and `wss://`).
pub async fn run(
    mut config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(load_tls(c, k)?),
        (None, None) => None,
        _ => {
            return Err(ServerError::Startup(
                "RM_TLS_CERT and RM_TLS_KEY go together: set both or neither".into(),
            ))
        }
    };
    config.listen = addr;
    if config.base_url.is_none() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        config.base_url = Some(format!("{scheme}://{addr}"));
    }
    let pin = tls.as_ref().map(|(_, p)| p.clone());
    let state = build_state_with_tls(config, Arc::new(SystemClock), pin).await?;
    tracing::info!(%addr, tls = tls.is_some(), data_dir = %state.config.data_dir.display(), "restic-manager listening");
    if let Err(e) = restore::revoke_stale(&state).await {
        tracing::error!(error = %e, "could not revoke the credentials of finished restores");
    }
    let sweeper = tokio::spawn(agents::sweeper::run(state.clone()));
    let ticker = (state.config.maintenance_tick_secs > 0).then(|| {
        let every = std::time::Duration::from_secs(state.config.maintenance_tick_secs);
        tokio::spawn(maintenance::run(state.clone(), every))
    });
    let evaluator = tokio::spawn(alerts::run(
        state.clone(),
        std::time::Duration::from_secs(state.config.alert_tick_secs.max(1)),
    ));
    let notifier = tokio::spawn(notify::run(state.clone()));
    let checkpointer = tokio::spawn(asof_checkpoints(state.clone()));
    let chain_verifier = tokio::spawn(verifier::run(state.clone()));
    let app = http::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stop = state.shutdown.clone();
    let served = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    shutdown.await;
                    stop.trigger();
                })
                .await
        }
        Some((tls_config, _)) => {
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.trigger();
                h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config));
            axum_server::from_tcp_rustls(listener.into_std()?, rustls)
                .map_err(ServerError::Io)?
                .handle(handle)
                .serve(app)
                .await
        }
    };
    state.shutdown.trigger();
    let _ = sweeper.await;
    if let Some(t) = ticker {
        let _ = t.await;
    }
    let _ = evaluator.await;
    let _ = checkpointer.await;
    let _ = chain_verifier.await;
    // The notifier finishes the delivery in flight and records it before the store closes.
    let _ = notifier.await;
    state.store.close().await;
    tracing::info!("stopped; every queued append is committed");
    served.map_err(ServerError::Io)
}

/// Takes time-travel checkpoints in the background as the log grows.
async fn asof_checkpoints(state: AppState) {
    let shutdown = state.shutdown.clone();
    loop {
        let tt = state.time_travel.clone();
        match tokio::task::spawn_blocking(move || tt.maybe_checkpoint()).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "time-travel checkpoint failed"),
            Err(e) => tracing::warn!(error = %e, "time-travel checkpoint task failed"),
            Ok(Ok(_)) => {}
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(state.config.asof_checkpoint_secs.max(1))) => {}
        }
    }
}
