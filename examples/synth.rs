//! Prints synthetic OpenMetrics data (see `promgate::realenv::synth`) on stdout, ready for
//! `promtool tsdb create-blocks-from openmetrics`. Used by `benches/proxy.sh`.
//!
//! `cargo run --release --example synth -- --hours 48 --instances 25 > data.om`

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use promgate::realenv::synth::{SERIES_PER_INSTANCE, SynthSpec, openmetrics};

/// Synthetic OpenMetrics data at 15 s ending a few minutes before now.
#[derive(Parser, Debug)]
struct Args {
    /// Length of the data, hours.
    #[arg(long, default_value_t = 48)]
    hours: i64,
    /// Minutes between the end of the data and now.
    #[arg(long, default_value_t = 5)]
    end_minutes_ago: i64,
    /// Instances per metric (each has 9 series).
    #[arg(long, default_value_t = 4)]
    instances: usize,
    /// Scrape offset, ms.
    #[arg(long, default_value_t = 0)]
    offset_ms: i64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let end = promgate::time::now_ms() - args.end_minutes_ago * 60_000;
    let mut spec = SynthSpec::hours_until(end, args.hours).offset(args.offset_ms);
    spec.instances = args.instances;
    let text = openmetrics(&spec);
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
        eprintln!("synth: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "{} series, {samples} samples",
        spec.instances * SERIES_PER_INSTANCE
    );
    ExitCode::SUCCESS
}
