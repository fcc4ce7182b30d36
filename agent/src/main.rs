//! `restic-manager-agent`: the small program that runs on every backed-up host.
//!
//! `enroll` trades a one-time token for a persistent bearer and writes the config;
//! `run` keeps a WebSocket to the server open (dialling out, so hosts behind NAT need no open
//! port), stores the repository credentials and the schedule set the server pushes in an
//! encrypted file, fires the schedules itself (also while the server is unreachable), and
//! delivers durable messages through an on-disk outbox.
//!
//! Exit codes: 0 stopped; 1 bad configuration or a failed enrolment; 3 the server refused
//! this agent for good (deleted host, unknown bearer); 4 protocol versions do not match.

mod browse;
mod client;
mod config;
mod facts;
mod hooks;
mod jobs;
mod outbox;
mod restic;
mod restore;
mod scheduler;
mod secrets;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "restic-manager-agent", version, about = "restic-manager agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this host with a one-time token and write the agent's config.
    Enroll {
        /// Server URL, e.g. https://backup.example.org
        #[arg(long, env = "RM_SERVER")]
        server: String,
        /// The one-time enrolment token.
        #[arg(long, env = "RM_TOKEN")]
        token: String,
        /// Config file to write.
        #[arg(
            long,
            env = "RM_AGENT_CONFIG",
            default_value = "/etc/restic-manager/agent.toml"
        )]
        config: PathBuf,
        /// State directory (secrets, outbox).
        #[arg(
            long,
            env = "RM_AGENT_STATE_DIR",
            default_value = "/var/lib/restic-manager"
        )]
        state_dir: PathBuf,
        /// SHA-256 (hex) of the server's TLS leaf certificate to pin.
        #[arg(long)]
        cert_pin: Option<String>,
    },
    /// Connect to the server and serve it until stopped.
    Run {
        /// Config file.
        #[arg(
            long,
            env = "RM_AGENT_CONFIG",
            default_value = "/etc/restic-manager/agent.toml"
        )]
        config: PathBuf,
        /// State directory (secrets, outbox).
        #[arg(
            long,
            env = "RM_AGENT_STATE_DIR",
            default_value = "/var/lib/restic-manager"
        )]
        state_dir: PathBuf,
    },
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Version => {
            println!("restic-manager-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Enroll {
            server,
            token,
            config,
            state_dir,
            cert_pin,
        } => rt.block_on(client::enroll(server, token, config, state_dir, cert_pin)),
        Command::Run { config, state_dir } => rt.block_on(client::run(config, state_dir)),
    }
}
