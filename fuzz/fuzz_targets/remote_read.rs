//! Whatever a remote read server sends, decoding it gives series or an error, never a panic
//! or an allocation the limits did not allow.
//!
//! Input: one byte choosing what the rest is, then the bytes:
//!   0: a streamed body (frames of ChunkedReadResponse), every chunk decoded;
//!   1: a SAMPLES body (snappy-compressed ReadResponse);
//!   anything else: one XOR chunk, decoded both lazily and in one go.

#![no_main]

use libfuzzer_sys::fuzz_target;
use promgate::storage::remote::{
    FrameLimits, RemoteSeries, decode_frames, decode_samples_response, xor_samples,
};

const LIMITS: FrameLimits = FrameLimits {
    max_frame_bytes: 1 << 20,
    max_response_bytes: 4 << 20,
};

fn decode_chunk(chunk: &[u8]) {
    if let Ok(iter) = xor_samples(chunk) {
        let lazy: Vec<_> = iter.clone().collect();
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let whole = iter.clone().decode_into(&mut ts, &mut vs);
        // Both ways agree on the samples before any error.
        if whole.is_ok() {
            assert!(lazy.iter().all(Result::is_ok));
            assert_eq!(lazy.len(), ts.len());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            if let Ok(messages) = decode_frames(body, LIMITS) {
                for m in messages {
                    for s in m.chunked_series {
                        if let Ok(series) = RemoteSeries::from_chunked(s) {
                            let _ = series.all_samples();
                        }
                    }
                }
            }
        }
        1 => {
            if let Ok(response) = decode_samples_response(body, LIMITS.max_response_bytes) {
                for r in response.results {
                    for ts in r.timeseries {
                        let _ = RemoteSeries::from_time_series(ts).all_samples();
                    }
                }
            }
        }
        _ => decode_chunk(body),
    }
});
