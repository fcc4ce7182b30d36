//! `restic-manager`: parses the command line, sets up logging, and hands over to the
//! library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use server::config::{Config, LogFormat};
use server::store::ExportFilter;

#[derive(Parser)]
#[command(
    name = "restic-manager",
    version,
    about = "Self-hosted control plane for restic fleets"
)]
struct Cli {
    /// Where the database, the secret key and the setup token live.
    #[arg(long, env = "RM_DATA_DIR", default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// Log output format.
    #[arg(
        long,
        env = "RM_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Work on the event log.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "RM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The master key file (default `<data>/secret.key`, created 0600 if missing).
    #[arg(long, env = "RM_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Public URL of the server (install commands; https makes cookies Secure).
    #[arg(long, env = "RM_BASE_URL")]
    base_url: Option<String>,
    /// Seconds without a heartbeat before a host counts as offline.
    #[arg(long, env = "RM_OFFLINE_AFTER", default_value_t = 90)]
    offline_after: u64,
    /// TLS certificate chain (PEM): serve HTTPS and wss:// directly.
    #[arg(long, env = "RM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "RM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Folder of agent builds served at /agent/binary/{os}/{arch} (default: beside this binary).
    #[arg(long, env = "RM_AGENT_BINARIES_DIR")]
    agent_binaries_dir: Option<PathBuf>,
    /// Seconds between maintenance ticks (cadences and pending runs); 0 turns it off.
    #[arg(long, env = "RM_MAINTENANCE_TICK", default_value_t = 60)]
    maintenance_tick: u64,
    /// Seconds a scheduled run may be late before a "missed run" alert.
    #[arg(long, env = "RM_ALERT_GRACE", default_value_t = 300)]
    alert_grace: u64,
    /// Seconds between the alert evaluator's clock checks.
    #[arg(long, env = "RM_ALERT_TICK", default_value_t = 30)]
    alert_tick: u64,
    /// Fault injection for tests only: never acknowledge durable agent messages.
    #[arg(long, env = "RM_FAULT_DROP_ACKS", hide = true)]
    fault_drop_acks: bool,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Walk the hash chain; exit 1 naming the first bad seq.
    Verify {
        /// Also require the row at SEQ to carry HASH (catches a cut or rewritten tail).
        #[arg(long, value_name = "SEQ:HASH", value_parser = server::cli::parse_head)]
        expect_head: Option<server::store::Head>,
    },
    /// Write the stored envelopes as JSON lines to standard output.
    Export {
        /// Only events after this seq.
        #[arg(long)]
        after: Option<i64>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Write a replay-tests fixture: renumbered from seq 1 and re-chained, so a part of
        /// the log imports on its own.
        #[arg(long)]
        fixture: bool,
    },
    /// Load an export into an empty data dir.
    Import {
        /// The JSONL file (`-` for standard input).
        file: PathBuf,
    },
    /// Rebuild read models from the log.
    Rebuild {
        /// Only these projections (default: all).
        #[arg(long = "projection")]
        projections: Vec<String>,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Registers the SIGTERM/SIGINT handlers *now* (so a signal that arrives while the server is
/// still starting is not lost to the default action) and resolves when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutdown signal received; draining");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received; draining");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let db = cli.data_dir.join("restic-manager.db");
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    let code = match cli.command {
        Command::Events(EventsCommand::Verify { expect_head }) => {
            server::cli::verify(&db, expect_head, &mut out, &mut err)
        }
        Command::Events(EventsCommand::Export {
            after,
            stream,
            since,
            until,
            fixture,
        }) => {
            let time = |what: &str, v: Option<String>| -> Result<Option<String>, String> {
                v.map(|s| {
                    s.parse::<domain::Timestamp>()
                        .map(|t| t.to_string())
                        .map_err(|_| {
                            format!("--{what} must be an RFC 3339 time, e.g. 2026-11-28T03:00:00Z")
                        })
                })
                .transpose()
            };
            match (time("since", since), time("until", until)) {
                (Ok(since), Ok(until)) => server::cli::export(
                    &db,
                    &ExportFilter {
                        after,
                        stream,
                        since,
                        until,
                        fixture,
                    },
                    &mut out,
                    &mut err,
                ),
                (Err(m), _) | (_, Err(m)) => {
                    let _ = writeln!(err, "error: {m}");
                    2
                }
            }
        }
        Command::Events(EventsCommand::Import { file }) => {
            server::cli::import(&db, &file, &mut out, &mut err)
        }
        Command::Events(EventsCommand::Rebuild { projections }) => {
            server::cli::rebuild(&db, &projections, &mut out, &mut err)
        }
        Command::Serve(args) => {
            drop(out);
            return serve(cli.data_dir, args);
        }
    };
    ExitCode::from(code)
}

fn serve(data_dir: PathBuf, args: ServeArgs) -> ExitCode {
    let mut config = Config::for_data_dir(&data_dir);
    config.listen = args.listen;
    if let Some(k) = args.secret_key_file {
        config.secret_key_file = k;
    }
    config.base_url = args.base_url;
    config.offline_after_secs = args.offline_after;
    config.tls_cert = args.tls_cert;
    config.tls_key = args.tls_key;
    if let Some(d) = args.agent_binaries_dir {
        config.agent_binaries_dir = d;
    }
    config.fault_drop_agent_acks = args.fault_drop_acks;
    config.maintenance_tick_secs = args.maintenance_tick;
    config.alert_grace_secs = args.alert_grace;
    config.alert_tick_secs = args.alert_tick;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let shutdown = shutdown_signal();
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %config.listen, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        match server::run(config, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}
