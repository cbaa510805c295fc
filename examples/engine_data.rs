//! Prints the engine benchmarks' data set (`benches/support/engine_dataset.rs`) on stdout:
//! OpenMetrics (second timestamps) for `promtool tsdb create-blocks-from openmetrics`, or
//! Prometheus text with millisecond timestamps for VictoriaMetrics'
//! `/api/v1/import/prometheus`. Used by `benches/engine_vs_peers.sh`.
//!
//! `cargo run --release --example engine_data -- --end-ms 1700000000000 --format openmetrics`

#[path = "../benches/support/engine_dataset.rs"]
mod dataset;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Openmetrics,
    Prometheus,
}

#[derive(Parser, Debug)]
struct Args {
    /// End of the day of data, unix ms (rounded down to 30 s); both peers and
    /// `engine_time` must get the same value.
    #[arg(long)]
    end_ms: i64,
    #[arg(long, value_enum)]
    format: Format,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let data = dataset::Dataset::ending_at(args.end_ms);
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let written = match args.format {
        Format::Openmetrics => data.write_openmetrics(&mut out),
        Format::Prometheus => data.write_prometheus_text(&mut out),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("engine_data: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
