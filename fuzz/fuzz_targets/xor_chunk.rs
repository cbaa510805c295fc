//! XOR chunks, both ways.
//!
//! Input: bytes taken first as a chunk to decode — lazily and in one go, which must agree
//! and never panic — and then as samples (16 bytes each: timestamp, value bits) to encode:
//! whatever the encoder accepts decodes back to the same samples, bit for bit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use promgate::storage::remote::{XorEncoder, xor_samples};

fn decode_both_ways(chunk: &[u8]) {
    let Ok(iter) = xor_samples(chunk) else {
        return;
    };
    let lazy: Vec<_> = iter.clone().collect();
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let whole = iter.clone().decode_into(&mut ts, &mut vs);
    let good = lazy.iter().take_while(|s| s.is_ok()).count();
    match whole {
        Ok(n) => {
            assert_eq!(good, lazy.len(), "one-go decoding hid an error");
            assert_eq!((n, ts.len(), vs.len()), (good, good, good));
        }
        Err(_) => {
            assert!(good < lazy.len(), "one-go decoding failed where lazy did not");
            assert!(ts.is_empty() && vs.is_empty(), "a failed decoding appended samples");
        }
    }
    for (sample, (t, v)) in lazy.iter().flatten().zip(ts.iter().zip(&vs)) {
        assert_eq!(sample.0, *t);
        assert_eq!(sample.1.to_bits(), v.to_bits());
    }
}

fuzz_target!(|data: &[u8]| {
    decode_both_ways(data);

    let mut encoder = XorEncoder::new();
    let mut accepted = Vec::new();
    for sample in data.chunks_exact(16) {
        let t = i64::from_le_bytes(sample[..8].try_into().unwrap());
        let v = f64::from_bits(u64::from_le_bytes(sample[8..].try_into().unwrap()));
        if encoder.append(t, v).is_err() {
            break;
        }
        accepted.push((t, v));
    }
    if accepted.is_empty() {
        return;
    }
    let decoded: Vec<(i64, f64)> = xor_samples(encoder.bytes())
        .expect("an encoded chunk has a valid header")
        .map(|s| s.expect("an encoded chunk decodes"))
        .collect();
    assert_eq!(decoded.len(), accepted.len());
    for ((t, v), (dt, dv)) in accepted.iter().zip(&decoded) {
        assert_eq!(t, dt);
        assert_eq!(v.to_bits(), dv.to_bits());
    }
});
