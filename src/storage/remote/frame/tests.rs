use super::*;
use crate::storage::remote::proto::{Chunk, ChunkEncoding, ChunkedSeries, Label};
use crate::storage::remote::xor::encode_xor;

const LIMITS: FrameLimits = FrameLimits {
    max_frame_bytes: 1 << 20,
    max_response_bytes: 1 << 24,
};

fn message(i: i64) -> ChunkedReadResponse {
    let data = encode_xor(&[(i * 1000, 1.0), (i * 1000 + 15_000, 2.0)]).expect("fits");
    ChunkedReadResponse {
        chunked_series: vec![ChunkedSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: format!("m{i}"),
            }],
            chunks: vec![Chunk {
                min_time_ms: i * 1000,
                max_time_ms: i * 1000 + 15_000,
                r#type: ChunkEncoding::Xor as i32,
                data: data.into(),
            }],
        }],
        query_index: i % 2,
    }
}

fn body(n: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        encode_frame(&message(i).encode_to_vec(), &mut out);
    }
    out
}

#[test]
fn frames_decode_whatever_the_body_split() {
    let bytes = body(5);
    for piece in [1, 2, 3, 7, 64, bytes.len()] {
        let mut dec = FrameDecoder::new(LIMITS);
        let mut got = Vec::new();
        for part in bytes.chunks(piece) {
            dec.push(part).expect("within limits");
            while let Some(m) = dec.next_message().expect("valid") {
                got.push(m);
            }
        }
        dec.finish().expect("ends on a boundary");
        assert_eq!(
            got,
            (0..5).map(message).collect::<Vec<_>>(),
            "piece {piece}"
        );
    }
}

#[test]
fn corrupted_crc_is_a_mismatch() {
    let mut bytes = body(1);
    bytes[1] ^= 0x01; // first CRC byte (length fits one byte)
    match decode_frames(&bytes, LIMITS) {
        Err(RemoteReadError::CrcMismatch { expected, got }) => assert_ne!(expected, got),
        other => panic!("{other:?}"),
    }
}

#[test]
fn corrupted_message_is_a_mismatch() {
    let mut bytes = body(2);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(matches!(
        decode_frames(&bytes, LIMITS),
        Err(RemoteReadError::CrcMismatch { .. })
    ));
}

#[test]
fn truncated_body_is_a_truncated_frame() {
    let bytes = body(3);
    for cut in 1..bytes.len() {
        let result = decode_frames(&bytes[..cut], LIMITS);
        let boundary = (0..=3).any(|n| body(n).len() == cut);
        if boundary {
            assert!(result.is_ok(), "cut {cut}");
        } else {
            assert!(
                matches!(result, Err(RemoteReadError::TruncatedFrame { .. })),
                "cut {cut}: {result:?}"
            );
        }
    }
}

#[test]
fn oversize_frame_is_refused_before_its_bytes_arrive() {
    let mut bytes = Vec::new();
    encode_frame(&vec![0u8; 5000], &mut bytes);
    let limits = FrameLimits {
        max_frame_bytes: 4096,
        ..LIMITS
    };
    let mut dec = FrameDecoder::new(limits);
    dec.push(&bytes[..3]).expect("within limits");
    assert!(matches!(
        dec.next_frame(),
        Err(RemoteReadError::FrameTooLarge {
            len: 5000,
            limit: 4096
        })
    ));
}

#[test]
fn overlong_length_varint_is_too_large() {
    let bytes = [0xff; 12];
    assert!(matches!(
        decode_frames(&bytes, LIMITS),
        Err(RemoteReadError::FrameTooLarge { .. })
    ));
}

#[test]
fn body_past_the_response_limit_is_refused() {
    let bytes = body(50);
    let limits = FrameLimits {
        max_response_bytes: bytes.len() - 1,
        ..LIMITS
    };
    assert!(matches!(
        decode_frames(&bytes, limits),
        Err(RemoteReadError::ResponseTooLarge { .. })
    ));
}

#[test]
fn valid_crc_over_garbage_is_a_protobuf_error() {
    let mut bytes = Vec::new();
    encode_frame(&[0x0a, 0xff, 0xff, 0x01], &mut bytes);
    assert!(matches!(
        decode_frames(&bytes, LIMITS),
        Err(RemoteReadError::Protobuf(_))
    ));
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = crate::storage::remote::xor::tests::XorShift(12345);
    let good = body(3);
    for round in 0..5000 {
        let mut bytes = if round % 2 == 0 {
            good.clone()
        } else {
            (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect()
        };
        for _ in 0..1 + rng.below(4) {
            if !bytes.is_empty() {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
        }
        // Also re-frame garbage with a valid CRC so the protobuf layer sees it.
        let mut framed = Vec::new();
        encode_frame(&bytes, &mut framed);
        for input in [&bytes, &framed] {
            if let Ok(messages) = decode_frames(input, LIMITS) {
                for m in messages {
                    for s in m.chunked_series {
                        for c in s.chunks {
                            if let Ok(it) = crate::storage::remote::xor::xor_samples(&c.data) {
                                let _ = it.count();
                            }
                        }
                    }
                }
            }
        }
    }
}
