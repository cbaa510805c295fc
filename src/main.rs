use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// promgate: one Prometheus API in front of many Prometheus servers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Prometheus HTTP API until SIGTERM or SIGINT.
    Run {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Listen address, overriding server.listen.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Check a configuration file; prints every problem and exits 1 when there is one.
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match promgate::config::Config::load(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in errors.0 {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run { config, listen } => {
            promgate::telemetry::init_tracing();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(promgate::server::run(config, listen)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
