//! The command line: a thin shell over the library, one file per command.
//!
//! Errors reach the user as one line on stderr and a non-zero exit.

mod bench;
mod cacert;
mod client;
mod config_check;
mod dlq;
mod events;
mod logging;
mod rebuild;
pub mod samples;
mod send;
mod serve;
mod sign;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
pub use logging::init_logging;

/// tradehook: a resilient webhook gateway for trading systems.
#[derive(Debug, Parser)]
#[command(name = "tradehook", version, about)]
pub struct Cli {
    /// Configuration file (TOML); without one, the embedded defaults are used.
    #[arg(long, short, global = true, env = "TRADEHOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Sign and POST a sample or given event to a running gateway, like the seeds' curl tests.
    Send(send::SendArgs),
    /// Print the signature headers for a body, ready for curl.
    Sign(sign::SignArgs),
    /// Configuration commands.
    Config {
        /// What to do with the configuration.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Load-test a receiver with unique signed events and report latency and throughput.
    Bench(bench::BenchArgs),
    /// Recompute all trading state from the stored raw events (gateway stopped).
    RebuildState(rebuild::RebuildArgs),
    /// Stored events of a running gateway.
    Events {
        /// What to do.
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The dead-letter queue of a running gateway.
    Dlq {
        /// What to do.
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Put one stored event back in the processing queue.
    Replay {
        /// The event id (`evt_…`).
        id: String,
        #[command(flatten)]
        api: client::ApiArgs,
    },
}

/// `tradehook config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration and print a summary (secrets hidden).
    Check,
}

/// A command whose output goes to `head` ends quietly when the reader stops, killed by SIGPIPE
/// as `cat` is, instead of panicking on the broken pipe. SIGPIPE itself stays ignored (Rust's
/// default): with its default action, a write to a connection the server had reset (tokio
/// writes sockets with write(2), which raises it) killed `send` or `events` without a word.
fn end_like_cat_on_a_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        // What print! panics with when stdout is a pipe nobody reads (EPIPE is 32 on Linux).
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("(os error 32)")) {
            // SAFETY: restores SIGPIPE's default action and raises it, which ends the process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        report(info);
    }));
}

/// Parses arguments, runs the command, and turns any error into one line and exit code 1.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve | Command::Bench(_)) {
        end_like_cat_on_a_closed_stdout();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: it panics on a closed stderr, and the exit code must stay 1.
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn one_line(error: &anyhow::Error) -> String {
    let text = error.chain().map(|e| e.to_string()).collect::<Vec<_>>().join(": ");
    text.replace('\n', " ")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve::run(load(&cli.config)?).await,
        Command::Send(args) => send::run(args, cli.config.as_deref()).await,
        Command::Sign(args) => sign::run(args),
        Command::Config { action: ConfigAction::Check } => config_check::run(cli.config.as_deref()),
        Command::Bench(args) => bench::run(args).await,
        Command::RebuildState(args) => rebuild::run(args, load(&cli.config)?).await,
        Command::Events { command } => events::run(command, &load(&cli.config)?).await,
        Command::Dlq { command } => dlq::run(command, &load(&cli.config)?).await,
        Command::Replay { id, api } => events::replay(id, api, &load(&cli.config)?).await,
    }
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(Config::load(path.as_deref())?)
}
