//! Times one remote read of everything a selector matches, first as STREAMED_XOR_CHUNKS and
//! then as SAMPLES, decoding every sample, and prints one line per response type. Used by
//! `benches/remote_read.sh`.
//!
//! `cargo run --release --example remote_read_bench -- http://127.0.0.1:9090 \
//!     --match '__name__=~demo_.*' --start 1700000000000 --end 1700172800000`

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use promgate::backend::client::{HttpClient, http_client};
use promgate::storage::remote::proto::{LabelMatcher, MatcherType, Query, ReadRequest};
use promgate::storage::remote::{
    RemoteReadClient, RemoteReadConfig, ResponseType, SeriesData, xor_samples,
};
use prost::Message;

#[derive(Parser, Debug)]
struct Args {
    /// The server's root URL; `/api/v1/read` is appended.
    url: String,
    /// A label matcher: `name=value`, `name!=value`, `name=~regex` or `name!~regex`.
    #[arg(long = "match", required = true)]
    matchers: Vec<String>,
    /// Range start, unix ms.
    #[arg(long)]
    start: i64,
    /// Range end (inclusive), unix ms.
    #[arg(long)]
    end: i64,
}

fn parse_matcher(text: &str) -> Result<LabelMatcher, String> {
    // Two-character operators first, so `=~` is not taken for `=`.
    for (op, kind) in [
        ("=~", MatcherType::Re),
        ("!~", MatcherType::Nre),
        ("!=", MatcherType::Neq),
        ("=", MatcherType::Eq),
    ] {
        if let Some((name, value)) = text.split_once(op) {
            return Ok(LabelMatcher::new(kind, name, value));
        }
    }
    Err(format!("matcher {text:?} has no =, !=, =~ or !~"))
}

/// What one read brought back.
struct Tally {
    series: usize,
    samples: usize,
}

/// The timed part: the exchange and the decoding of every sample inside the range.
async fn read_all(
    client: &RemoteReadClient,
    request: &ReadRequest,
    start: i64,
    end: i64,
) -> Result<Tally, String> {
    let mut stream = client.stream(request).await.map_err(|e| e.to_string())?;
    let mut tally = Tally {
        series: 0,
        samples: 0,
    };
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    while let Some((_, series)) = stream.next_series().await.map_err(|e| e.to_string())? {
        tally.series += 1;
        match &series.data {
            SeriesData::Samples(samples) => {
                tally.samples += samples
                    .iter()
                    .filter(|(t, _)| (start..=end).contains(t))
                    .count();
            }
            SeriesData::Listed => {}
            SeriesData::Chunks(chunks) => {
                for chunk in chunks {
                    ts.clear();
                    vs.clear();
                    xor_samples(&chunk.data)
                        .and_then(|mut it| it.decode_into(&mut ts, &mut vs))
                        .map_err(|e| e.to_string())?;
                    // Chunks overlapping the range are sent whole.
                    tally.samples += ts.iter().filter(|t| (start..=end).contains(*t)).count();
                }
            }
        }
    }
    Ok(tally)
}

/// The response body's size on the wire, from a second, untimed exchange (the client does
/// not expose it).
async fn body_bytes(
    http: &HttpClient,
    url: &str,
    request: &ReadRequest,
    kind: ResponseType,
) -> Result<usize, String> {
    let mut request = request.clone();
    request.accepted_response_types = vec![kind as i32];
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|e| e.to_string())?;
    let req = Request::post(format!("{}/api/v1/read", url.trim_end_matches('/')))
        .header(header::CONTENT_ENCODING, "snappy")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = http.request(req).await.map_err(|e| e.to_string())?;
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(collected.to_bytes().len())
}

async fn run(args: Args) -> Result<(), String> {
    let matchers = args
        .matchers
        .iter()
        .map(|m| parse_matcher(m))
        .collect::<Result<Vec<_>, _>>()?;
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: args.start,
            end_timestamp_ms: args.end,
            matchers,
            hints: None,
        }],
        accepted_response_types: Vec::new(),
    };
    let http = http_client();
    for (name, kind) in [
        ("streamed_xor_chunks", ResponseType::StreamedXorChunks),
        ("samples", ResponseType::Samples),
    ] {
        let config = RemoteReadConfig {
            accepted_response_types: vec![kind],
            // Two days of 250 series as SAMPLES is ~30 MB; leave room for more.
            max_response_bytes: 4 << 30,
            ..RemoteReadConfig::default()
        };
        let client = RemoteReadClient::new(http.clone(), &args.url, config);
        let began = Instant::now();
        let tally = read_all(&client, &request, args.start, args.end).await?;
        let secs = began.elapsed().as_secs_f64();
        let bytes = body_bytes(&http, &args.url, &request, kind).await?;
        println!(
            "type={name} secs={secs:.4} series={} samples={} samples_per_s={:.0} bytes={bytes}",
            tally.series,
            tally.samples,
            tally.samples as f64 / secs.max(1e-9),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("remote_read_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote_read_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
