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
    /// Start an HA pair and a second data centre of real Prometheus servers with synthetic
    /// data (installing Prometheus when missing), and promgate in front of them.
    Demo {
        /// Where promgate listens.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// Hours of synthetic history per server.
        #[arg(long, default_value_t = 48)]
        hours: i64,
        /// Where the servers' data and the configuration go (a temporary directory when
        /// not given).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
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
        Command::Run { config, listen } => serve(config, listen),
        Command::Demo { listen, hours, dir } => {
            let temp = match dir {
                Some(_) => None,
                None => match tempfile::tempdir() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        eprintln!("cannot create a temporary directory: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let dir = dir.unwrap_or_else(|| {
                temp.as_ref()
                    .map(|t| t.path().to_path_buf())
                    .unwrap_or_default()
            });
            let demo = match promgate::demo::prepare_demo(&dir, &listen, hours) {
                Ok(demo) => demo,
                Err(e) => {
                    eprintln!("the demo could not start: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("{}", demo.tips(&listen));
            println!("Ctrl-C stops promgate and the servers.");
            let code = serve(demo.config_path.clone(), Some(listen));
            drop(demo);
            code
        }
    }
}

fn serve(config: PathBuf, listen: Option<String>) -> ExitCode {
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
