//! `restic-manager-agent`: the small program that runs on every backed-up host.
//!
//! This first build only reports its version; enrolment and the WebSocket client come with
//! the agents issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("version") | Some("--version") | Some("-V") => {
            println!("restic-manager-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "restic-manager-agent {}: the command {other:?} is not available in this build",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
