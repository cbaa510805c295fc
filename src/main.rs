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
    /// Upload a Prometheus data directory's finished blocks to an S3 bucket (or a
    /// directory), as Thanos lays them out; blocks already there are skipped.
    Upload(UploadArgs),
}

#[derive(clap::Args)]
struct UploadArgs {
    /// The Prometheus data directory (its --storage.tsdb.path).
    #[arg(long)]
    from: PathBuf,
    /// The bucket to upload to.
    #[arg(long, required_unless_present = "to_dir", conflicts_with = "to_dir")]
    bucket: Option<String>,
    /// The S3 endpoint (`https://...`); AWS's endpoint of --region when not given.
    #[arg(long, requires = "bucket")]
    endpoint: Option<String>,
    /// A key prefix inside the bucket (a `/` is added when missing).
    #[arg(long, requires = "bucket", default_value = "")]
    prefix: String,
    /// The bucket's region.
    #[arg(long, requires = "bucket", default_value = "us-east-1")]
    region: String,
    /// Path-style URLs (`endpoint/bucket/key`), as most S3-compatible servers want.
    #[arg(long, requires = "bucket")]
    path_style: bool,
    /// The access key; AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) from
    /// the environment when not given (they stay out of the process list), else anonymous.
    #[arg(long, requires_all = ["bucket", "secret_key"])]
    access_key: Option<String>,
    /// The secret key that goes with --access-key.
    #[arg(long, requires = "access_key")]
    secret_key: Option<String>,
    /// A directory to upload to instead of a bucket.
    #[arg(long)]
    to_dir: Option<PathBuf>,
    /// External labels for the blocks' meta.json: `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    labels: String,
    /// Seconds one request to the bucket may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
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
        Command::Upload(args) => upload(args),
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

fn upload(args: UploadArgs) -> ExitCode {
    use promgate::storage::object::{FsObjects, ObjectStore, S3Location, S3Objects};
    let labels = match promgate::upload::parse_labels(&args.labels) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("--labels: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store: Box<dyn ObjectStore> = match (&args.to_dir, &args.bucket) {
        (Some(dir), _) => Box::new(FsObjects::new(dir)),
        (None, Some(bucket)) => {
            let mut prefix = args.prefix.trim_start_matches('/').to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            let location = S3Location {
                endpoint: args.endpoint.clone().unwrap_or_default(),
                bucket: bucket.clone(),
                prefix,
                region: args.region.clone(),
                path_style: args.path_style,
                access_key: args.access_key.clone(),
                secret_key: args.secret_key.clone(),
            };
            match S3Objects::new(&location, std::time::Duration::from_secs(args.timeout)) {
                Ok(s) => Box::new(s),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, None) => {
            eprintln!("give --bucket or --to-dir");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "uploading blocks of {} to {}",
        args.from.display(),
        store.describe()
    );
    let done = runtime.block_on(promgate::upload::upload_with(
        &args.from,
        store.as_ref(),
        &labels,
        &mut |outcome| println!("{outcome}"),
    ));
    match done {
        Ok(report) => {
            println!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("upload failed: {e}");
            ExitCode::FAILURE
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
