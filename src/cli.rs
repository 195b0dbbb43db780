//! The command line: `strata serve` (the default) and, as the service grows, the
//! client and tool subcommands of DESIGN.md.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::service;

/// Strata keeps every object on the right storage tier, automatically.
///
/// Configuration comes from environment variables and a `.env` file; see `.env.example`.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: catalogue and tiers, until interrupted.
    Serve,
}

/// Runs the parsed command line and turns the outcome into an exit code; errors are
/// printed as one line.
pub fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        // Logs go to stderr so that client subcommands can print results on stdout.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Config::from_env()
            .map_err(anyhow::Error::from)
            .and_then(|config| runtime()?.block_on(service::serve(config, shutdown_signal()))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
