//! HTTP: the router, shared state, and the handlers.

pub mod alerts_api;
pub mod alerts_pages;
pub mod api;
pub mod csrf;
pub mod error;
pub mod events_api;
pub mod extract;
pub mod hosts_api;
pub mod jobs_api;
pub mod pages;
pub mod restore_api;
pub mod restore_pages;
pub mod sources_api;
pub mod sources_pages;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{Csrf, LoginLimiter};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::EventStore;
use crate::vault::Vault;
use error::AppError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The event store.
    pub store: EventStore,
    /// The secret vault.
    pub vault: Vault,
    /// CSRF token derivation.
    pub csrf: Csrf,
    /// Login rate limits.
    pub limiter: LoginLimiter,
    /// Configuration.
    pub config: Arc<Config>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Connected agents.
    pub agents: Arc<crate::agents::Registry>,
    /// Live job frames for browsers.
    pub hub: Arc<crate::jobs::Hub>,
    /// SHA-256 of the TLS leaf certificate, hex, when the server terminates TLS.
    pub tls_pin: Option<String>,
    /// Tells long-lived tasks (agent sockets, the sweeper) that the server is stopping.
    pub shutdown: Shutdown,
    /// Past states of the read models (`?as_of=`).
    pub time_travel: Arc<crate::asof::TimeTravel>,
    /// How far the hash chain is verified.
    pub chain: Arc<crate::verifier::ChainStatus>,
}

/// A shutdown signal many tasks can wait on.
#[derive(Clone)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the shutdown has started.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

impl AppState {
    /// Runs a read against the live read models, or — with `as_of` — against the read models
    /// as they were at that seq or time. Returns the seq answered for when `as_of` was given.
    pub async fn read_as_of<T, F>(
        &self,
        as_of: Option<&str>,
        f: F,
    ) -> Result<(T, Option<i64>), AppError>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(as_of) = as_of.map(str::to_string) else {
            return Ok((self.store.read(f).await?, None));
        };
        let seq = self
            .store
            .read(move |c| -> Result<_, AppError> { Ok(crate::asof::resolve(c, &as_of)?) })
            .await?
            .map_err(|m| AppError::bad_request("invalid_query", m))?;
        let tt = self.time_travel.clone();
        let out = tokio::task::spawn_blocking(move || -> Result<T, AppError> {
            let view = tt.view(seq)?;
            let conn = view.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
        Ok((out, Some(seq)))
    }

    /// The public URL (configured, or the listening address).
    pub fn base_url(&self) -> String {
        self.config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.config.listen))
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/bootstrap", post(api::bootstrap))
        .route("/login", post(api::login))
        .route("/logout", post(api::logout))
        .route("/session", get(api::session))
        .route("/users", get(api::list_users).post(api::create_user))
        .route("/audit", get(events_api::audit))
        .route("/events", get(events_api::events))
        .route("/events/head", get(events_api::head))
        .route("/events/chain", get(events_api::chain))
        .route("/audit/export", get(events_api::audit_export))
        .route("/enrollment-tokens", post(hosts_api::mint_token))
        .route("/enrollment-tokens/{id}", get(hosts_api::token_status))
        .route("/agents/enroll", post(hosts_api::enroll))
        .route("/agents/ws", get(crate::agents::ws::upgrade))
        .route("/hosts", get(hosts_api::list))
        .route("/hosts/{id}", get(hosts_api::get).delete(hosts_api::delete))
        .route(
            "/hosts/{id}/repo-credentials",
            get(hosts_api::get_credentials).put(hosts_api::put_credentials),
        )
        .route("/fleet/summary", get(hosts_api::summary))
        .route(
            "/hosts/{id}/jobs",
            get(jobs_api::list).post(jobs_api::create),
        )
        .route("/hosts/{id}/snapshots", get(jobs_api::snapshots))
        .route("/hosts/{id}/snapshots/removed", get(sources_api::removed))
        .route(
            "/hosts/{id}/source-groups/{gid}/what-if",
            post(sources_api::what_if),
        )
        .route("/hosts/{id}/snapshots/diff", get(restore_api::diff))
        .route("/hosts/{id}/snapshots/{sid}/tree", get(restore_api::tree))
        .route("/hosts/{id}/restores", post(restore_api::create))
        .route("/hosts/{id}/restore-info", get(restore_api::info))
        .route(
            "/hosts/{id}/source-groups",
            get(sources_api::list_groups).post(sources_api::create_group),
        )
        .route(
            "/hosts/{id}/source-groups/{gid}",
            get(sources_api::get_group)
                .put(sources_api::update_group)
                .delete(sources_api::delete_group),
        )
        .route(
            "/hosts/{id}/source-groups/{gid}/run",
            post(sources_api::run_group),
        )
        .route(
            "/hosts/{id}/source-groups/{gid}/hooks",
            get(sources_api::get_group_hooks).put(sources_api::put_group_hooks),
        )
        .route(
            "/hosts/{id}/schedules",
            get(sources_api::list_schedules).post(sources_api::create_schedule),
        )
        .route(
            "/hosts/{id}/schedules/{sid}",
            get(sources_api::get_schedule)
                .put(sources_api::update_schedule)
                .delete(sources_api::delete_schedule),
        )
        .route(
            "/hosts/{id}/schedules/{sid}/run",
            post(sources_api::run_schedule),
        )
        .route(
            "/hosts/{id}/repo-maintenance",
            get(sources_api::get_maintenance).put(sources_api::put_maintenance),
        )
        .route(
            "/hosts/{id}/bandwidth",
            get(sources_api::get_bandwidth).put(sources_api::put_bandwidth),
        )
        .route("/hosts/{id}/repo", get(sources_api::repo))
        .route("/alerts", get(alerts_api::list))
        .route("/alerts/{id}", get(alerts_api::get))
        .route("/alerts/{id}/ack", post(alerts_api::ack))
        .route("/alerts/{id}/resolve", post(alerts_api::resolve))
        .route(
            "/notification-channels",
            get(alerts_api::list_channels).post(alerts_api::create_channel),
        )
        .route(
            "/notification-channels/{id}",
            get(alerts_api::get_channel)
                .put(alerts_api::update_channel)
                .delete(alerts_api::delete_channel),
        )
        .route(
            "/notification-channels/{id}/test",
            post(alerts_api::test_channel),
        )
        .route("/notifications", get(alerts_api::notifications))
        .route("/hosts/{id}/repo/{op}", post(sources_api::repo_op))
        .route("/hosts/{id}/pending-runs", get(sources_api::pending_runs))
        .route(
            "/hosts/{id}/hooks",
            get(sources_api::get_host_hooks).put(sources_api::put_host_hooks),
        )
        .route(
            "/hosts/{id}/repo-admin-credentials",
            get(sources_api::get_admin_credentials)
                .put(sources_api::put_admin_credentials)
                .delete(sources_api::delete_admin_credentials),
        )
        .route(
            "/hosts/{id}/snapshots/refresh",
            post(jobs_api::refresh_snapshots),
        )
        .route("/jobs/{id}", get(jobs_api::get))
        .route("/jobs/{id}/logs", get(jobs_api::logs))
        .route("/jobs/{id}/stream", get(jobs_api::stream))
        .route("/jobs/{id}/cancel", post(jobs_api::cancel))
        .fallback(api_not_found);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/", get(pages::home))
        .route("/hosts/{id}", get(pages::host_page))
        .route("/hosts/{id}/run", post(pages::run_form))
        .route("/hosts/{id}/delete", post(pages::delete_form))
        .route("/hosts/{id}/sources", get(sources_pages::sources_page))
        .route(
            "/hosts/{id}/sources/new",
            get(sources_pages::new_group_page).post(sources_pages::create_group_form),
        )
        .route(
            "/hosts/{id}/sources/{gid}",
            get(sources_pages::group_page).post(sources_pages::update_group_form),
        )
        .route(
            "/hosts/{id}/sources/{gid}/run",
            post(sources_pages::run_group_form),
        )
        .route(
            "/hosts/{id}/sources/{gid}/delete",
            post(sources_pages::delete_group_form),
        )
        .route(
            "/hosts/{id}/sources/{gid}/hooks",
            post(sources_pages::group_hooks_form),
        )
        .route("/hosts/{id}/hooks", post(sources_pages::host_hooks_form))
        .route("/hosts/{id}/schedules", get(sources_pages::schedules_page))
        .route(
            "/hosts/{id}/schedules/new",
            get(sources_pages::new_schedule_page).post(sources_pages::create_schedule_form),
        )
        .route(
            "/hosts/{id}/schedules/{sid}",
            get(sources_pages::schedule_page).post(sources_pages::update_schedule_form),
        )
        .route(
            "/hosts/{id}/schedules/{sid}/run",
            post(sources_pages::run_schedule_form),
        )
        .route(
            "/hosts/{id}/schedules/{sid}/toggle",
            post(sources_pages::toggle_schedule_form),
        )
        .route(
            "/hosts/{id}/schedules/{sid}/delete",
            post(sources_pages::delete_schedule_form),
        )
        .route("/hosts/{id}/repo", get(sources_pages::repo_page))
        .route(
            "/hosts/{id}/repo/connection",
            post(sources_pages::connection_form),
        )
        .route(
            "/hosts/{id}/repo/bandwidth",
            post(sources_pages::bandwidth_form),
        )
        .route(
            "/hosts/{id}/repo/maintenance",
            post(sources_pages::maintenance_form),
        )
        .route("/hosts/{id}/repo/run", post(sources_pages::run_op_form))
        .route("/hosts/{id}/repo/init", post(sources_pages::init_form))
        .route(
            "/hosts/{id}/repo/admin-credentials",
            post(sources_pages::admin_credentials_form),
        )
        .route(
            "/hosts/{id}/repo/admin-credentials/delete",
            post(sources_pages::delete_admin_credentials_form),
        )
        .route("/hosts/{id}/jobs", get(sources_pages::jobs_page))
        .route(
            "/hosts/{id}/restore",
            get(restore_pages::restore_page).post(restore_pages::restore_form),
        )
        .route("/hosts/{id}/diff", get(restore_pages::diff_page))
        .route("/jobs/{id}", get(pages::job_page))
        .route("/static/app.js", get(pages::app_script))
        .route(
            "/hosts/new",
            get(pages::add_host_page).post(pages::add_host_form),
        )
        .route("/audit", get(pages::audit_page))
        .route("/alerts", get(alerts_pages::alerts_page))
        .route("/alerts/{id}/ack", post(alerts_pages::ack_form))
        .route("/alerts/{id}/resolve", post(alerts_pages::resolve_form))
        .route("/settings", get(alerts_pages::settings_page))
        .route(
            "/settings/channels",
            post(alerts_pages::create_channel_form),
        )
        .route(
            "/settings/channels/{id}/test",
            post(alerts_pages::test_channel_form),
        )
        .route(
            "/settings/channels/{id}/delete",
            post(alerts_pages::delete_channel_form),
        )
        .route("/login", get(pages::login_page).post(pages::login_form))
        .route("/setup", post(pages::setup_form))
        .route("/logout", post(pages::logout_form))
        .route("/static/style.css", get(pages::stylesheet))
        .route("/install/agent.sh", get(crate::install::script))
        .route("/agent/binary/{os}/{arch}", get(crate::install::binary))
        .nest("/api", api)
        .fallback(pages::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::guard,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let ok = state
        .store
        .read(|c| -> Result<i64, AppError> { Ok(c.query_row("SELECT 1", [], |r| r.get(0))?) })
        .await
        .is_ok();
    if ok {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn api_not_found(uri: Uri) -> AppError {
    AppError::NotFound(format!("no API endpoint at {}", uri.path()))
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
