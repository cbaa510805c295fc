use super::*;
use crate::storage::remote::client::decode_samples_response;
use crate::storage::remote::frame::{FrameLimits, decode_frames};
use crate::storage::remote::proto::{LabelMatcher, MatcherType, Query};
use crate::storage::remote::series::RemoteSeries;

/// The stale marker Prometheus writes when a series disappears: a NaN with its own payload.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

const LIMITS: FrameLimits = FrameLimits {
    max_frame_bytes: 1 << 24,
    max_response_bytes: 1 << 28,
};

fn ramp(n: i64) -> Vec<(i64, f64)> {
    (0..n)
        .map(|i| (1_000 + i * 15_000, i as f64 * 0.5))
        .collect()
}

fn pairs(labels: &[Label]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Decodes a streamed body into (query index, series) in order, as the client sees it.
fn decode_streamed(body: &[u8]) -> Vec<(i64, RemoteSeries)> {
    decode_frames(body, LIMITS)
        .unwrap()
        .into_iter()
        .flat_map(|m| {
            let index = m.query_index;
            m.chunked_series
                .into_iter()
                .map(move |s| (index, RemoteSeries::from_chunked(s).unwrap()))
        })
        .collect()
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

// === request ===

fn request() -> ReadRequest {
    ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 1_000,
            end_timestamp_ms: 2_000,
            matchers: vec![LabelMatcher::new(MatcherType::Eq, "__name__", "up")],
            hints: None,
        }],
        accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
    }
}

#[test]
fn a_client_request_decodes_back_to_the_same_message() {
    let raw = request().encode_to_vec();
    let body = compress(&raw);
    assert_eq!(decode_read_request(&body, raw.len()).unwrap(), request());
}

#[test]
fn a_request_decompressing_past_the_limit_is_refused_before_decompression() {
    let raw = request().encode_to_vec();
    let body = compress(&raw);
    assert!(matches!(
        decode_read_request(&body, raw.len() - 1),
        Err(RemoteReadError::RequestTooLarge { limit }) if limit == raw.len() - 1
    ));
    // A header announcing 1 GiB with no data behind it: refused by size, not by snappy.
    let lying = [0x80, 0x80, 0x80, 0x80, 0x04];
    assert!(matches!(
        decode_read_request(&lying, 1 << 20),
        Err(RemoteReadError::RequestTooLarge { .. })
    ));
}

#[test]
fn corrupt_snappy_in_a_request_is_a_snappy_error() {
    let mut body = compress(&request().encode_to_vec());
    body.truncate(body.len() - 3);
    assert!(matches!(
        decode_read_request(&body, 1 << 20),
        Err(RemoteReadError::Snappy(_))
    ));
    assert!(matches!(
        decode_read_request(&[], 1 << 20),
        Err(RemoteReadError::Snappy(_))
    ));
}

#[test]
fn valid_snappy_around_bad_protobuf_is_a_protobuf_error() {
    // Field 1 (queries), length-delimited, announcing 100 bytes that are not there.
    let body = compress(&[0x0a, 0x64, 0x08]);
    assert!(matches!(
        decode_read_request(&body, 1 << 20),
        Err(RemoteReadError::Protobuf(_))
    ));
}

// === negotiation ===

#[test]
fn negotiation_takes_the_first_supported_type_and_defaults_to_samples() {
    let samples = ResponseType::Samples as i32;
    let streamed = ResponseType::StreamedXorChunks as i32;
    assert_eq!(negotiate(&[]).unwrap(), ResponseType::Samples);
    assert_eq!(
        negotiate(&[streamed, samples]).unwrap(),
        ResponseType::StreamedXorChunks
    );
    assert_eq!(
        negotiate(&[samples, streamed]).unwrap(),
        ResponseType::Samples
    );
    assert_eq!(
        negotiate(&[7, -1, streamed]).unwrap(),
        ResponseType::StreamedXorChunks
    );
}

#[test]
fn negotiation_fails_when_only_unknown_types_are_accepted() {
    assert!(matches!(
        negotiate(&[2, 99]),
        Err(RemoteReadError::NoSupportedResponseType { accepted }) if accepted == [2, 99]
    ));
}

// === SAMPLES ===

#[test]
fn samples_answer_round_trips_several_queries_in_order_with_sorted_labels() {
    let mut b = SamplesResponseBuilder::new(3, 1 << 20);
    b.add_series(2, &[("job", "b"), ("__name__", "up")], ramp(3))
        .unwrap();
    b.add_series(0, &[("z", "1"), ("a", "2")], ramp(5)).unwrap();
    let proto_labels = vec![
        Label {
            name: "m".into(),
            value: "x".into(),
        },
        Label {
            name: "b".into(),
            value: "y".into(),
        },
    ];
    b.add_series(2, &proto_labels, vec![(7, 1.0)]).unwrap();
    let expected_len = b.encoded_len();
    let body = b.finish().unwrap();
    assert_eq!(snap::raw::decompress_len(&body).unwrap(), expected_len);

    let response = decode_samples_response(&body, 1 << 20).unwrap();
    assert_eq!(response.results.len(), 3);
    assert!(response.results[1].timeseries.is_empty());
    let q0 = &response.results[0].timeseries;
    assert_eq!(q0.len(), 1);
    assert_eq!(pairs(&q0[0].labels), owned(&[("a", "2"), ("z", "1")]));
    let q2 = &response.results[2].timeseries;
    assert_eq!(
        pairs(&q2[0].labels),
        owned(&[("__name__", "up"), ("job", "b")])
    );
    assert_eq!(pairs(&q2[1].labels), owned(&[("b", "y"), ("m", "x")]));
    let got: Vec<(i64, f64)> = q2[0]
        .samples
        .iter()
        .map(|s| (s.timestamp, s.value))
        .collect();
    assert_eq!(got, ramp(3));
    let series = RemoteSeries::from_time_series(q0[0].clone());
    assert_eq!(series.all_samples().unwrap(), ramp(5));
}

#[test]
fn samples_answer_without_series_still_has_one_result_per_query() {
    for queries in [0, 1, 4] {
        let body = SamplesResponseBuilder::new(queries, 1 << 10)
            .finish()
            .unwrap();
        let response = decode_samples_response(&body, 1 << 10).unwrap();
        assert_eq!(response.results.len(), queries);
        assert!(response.results.iter().all(|r| r.timeseries.is_empty()));
    }
}

#[test]
fn samples_answer_keeps_a_series_without_samples() {
    let mut b = SamplesResponseBuilder::new(1, 1 << 10);
    b.add_series(0, &[("a", "1")], std::iter::empty()).unwrap();
    let response = decode_samples_response(&b.finish().unwrap(), 1 << 10).unwrap();
    let ts = &response.results[0].timeseries;
    assert_eq!(ts.len(), 1);
    assert!(ts[0].samples.is_empty());
    assert_eq!(pairs(&ts[0].labels), owned(&[("a", "1")]));
}

#[test]
fn samples_answer_preserves_nan_payloads_and_the_stale_marker() {
    let input = vec![
        (1, f64::from_bits(STALE_NAN_BITS)),
        (2, f64::NAN),
        (3, f64::INFINITY),
        (4, f64::from_bits(0xfff8_0000_0000_0001)),
    ];
    let mut b = SamplesResponseBuilder::new(1, 1 << 10);
    b.add_series(0, &[("a", "1")], input.clone()).unwrap();
    let response = decode_samples_response(&b.finish().unwrap(), 1 << 10).unwrap();
    let series = RemoteSeries::from_time_series(response.results[0].timeseries[0].clone());
    assert_eq!(bits(&series.all_samples().unwrap()), bits(&input));
}

#[test]
fn samples_answer_at_exactly_the_limit_passes_and_one_byte_less_is_refused() {
    let build = |limit: usize| {
        let mut b = SamplesResponseBuilder::new(2, limit);
        b.add_series(0, &[("__name__", "up")], ramp(200))?;
        b.add_series(1, &[("__name__", "down")], ramp(1))?;
        Ok::<_, RemoteReadError>(b.encoded_len())
    };
    let exact = build(1 << 20).unwrap();
    assert_eq!(build(exact).unwrap(), exact);
    assert!(matches!(
        build(exact - 1),
        Err(RemoteReadError::ResponseTooLarge { limit }) if limit == exact - 1
    ));
}

#[test]
fn samples_answer_stops_reading_an_endless_series_at_the_limit_and_keeps_what_came_before() {
    let mut b = SamplesResponseBuilder::new(1, 4 << 10);
    b.add_series(0, &[("a", "1")], ramp(3)).unwrap();
    let before = b.encoded_len();
    let endless = (0..).map(|i| (i, 1.0));
    assert!(matches!(
        b.add_series(0, &[("a", "2")], endless),
        Err(RemoteReadError::ResponseTooLarge { .. })
    ));
    assert_eq!(b.encoded_len(), before);
    let response = decode_samples_response(&b.finish().unwrap(), 4 << 10).unwrap();
    assert_eq!(response.results[0].timeseries.len(), 1);
    assert_eq!(response.results[0].timeseries[0].samples.len(), 3);
}

#[test]
fn samples_answer_refuses_a_query_index_the_request_did_not_have() {
    let mut b = SamplesResponseBuilder::new(2, 1 << 10);
    assert!(matches!(
        b.add_series(2, &[("a", "1")], ramp(1)),
        Err(RemoteReadError::QueryIndexOutOfRange {
            index: 2,
            queries: 2
        })
    ));
}

// === STREAMED_XOR_CHUNKS ===

#[test]
fn streamed_answer_round_trips_several_queries_one_series_per_message() {
    let mut w = ChunkedResponseWriter::new(3, DEFAULT_MAX_BYTES_IN_FRAME);
    w.write_series(0, &[("job", "a"), ("__name__", "up")], ramp(10))
        .unwrap();
    w.write_series(0, &[("__name__", "up"), ("job", "b")], ramp(20))
        .unwrap();
    w.write_series(2, &[("z", "9")], ramp(1)).unwrap();
    assert_eq!(w.frames(), 3);
    let body = w.finish();

    let messages = decode_frames(&body, LIMITS).unwrap();
    assert!(messages.iter().all(|m| m.chunked_series.len() == 1));
    let got = decode_streamed(&body);
    let summary: Vec<_> = got
        .iter()
        .map(|(i, s)| (*i, s.labels.clone(), s.all_samples().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, owned(&[("__name__", "up"), ("job", "a")]), ramp(10)),
            (0, owned(&[("__name__", "up"), ("job", "b")]), ramp(20)),
            (2, owned(&[("z", "9")]), ramp(1)),
        ]
    );
    // Sorted on the wire too, not only by the client's decoding.
    assert_eq!(
        pairs(&messages[0].chunked_series[0].labels),
        owned(&[("__name__", "up"), ("job", "a")])
    );
}

#[test]
fn streamed_answer_without_series_is_an_empty_body() {
    let mut w = ChunkedResponseWriter::new(1, DEFAULT_MAX_BYTES_IN_FRAME);
    assert!(w.take_ready().is_none());
    let body = w.finish();
    assert!(body.is_empty());
    assert!(decode_frames(&body, LIMITS).unwrap().is_empty());
}

#[test]
fn streamed_series_without_samples_writes_no_frame() {
    let mut w = ChunkedResponseWriter::new(1, DEFAULT_MAX_BYTES_IN_FRAME);
    w.write_series(0, &[("a", "1")], std::iter::empty())
        .unwrap();
    assert_eq!(w.frames(), 0);
    assert!(w.take_ready().is_none());
    assert!(w.finish().is_empty());
}

#[test]
fn streamed_series_of_1000_samples_is_cut_into_chunks_of_120() {
    let samples = ramp(1000);
    let mut w = ChunkedResponseWriter::new(1, DEFAULT_MAX_BYTES_IN_FRAME);
    w.write_series(0, &[("a", "1")], samples.clone()).unwrap();
    let messages = decode_frames(&w.finish(), LIMITS).unwrap();
    assert_eq!(messages.len(), 1);
    let chunks = &messages[0].chunked_series[0].chunks;
    assert_eq!(chunks.len(), 9);
    for (i, chunk) in chunks.iter().enumerate() {
        let part = &samples[i * 120..((i + 1) * 120).min(1000)];
        assert_eq!(chunk.r#type, ChunkEncoding::Xor as i32);
        assert_eq!(chunk.min_time_ms, part[0].0, "chunk {i}");
        assert_eq!(chunk.max_time_ms, part[part.len() - 1].0, "chunk {i}");
        let n = crate::storage::remote::xor::xor_samples(&chunk.data)
            .unwrap()
            .num_samples();
        assert_eq!(usize::from(n), part.len(), "chunk {i}");
    }
    let series = RemoteSeries::from_chunked(messages[0].chunked_series[0].clone()).unwrap();
    assert_eq!(series.all_samples().unwrap(), samples);
}

#[test]
fn streamed_answer_preserves_nan_payloads_and_the_stale_marker() {
    let input = vec![
        (1, 1.0),
        (2, f64::from_bits(STALE_NAN_BITS)),
        (3, f64::NAN),
        (4, f64::from_bits(STALE_NAN_BITS)),
        (5, -0.0),
        (6, f64::NEG_INFINITY),
    ];
    let mut w = ChunkedResponseWriter::new(1, DEFAULT_MAX_BYTES_IN_FRAME);
    w.write_series(0, &[("a", "1")], input.clone()).unwrap();
    let got = decode_streamed(&w.finish());
    assert_eq!(bits(&got[0].1.all_samples().unwrap()), bits(&input));
}

#[test]
fn a_series_over_the_frame_budget_continues_in_messages_under_the_same_labels() {
    const BUDGET: usize = 2_000;
    // Irregular values so each 120-sample chunk is several hundred bytes.
    let samples: Vec<(i64, f64)> = (0..1000)
        .map(|i| (i * 15_000 + (i * 7919) % 1000, (i as f64).sin() * 1e6))
        .collect();
    let mut w = ChunkedResponseWriter::new(2, BUDGET);
    w.write_series(1, &[("job", "x"), ("__name__", "big")], samples.clone())
        .unwrap();
    w.write_series(1, &[("__name__", "small")], ramp(5))
        .unwrap();
    let body = w.finish();

    // A client whose frame limit is the budget accepts every frame.
    let strict = FrameLimits {
        max_frame_bytes: BUDGET,
        max_response_bytes: 1 << 24,
    };
    let messages = decode_frames(&body, strict).unwrap();
    assert!(messages.len() > 2, "{} messages", messages.len());
    assert!(messages.iter().all(|m| m.encoded_len() <= BUDGET));
    assert!(messages.iter().all(|m| m.query_index == 1));
    assert!(messages.iter().all(|m| m.chunked_series.len() == 1));

    let (big, small) = messages.split_at(messages.len() - 1);
    let mut joined = Vec::new();
    for m in big {
        let series = RemoteSeries::from_chunked(m.chunked_series[0].clone()).unwrap();
        assert_eq!(series.labels, owned(&[("__name__", "big"), ("job", "x")]));
        assert!(!m.chunked_series[0].chunks.is_empty());
        joined.extend(series.all_samples().unwrap());
    }
    assert_eq!(bits(&joined), bits(&samples));
    let small = RemoteSeries::from_chunked(small[0].chunked_series[0].clone()).unwrap();
    assert_eq!(small.all_samples().unwrap(), ramp(5));
}

#[test]
fn messages_are_filled_up_to_the_budget_before_being_cut() {
    const BUDGET: usize = 2_000;
    let samples: Vec<(i64, f64)> = (0..2000)
        .map(|i| (i * 15_000, (i as f64).cos() * 1e3))
        .collect();
    let mut w = ChunkedResponseWriter::new(1, BUDGET);
    w.write_series(0, &[("a", "1")], samples).unwrap();
    let messages = decode_frames(&w.finish(), LIMITS).unwrap();
    assert!(messages.len() > 2, "{} messages", messages.len());
    // Each message but the last was cut because its successor's first chunk did not fit.
    for pair in messages.windows(2) {
        assert!(pair[0].encoded_len() <= BUDGET);
        let mut grown = pair[0].clone();
        let next_chunk = pair[1].chunked_series[0].chunks[0].clone();
        grown.chunked_series[0].chunks.push(next_chunk);
        assert!(grown.encoded_len() > BUDGET, "{}", grown.encoded_len());
    }
}

#[test]
fn a_budget_smaller_than_one_chunk_still_makes_progress_one_chunk_per_message() {
    let mut w = ChunkedResponseWriter::new(1, 10);
    w.write_series(0, &[("a", "1")], ramp(300)).unwrap();
    let messages = decode_frames(&w.finish(), LIMITS).unwrap();
    assert_eq!(messages.len(), 3);
    assert!(
        messages
            .iter()
            .all(|m| m.chunked_series[0].chunks.len() == 1)
    );
}

#[test]
fn taken_pieces_are_whole_frames_that_concatenate_to_the_full_answer() {
    let mut w = ChunkedResponseWriter::new(2, DEFAULT_MAX_BYTES_IN_FRAME);
    let mut pieces = Vec::new();
    for i in 0..4 {
        w.write_series(i % 2, &[("i", i.to_string())], ramp(50 + i as i64))
            .unwrap();
        let piece = w.take_ready().unwrap();
        // Each piece decodes alone: frames never straddle two pieces.
        assert_eq!(decode_frames(&piece, LIMITS).unwrap().len(), 1);
        pieces.push(piece);
        assert!(w.take_ready().is_none());
    }
    assert!(w.finish().is_empty());
    let body: Vec<u8> = pieces.concat();
    let got = decode_streamed(&body);
    assert_eq!(got.len(), 4);
    for (i, (index, series)) in got.iter().enumerate() {
        assert_eq!(*index, (i % 2) as i64);
        assert_eq!(series.all_samples().unwrap(), ramp(50 + i as i64));
    }
}

#[test]
fn streamed_answer_refuses_a_query_index_the_request_did_not_have() {
    let mut w = ChunkedResponseWriter::new(1, DEFAULT_MAX_BYTES_IN_FRAME);
    assert!(matches!(
        w.write_series(1, &[("a", "1")], ramp(1)),
        Err(RemoteReadError::QueryIndexOutOfRange {
            index: 1,
            queries: 1
        })
    ));
    assert_eq!(w.frames(), 0);
}

#[test]
fn content_types_match_what_prometheus_clients_expect() {
    assert_eq!(SAMPLES_CONTENT_TYPE, "application/x-protobuf");
    assert_eq!(SAMPLES_CONTENT_ENCODING, "snappy");
    assert!(STREAMED_CONTENT_TYPE.starts_with("application/x-streamed-protobuf;"));
    assert!(STREAMED_CONTENT_TYPE.ends_with("proto=prometheus.ChunkedReadResponse"));
}
