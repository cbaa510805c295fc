//! The remote read client against real Prometheus 3.5 and 2.42 holding backfilled data and
//! external labels: both response types agree with each other and with the query API.

mod common;

use std::collections::BTreeMap;

use promgate::backend::client::http_client;
use promgate::realenv::synth::{SynthSpec, openmetrics};
use promgate::realenv::{PrometheusBinary, PrometheusOptions, PrometheusServer};
use promgate::storage::remote::{
    LabelMatcher, MatcherType, Query, ReadRequest, RemoteReadClient, RemoteReadConfig,
    RemoteSeries, SeriesData, encode_xor, xor_samples,
};

type Samples = Vec<(i64, u64)>;
type SeriesMap = BTreeMap<Vec<(String, String)>, Samples>;

struct Fixture {
    server: PrometheusServer,
    /// Evaluation time: between two samples, so range boundaries never hit one.
    at_ms: i64,
}

fn start(bin: PrometheusBinary) -> Fixture {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let spec = SynthSpec::hours_until(now_ms - 600_000, 6);
    let at_ms = spec.end_ms - 7_500;
    let server = PrometheusServer::start(
        &bin,
        PrometheusOptions::default()
            .labels(&[("cluster", "eu1"), ("replica", "a")])
            .data(openmetrics(&spec)),
    )
    .expect("prometheus starts");
    Fixture { server, at_ms }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn query(name: &str, extra: &[LabelMatcher], start: i64, end: i64) -> Query {
    let mut matchers = vec![LabelMatcher::new(MatcherType::Eq, "__name__", name)];
    matchers.extend_from_slice(extra);
    Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
        hints: None,
    }
}

fn to_map(series: &[RemoteSeries], start: i64, end: i64) -> SeriesMap {
    series
        .iter()
        .map(|s| {
            let samples = s
                .samples(start, end)
                .map(|r| r.map(|(t, v)| (t, v.to_bits())))
                .collect::<Result<Samples, _>>()
                .expect("chunks decode");
            (s.labels.clone(), samples)
        })
        .collect()
}

/// Reads `req` with the given config, checking which response type the server chose.
fn read(
    rt: &tokio::runtime::Runtime,
    url: &str,
    config: RemoteReadConfig,
    req: &ReadRequest,
    want_streamed: bool,
) -> Vec<Vec<RemoteSeries>> {
    let client = RemoteReadClient::new(http_client(), url, config);
    rt.block_on(async {
        let stream = client.stream(req).await.expect("answer");
        assert_eq!(stream.is_streamed(), want_streamed);
        client.read(req).await.expect("read")
    })
}

/// `name[6h]` at `at_ms` through the query API: the raw samples, without external labels.
fn query_api_samples(server: &PrometheusServer, name: &str, at_ms: i64) -> SeriesMap {
    let url = format!(
        "{}/api/v1/query?query={}&time={}.{:03}",
        server.url(),
        common::enc(&format!("{name}[6h]")),
        at_ms / 1000,
        at_ms % 1000
    );
    let (status, body) = common::get_json(&url);
    assert_eq!(status, 200, "{body}");
    let mut out = SeriesMap::new();
    for series in body["data"]["result"].as_array().expect("matrix") {
        let labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let samples: Samples = series["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().expect("ts") * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (t, v.to_bits())
            })
            .collect();
        out.insert(labels, samples);
    }
    out
}

fn without_external(map: &SeriesMap) -> SeriesMap {
    map.iter()
        .map(|(labels, samples)| {
            let labels = labels
                .iter()
                .filter(|(k, _)| k != "cluster" && k != "replica")
                .cloned()
                .collect();
            (labels, samples.clone())
        })
        .collect()
}

/// `strict_chunk_bytes`: the server's chunks must equal this encoder's output byte for byte.
fn check_server(bin: PrometheusBinary, strict_chunk_bytes: bool) {
    let fx = start(bin);
    let rt = runtime();
    let url = fx.server.url();
    let (start, end) = (fx.at_ms - 6 * 3_600_000, fx.at_ms);
    let names = ["demo_temperature_celsius", "demo_requests_total"];
    let req = ReadRequest {
        queries: names.iter().map(|n| query(n, &[], start, end)).collect(),
        accepted_response_types: vec![],
    };

    let streamed = read(&rt, &url, RemoteReadConfig::default(), &req, true);
    let samples = read(&rt, &url, RemoteReadConfig::samples_only(), &req, false);
    assert_eq!(streamed.len(), 2);
    assert_eq!(samples.len(), 2);

    for (i, name) in names.iter().enumerate() {
        let a = to_map(&streamed[i], start, end);
        let b = to_map(&samples[i], start, end);
        assert!(!a.is_empty(), "{name}: no series");
        assert_eq!(a, b, "{name}: streamed chunks and samples differ");
        for labels in a.keys() {
            let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            assert_eq!(get("__name__"), Some(*name));
            assert_eq!(get("cluster"), Some("eu1"), "{labels:?}");
            assert_eq!(get("replica"), Some("a"), "{labels:?}");
        }
        // 6 h at 15 s, the first sample 7.5 s after the range start.
        assert!(a.values().all(|s| s.len() == 1440), "{name}");
        let api = query_api_samples(&fx.server, name, fx.at_ms);
        assert_eq!(
            without_external(&a),
            api,
            "{name}: remote read vs query API"
        );
    }

    // Prometheus's chunk bytes are exactly what this encoder writes for the same samples.
    let mut chunks_seen = 0;
    for series in streamed.iter().flatten() {
        let SeriesData::Chunks(chunks) = &series.data else {
            panic!("streamed answer without chunks");
        };
        for chunk in chunks {
            let decoded: Vec<(i64, f64)> = xor_samples(&chunk.data)
                .expect("header")
                .collect::<Result<_, _>>()
                .expect("decodes");
            // Prometheus aims at 120 samples a chunk, but its head cuts at a predicted end
            // time, so where that falls depends on the data's alignment: at most twice that.
            assert!(
                !decoded.is_empty() && decoded.len() <= 240,
                "{} samples in a chunk",
                decoded.len()
            );
            let ours = encode_xor(&decoded).expect("fits");
            // 2.x's bit stream could leave one spare zero byte after a byte-aligned end.
            let theirs = match chunk.data.as_ref() {
                [rest @ .., 0] if !strict_chunk_bytes && rest.len() == ours.len() => rest,
                all => all,
            };
            assert_eq!(ours, theirs);
            chunks_seen += 1;
        }
    }
    assert!(chunks_seen > 100);

    // An equality matcher on an external label selects (or rejects) the whole server.
    let by_cluster = |cluster: &str| ReadRequest {
        queries: vec![query(
            names[0],
            &[LabelMatcher::new(MatcherType::Eq, "cluster", cluster)],
            start,
            end,
        )],
        accepted_response_types: vec![],
    };
    for config in [
        RemoteReadConfig::default(),
        RemoteReadConfig::samples_only(),
    ] {
        let streamed = config.accepted_response_types.len() > 1;
        let eu1 = read(&rt, &url, config.clone(), &by_cluster("eu1"), streamed);
        assert_eq!(to_map(&eu1[0], start, end), to_map(&samples[0], start, end));
        let us1 = read(&rt, &url, config, &by_cluster("us1"), streamed);
        assert!(us1[0].is_empty());
    }

    // A narrow range is trimmed on the client too (chunks hold up to 120 samples).
    let (s, e) = (fx.at_ms - 600_000, fx.at_ms - 300_000);
    let narrow = ReadRequest {
        queries: vec![query(names[0], &[], s, e)],
        accepted_response_types: vec![],
    };
    let got = read(&rt, &url, RemoteReadConfig::default(), &narrow, true);
    for samples in to_map(&got[0], s, e).values() {
        assert_eq!(samples.len(), 20);
        assert!(samples.iter().all(|(t, _)| (s..=e).contains(t)));
    }
}

#[test]
fn remote_read_prometheus_3_5_streamed_and_samples_agree_with_query_api() {
    check_server(
        PrometheusBinary::v3().expect("Prometheus 3.5 installed"),
        true,
    );
}

#[test]
fn remote_read_prometheus_2_42_streamed_and_samples_agree_with_query_api() {
    check_server(
        PrometheusBinary::v2().expect("Prometheus 2.42 installed"),
        false,
    );
}

#[test]
fn remote_read_error_status_is_typed() {
    let fx = start(PrometheusBinary::any().expect("a Prometheus installed"));
    let rt = runtime();
    // An invalid regex: Prometheus refuses the query.
    let req = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 1,
            matchers: vec![LabelMatcher::new(MatcherType::Re, "__name__", "(")],
            hints: None,
        }],
        accepted_response_types: vec![],
    };
    let client =
        RemoteReadClient::new(http_client(), &fx.server.url(), RemoteReadConfig::default());
    match rt.block_on(client.read(&req)) {
        Err(promgate::storage::remote::RemoteReadError::Http { status, .. }) => {
            assert!((400..600).contains(&status), "{status}")
        }
        other => panic!("expected an HTTP error, got {:?}", other.map(|r| r.len())),
    }
}

#[test]
fn remote_read_limits_give_typed_errors_not_memory_growth() {
    use promgate::storage::remote::RemoteReadError;
    let fx = start(PrometheusBinary::any().expect("a Prometheus installed"));
    let rt = runtime();
    let (start, end) = (fx.at_ms - 6 * 3_600_000, fx.at_ms);
    let req = ReadRequest {
        queries: vec![query("demo_requests_total", &[], start, end)],
        accepted_response_types: vec![],
    };
    let run = |config: RemoteReadConfig| {
        let client = RemoteReadClient::new(http_client(), &fx.server.url(), config);
        rt.block_on(client.read(&req)).map(|r| r.len())
    };
    let small_body = |config: RemoteReadConfig| RemoteReadConfig {
        max_response_bytes: 10_000,
        ..config
    };
    assert!(matches!(
        run(small_body(RemoteReadConfig::default())),
        Err(RemoteReadError::ResponseTooLarge { limit: 10_000 })
    ));
    assert!(matches!(
        run(small_body(RemoteReadConfig::samples_only())),
        Err(RemoteReadError::ResponseTooLarge { limit: 10_000 })
    ));
    assert!(matches!(
        run(RemoteReadConfig {
            max_frame_bytes: 100,
            ..RemoteReadConfig::default()
        }),
        Err(RemoteReadError::FrameTooLarge { limit: 100, .. })
    ));
}

/// Serves one canned HTTP response per connection (for answers no real server gives).
fn canned_server(
    rt: &tokio::runtime::Runtime,
    content_type: &'static str,
    body: Vec<u8>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn remote_read_client_reports_broken_answers_by_kind() {
    use promgate::storage::remote::{ChunkedReadResponse, RemoteReadError, encode_frame};
    use prost::Message;
    const STREAMED: &str = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let req = ReadRequest {
        queries: vec![query("x", &[], 0, 1)],
        accepted_response_types: vec![],
    };
    let read = |url: String| {
        let client = RemoteReadClient::new(http_client(), &url, RemoteReadConfig::default());
        rt.block_on(client.read(&req))
    };
    let mut frames = Vec::new();
    encode_frame(&ChunkedReadResponse::default().encode_to_vec(), &mut frames);
    encode_frame(&[0x10, 0x00], &mut frames); // query_index 0, explicitly

    let ok = read(canned_server(&rt, STREAMED, frames.clone()));
    assert!(matches!(ok.as_deref(), Ok([s]) if s.is_empty()), "{ok:?}");

    let mut truncated = frames.clone();
    truncated.truncate(truncated.len() - 1);
    let got = read(canned_server(&rt, STREAMED, truncated));
    assert!(
        matches!(got, Err(RemoteReadError::TruncatedFrame { .. })),
        "{got:?}"
    );

    let mut bad_crc = frames.clone();
    let last = bad_crc.len() - 3;
    bad_crc[last] ^= 0xff;
    let got = read(canned_server(&rt, STREAMED, bad_crc));
    assert!(
        matches!(got, Err(RemoteReadError::CrcMismatch { .. })),
        "{got:?}"
    );

    let mut wrong_query = Vec::new();
    encode_frame(&[0x10, 0x05], &mut wrong_query);
    let got = read(canned_server(&rt, STREAMED, wrong_query));
    assert!(
        matches!(
            got,
            Err(RemoteReadError::QueryIndexOutOfRange {
                index: 5,
                queries: 1
            })
        ),
        "{got:?}"
    );

    let got = read(canned_server(
        &rt,
        "application/x-protobuf",
        vec![0x05, 0x24, 1, 2],
    ));
    assert!(matches!(got, Err(RemoteReadError::Snappy(_))), "{got:?}");
}
