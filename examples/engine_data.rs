//! Prints the engine benchmarks' data set (`benches/support/engine_dataset.rs`) on stdout:
//! OpenMetrics (second timestamps) for `promtool tsdb create-blocks-from openmetrics`, or
//! Prometheus text with millisecond timestamps for VictoriaMetrics'
//! `/api/v1/import/prometheus`. Used by `benches/engine_vs_peers.sh` (one day, the
//! defaults) and `benches/blocks.sh` (a week of fewer series at 60 s).
//!
//! `cargo run --release --example engine_data -- --end-ms 1700000000000 --format openmetrics`
//! `cargo run --release --example engine_data -- --end-ms 1700000000000 --format openmetrics \
//!     --days 7 --scrape-seconds 60 --targets 25`

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
    /// End of the data, unix ms (rounded down to the scrape interval); both peers and
    /// `engine_time` must get the same value.
    #[arg(long, required_unless_present = "list_queries")]
    end_ms: Option<i64>,
    /// What to print the data as.
    #[arg(long, value_enum, required_unless_present = "list_queries")]
    format: Option<Format>,
    /// Print the range query classes (`name<TAB>query` lines) instead of data.
    #[arg(long)]
    list_queries: bool,
    /// Days of data ending at `--end-ms`.
    #[arg(long, default_value_t = 1)]
    days: i64,
    /// Scrape interval in seconds (a divisor of a day).
    #[arg(long, default_value_t = dataset::SCRAPE_MS / 1000)]
    scrape_seconds: i64,
    /// Targets (40 series each), at most 40.
    #[arg(long, default_value_t = 40)]
    targets: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (Some(end_ms), Some(format)) = (args.end_ms, args.format) else {
        for (name, query) in dataset::RANGE_QUERIES {
            println!("{name}\t{query}");
        }
        return ExitCode::SUCCESS;
    };
    if args.days < 1
        || args.scrape_seconds < 1
        || dataset::DAY_MS % (args.scrape_seconds * 1000) != 0
    {
        eprintln!("engine_data: --days must be positive and --scrape-seconds divide a day");
        return ExitCode::FAILURE;
    }
    let data =
        dataset::Dataset::spanning(end_ms, args.days, args.scrape_seconds * 1000, args.targets);
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let written = match format {
        Format::Openmetrics => data.write_openmetrics(&mut out),
        Format::Prometheus => data.write_prometheus_text(&mut out),
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        eprintln!("engine_data: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
