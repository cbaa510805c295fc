use super::*;

/// A tiny deterministic generator, enough for property tests without a dependency.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn decode_all(chunk: &[u8]) -> Result<Vec<(i64, u64)>, ChunkError> {
    xor_samples(chunk)?
        .map(|r| r.map(|(t, v)| (t, v.to_bits())))
        .collect()
}

fn round_trip(samples: &[(i64, f64)]) {
    let chunk = encode_xor(samples).expect("fits");
    let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(decode_all(&chunk), Ok(want), "chunk {chunk:02x?}");
}

fn random_series(rng: &mut XorShift) -> Vec<(i64, f64)> {
    let n = 1 + rng.below(300) as usize;
    let mut t = rng.next_u64() as i64 >> rng.below(40);
    let mut v = 0.0f64;
    let step = 1 + rng.below(60_000) as i64;
    (0..n)
        .map(|_| {
            t = t.wrapping_add(match rng.below(10) {
                0 => -(rng.below(100_000) as i64),       // backwards
                1 => rng.next_u64() as i64 >> 8,         // huge gap
                2 => step + rng.below(2_000_000) as i64, // beyond the 20-bit bucket
                3 => step + rng.below(3) as i64 - 1,     // jitter
                _ => step,
            });
            v = match rng.below(12) {
                0 => f64::from_bits(STALE_NAN),
                1 => f64::NAN,
                2 => f64::INFINITY,
                3 => -0.0,
                4 => f64::from_bits(rng.next_u64()),
                5 => v, // unchanged
                6 => v + 1.0,
                7 => (rng.below(1000) as f64) * 0.001,
                _ => v + rng.below(100) as f64,
            };
            (t, v)
        })
        .collect()
}

#[test]
fn random_series_round_trip_bit_for_bit() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        round_trip(&random_series(&mut rng));
    }
}

#[test]
fn stale_marker_bits_survive() {
    round_trip(&[
        (1000, 1.0),
        (16_000, f64::from_bits(STALE_NAN)),
        (31_000, 2.0),
        (46_000, f64::from_bits(STALE_NAN)),
        (61_000, f64::from_bits(STALE_NAN)),
    ]);
}

#[test]
fn every_delta_of_delta_bucket_edge_round_trips() {
    let mut samples = vec![(0i64, 0.0), (15_000, 1.0)];
    let mut t = 15_000i64;
    let mut delta = 15_000i64;
    for n in [14u32, 17, 20] {
        for dod in [
            (1i64 << (n - 1)) - 1,
            1 << (n - 1),
            (1 << (n - 1)) + 1,
            -((1 << (n - 1)) - 1),
            -(1 << (n - 1)),
        ] {
            delta += dod;
            t += delta;
            samples.push((t, samples.len() as f64));
        }
    }
    samples.push((i64::MAX, 1.0));
    samples.push((i64::MIN, 2.0));
    samples.push((-5, 3.0));
    round_trip(&samples);
}

#[test]
fn negative_first_timestamp_and_backward_deltas_round_trip() {
    round_trip(&[(-1_000_000, 1.0), (-2_000_000, 2.0), (5, 2.0), (4, 2.0)]);
    round_trip(&[(i64::MIN, 0.0)]);
}

#[test]
fn empty_chunk_yields_nothing() {
    let chunk = XorEncoder::new().into_bytes();
    assert_eq!(chunk, vec![0, 0]);
    assert_eq!(decode_all(&chunk), Ok(vec![]));
}

#[test]
fn regular_scrapes_cost_two_bits_per_repeated_sample() {
    let samples: Vec<(i64, f64)> = (0..120).map(|i| (i * 15_000, 42.0)).collect();
    let chunk = encode_xor(&samples).expect("fits");
    // header 2, first ts 1, value 8, delta 3 + 1 bit, then 118 * 2 bits.
    assert!(chunk.len() <= 2 + 1 + 8 + 3 + 31, "{} bytes", chunk.len());
}

#[test]
fn known_bytes_match_prometheus_layout() {
    // t=1000 (zigzag varint 2000 = d0 0f), v=1.0 (3ff0...), t=16000 (uvarint 15000 = 98 75),
    // v=1.0 again: a single 0 bit, padded.
    let chunk = encode_xor(&[(1000, 1.0), (16_000, 1.0)]).expect("fits");
    assert_eq!(
        chunk,
        vec![
            0, 2, 0xd0, 0x0f, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x98, 0x75, 0x00
        ]
    );
}

#[test]
fn every_truncation_is_a_typed_error() {
    let mut rng = XorShift(7);
    for _ in 0..200 {
        let chunk = encode_xor(&random_series(&mut rng)).expect("fits");
        for cut in 0..chunk.len() {
            match decode_all(&chunk[..cut]) {
                Err(ChunkError::MissingHeader { .. }) => assert!(cut < 2),
                Err(ChunkError::Truncated { .. }) => {}
                other => panic!("cut at {cut} of {}: {other:?}", chunk.len()),
            }
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = XorShift(0xdead_beef);
    for _ in 0..5000 {
        let len = rng.below(64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if bytes.len() >= 2 && rng.below(2) == 0 {
            bytes[0] = 0; // small counts decode further before failing
        }
        if let Ok(it) = xor_samples(&bytes) {
            let total = it.num_samples();
            let n = it.take_while(Result::is_ok).count();
            assert!(n <= usize::from(total));
        }
    }
}

#[test]
fn encoder_refuses_the_65536th_sample() {
    let mut enc = XorEncoder::new();
    for i in 0..u16::MAX {
        enc.append(i64::from(i), 0.0).expect("room");
    }
    assert_eq!(enc.append(1 << 20, 0.0), Err(ChunkFull));
    assert_eq!(xor_samples(enc.bytes()).map(|i| i.count()), Ok(65535));
}

type Decoded = Result<Vec<(i64, u64)>, ChunkError>;

/// Both decode paths, as (timestamp, value bits); `decode_into` appends after a marker so
/// that existing contents are seen to survive. It runs through every build of the fast loop
/// this processor has, which must all agree.
fn decode_both(chunk: &[u8]) -> (Decoded, Decoded) {
    let iter = decode_all(chunk);
    let mut builds = flat::Loop::all().into_iter();
    let first = builds.next().expect("the portable build");
    let flat = decode_into_with(first, chunk);
    for with in builds {
        assert_eq!(
            decode_into_with(with, chunk),
            flat,
            "{with:?} and {first:?} builds, chunk {chunk:02x?}"
        );
    }
    (iter, flat)
}

fn decode_into_with(with: flat::Loop, chunk: &[u8]) -> Decoded {
    xor_samples(chunk).and_then(|mut it| {
        let (mut ts, mut vs) = (vec![-1i64], vec![-1.0f64]);
        let result = it.decode_into_with(with, &mut ts, &mut vs);
        assert_eq!(ts.len(), vs.len());
        assert_eq!((ts[0], vs[0]), (-1, -1.0), "earlier contents kept");
        match result {
            Ok(n) => {
                assert_eq!(n, ts.len() - 1);
                assert_eq!(it.next(), None, "decode_into finishes the iterator");
                Ok(ts[1..]
                    .iter()
                    .zip(&vs[1..])
                    .map(|(&t, v)| (t, v.to_bits()))
                    .collect())
            }
            Err(e) => {
                assert_eq!(ts.len(), 1, "nothing appended on error");
                Err(e)
            }
        }
    })
}

#[test]
fn the_fastest_build_of_the_loop_this_processor_runs_is_chosen() {
    let all = flat::Loop::all();
    assert_eq!(Some(&flat::Loop::best()), all.last(), "builds {all:?}");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        all.contains(&flat::Loop::Bmi2),
        std::arch::is_x86_feature_detected!("bmi2")
    );
}

/// A delta of deltas drawn from every bucket, edges included, and the 64-bit escape.
fn random_dod(rng: &mut XorShift) -> i64 {
    let bits = [0u32, 1, 13, 14, 16, 17, 19, 20, 21, 40, 63][rng.below(11) as usize];
    let magnitude = match bits {
        0 => 0,
        63 => (rng.next_u64() >> 1) as i64,
        n => {
            // Half the time exactly at a bucket edge, where off-by-one errors live.
            let edge = 1i64 << (n - 1);
            if rng.below(2) == 0 {
                edge + rng.below(3) as i64 - 1
            } else {
                rng.below(edge as u64 * 2) as i64
            }
        }
    };
    if rng.below(2) == 0 {
        magnitude
    } else {
        magnitude.wrapping_neg()
    }
}

fn random_value(rng: &mut XorShift, prev: f64) -> f64 {
    match rng.below(14) {
        0 => f64::from_bits(STALE_NAN),
        1 => f64::NAN,
        2 => f64::INFINITY,
        3 => f64::NEG_INFINITY,
        4 => -0.0,
        5 => 0.0,
        6 => f64::from_bits(rng.next_u64()),
        7 | 8 => prev, // repeated
        9 => prev + 1.0,
        10 => (rng.below(1_000_000) as f64) * 0.001,
        11 => f64::from_bits(prev.to_bits() ^ (1 << rng.below(64))),
        _ => prev + rng.below(100) as f64,
    }
}

#[test]
fn random_dods_and_values_round_trip_through_both_decoders() {
    let mut rng = XorShift(0x5151_2024_abcd_0001);
    for _ in 0..3000 {
        let n = rng.below(260) as usize;
        let mut t = rng.next_u64() as i64 >> rng.below(64);
        let mut delta = rng.below(120_000) as i64;
        let mut v = f64::from_bits(rng.next_u64());
        let samples: Vec<(i64, f64)> = (0..n)
            .map(|_| {
                delta = delta.wrapping_add(random_dod(&mut rng));
                t = t.wrapping_add(delta);
                v = random_value(&mut rng, v);
                (t, v)
            })
            .collect();
        let chunk = encode_xor(&samples).expect("fits");
        let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        let (iter, flat) = decode_both(&chunk);
        assert_eq!(iter, Ok(want.clone()), "iterator, chunk {chunk:02x?}");
        assert_eq!(flat, Ok(want), "decode_into, chunk {chunk:02x?}");
    }
}

#[test]
fn decode_into_resumes_after_iterating() {
    let samples: Vec<(i64, f64)> = (0..50)
        .map(|i| (i * 15_000 + i % 3, i as f64 * 0.5))
        .collect();
    let chunk = encode_xor(&samples).expect("fits");
    for skip in 0..=samples.len() {
        let mut it = xor_samples(&chunk).expect("header");
        for _ in 0..skip {
            it.next().expect("sample").expect("valid");
        }
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        assert_eq!(it.decode_into(&mut ts, &mut vs), Ok(samples.len() - skip));
        let got: Vec<(i64, f64)> = ts.into_iter().zip(vs).collect();
        assert_eq!(got, samples[skip..]);
    }
}

#[test]
fn corrupt_and_truncated_chunks_are_errors_in_both_decoders() {
    let mut rng = XorShift(0xc0ff_ee00_1234_5678);
    for round in 0..400 {
        let chunk = encode_xor(&random_series(&mut rng)).expect("fits");
        // Every truncation is a typed error, the same one from both paths.
        for cut in 0..chunk.len() {
            let (iter, flat) = decode_both(&chunk[..cut]);
            assert!(
                iter.is_err() && flat.is_err(),
                "cut at {cut}: {iter:?} {flat:?}"
            );
            assert_eq!(iter, flat, "cut at {cut}");
        }
        // Flipped bits, raised counts and appended garbage may decode to something or fail,
        // but never panic, and both paths agree.
        let mut bad = chunk.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(bad.len() as u64) as usize;
            bad[i] ^= 1 << rng.below(8);
        }
        if round % 3 == 0 {
            let count =
                u16::from_be_bytes([bad[0], bad[1]]).saturating_add(1 + rng.below(50) as u16);
            bad[..2].copy_from_slice(&count.to_be_bytes());
        }
        if round % 5 == 0 {
            bad.extend((0..rng.below(20)).map(|_| rng.next_u64() as u8));
        }
        let (iter, flat) = decode_both(&bad);
        assert_eq!(iter, flat, "corrupt chunk {bad:02x?}");
    }
}

/// A decoder written straight from the format, one bit at a time, to hold the fast paths to:
/// the samples, or None where the chunk is truncated or contradicts itself.
fn reference_decode(chunk: &[u8]) -> Option<Vec<(i64, u64)>> {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
    }
    impl Bits<'_> {
        fn bit(&mut self) -> Option<u64> {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            self.pos += 1;
            Some(u64::from(bit))
        }
        fn bits(&mut self, n: u32) -> Option<u64> {
            let mut x = 0u64;
            for _ in 0..n {
                x = x << 1 | self.bit()?;
            }
            Some(x)
        }
        fn uvarint(&mut self) -> Option<u64> {
            let mut x = 0u64;
            for i in 0..10 {
                let b = self.bits(8)?;
                if i == 9 && b > 1 {
                    return None;
                }
                x |= (b & 0x7f) << (7 * i);
                if b < 0x80 {
                    return Some(x);
                }
            }
            None
        }
    }
    let (head, body) = chunk.split_at_checked(2)?;
    let total = u16::from_be_bytes([head[0], head[1]]);
    let mut r = Bits { data: body, pos: 0 };
    let (mut t, mut v, mut delta) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u32, 0u32);
    let mut out = Vec::new();
    for i in 0..total {
        if i == 0 {
            let u = r.uvarint()?;
            t = ((u >> 1) as i64) ^ -((u & 1) as i64);
            v = r.bits(64)?;
            out.push((t, v));
            continue;
        }
        if i == 1 {
            delta = r.uvarint()?;
        } else {
            let mut ones = 0;
            while ones < 4 && r.bit()? == 1 {
                ones += 1;
            }
            let width = [0, 14, 17, 20, 64][ones];
            let dod = match width {
                0 => 0,
                64 => r.bits(64)?,
                w => {
                    let raw = r.bits(w)?;
                    if raw > 1 << (w - 1) {
                        raw.wrapping_sub(1 << w)
                    } else {
                        raw
                    }
                }
            };
            delta = delta.wrapping_add(dod);
        }
        t = t.wrapping_add(delta as i64);
        if r.bit()? == 1 {
            if r.bit()? == 1 {
                leading = r.bits(5)? as u32;
                let significant = match r.bits(6)? as u32 {
                    0 => 64,
                    n => n,
                };
                if leading + significant > 64 {
                    return None;
                }
                trailing = 64 - leading - significant;
            }
            v ^= r.bits(64 - leading - trailing)? << trailing;
        }
        out.push((t, v));
    }
    Some(out)
}

/// Holds both decoders to the reference on one chunk: the same samples, and an error exactly
/// where the reference finds the chunk bad.
fn check_against_reference(chunk: &[u8]) {
    let want = reference_decode(chunk);
    let (iter, flat) = decode_both(chunk);
    match want {
        Some(want) => {
            assert_eq!(flat, Ok(want.clone()), "decode_into, chunk {chunk:02x?}");
            assert_eq!(iter, Ok(want), "iterator, chunk {chunk:02x?}");
        }
        None => {
            assert!(
                flat.is_err(),
                "decode_into accepted a bad chunk {chunk:02x?}"
            );
            assert_eq!(iter, flat, "chunk {chunk:02x?}");
        }
    }
}

/// Series meant to cross every path of the one-go decoder: runs of unchanged samples of
/// every length, window reuse, new windows, 64 significant bits, every delta of deltas
/// bucket and the 64-bit escape.
fn random_shaped_series(rng: &mut XorShift) -> Vec<(i64, f64)> {
    let n = match rng.below(4) {
        0 => rng.below(4) as usize,
        1 => rng.below(130) as usize,
        2 => 120,
        _ => rng.below(1200) as usize,
    };
    let mut t = rng.next_u64() as i64 >> rng.below(64);
    let mut delta = 15_000i64;
    let mut v = (rng.below(1000) as f64) * 0.25;
    let mut run = 0u64;
    (0..n)
        .map(|_| {
            if run > 0 {
                run -= 1;
            } else {
                match rng.below(6) {
                    0 => run = rng.below(80),
                    1 => delta = delta.wrapping_add(random_dod(rng)),
                    2 => v = random_value(rng, v),
                    3 => v = f64::from_bits(rng.next_u64()),
                    _ => v += rng.below(50) as f64 * 0.5,
                }
            }
            t = t.wrapping_add(delta);
            (t, v)
        })
        .collect()
}

#[test]
fn decoders_agree_with_a_bit_by_bit_reference_on_random_chunks() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    for round in 0..1500 {
        let chunk = encode_xor(&random_shaped_series(&mut rng)).expect("fits");
        check_against_reference(&chunk);
        // A few truncations, a few flipped bits, a raised count.
        for _ in 0..4 {
            let cut = rng.below(chunk.len() as u64 + 1) as usize;
            check_against_reference(&chunk[..cut]);
        }
        let mut bad = chunk.clone();
        if bad.len() > 2 {
            for _ in 0..=rng.below(3) {
                let i = 2 + rng.below(bad.len() as u64 - 2) as usize;
                bad[i] ^= 1 << rng.below(8);
            }
            check_against_reference(&bad);
        }
        if round % 4 == 0 && chunk.len() >= 2 {
            let mut more = chunk.clone();
            let count =
                u16::from_be_bytes([more[0], more[1]]).saturating_add(1 + rng.below(40) as u16);
            more[..2].copy_from_slice(&count.to_be_bytes());
            check_against_reference(&more);
            more.extend((0..rng.below(12)).map(|_| rng.next_u64() as u8));
            check_against_reference(&more);
        }
    }
}

#[test]
fn unchanged_runs_up_to_the_last_bit_and_cut_inside() {
    for n in [3usize, 4, 5, 28, 29, 30, 57, 120, 500] {
        let samples: Vec<(i64, f64)> = (0..n as i64).map(|i| (i * 15_000, 1.0)).collect();
        let chunk = encode_xor(&samples).expect("fits");
        check_against_reference(&chunk);
        for cut in 0..chunk.len() {
            check_against_reference(&chunk[..cut]);
        }
        // The last byte's padding bits hold room for one more unchanged sample: a count one
        // too high must not be satisfied by them, nor by bits past the end.
        let mut more = chunk.clone();
        more[..2].copy_from_slice(&(n as u16 + 1).to_be_bytes());
        check_against_reference(&more);
    }
}

#[test]
fn chunks_of_zero_to_three_samples_decode_into() {
    let all = [(1000i64, 1.5), (16_000, 1.5), (31_000, 2.5)];
    for n in 0..=all.len() {
        let chunk = encode_xor(&all[..n]).expect("fits");
        check_against_reference(&chunk);
        let (_, flat) = decode_both(&chunk);
        let want: Vec<(i64, u64)> = all[..n].iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(flat, Ok(want));
    }
}

#[test]
fn sixty_four_bit_delta_of_deltas_decodes_into() {
    let samples = [
        (0i64, 1.0),
        (15_000, 1.0),
        (30_000, 1.0),
        (i64::MAX - 7, 1.0),
        (i64::MIN + 3, 2.0),
        (-1, 2.0),
        (1 << 40, 3.0),
        ((1 << 40) + 15_000, 3.0),
    ];
    let chunk = encode_xor(&samples).expect("fits");
    let want: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    assert_eq!(decode_both(&chunk).1, Ok(want));
    check_against_reference(&chunk);
    for cut in 0..chunk.len() {
        check_against_reference(&chunk[..cut]);
    }
}

#[test]
fn a_window_of_sixty_four_significant_bits_decodes_into() {
    // Each XOR below has its top and bottom bits set: a new window of 64 significant bits
    // (written as 0), then values that reuse it.
    let bits = [
        0u64,
        0x8000_0000_0000_0001,
        0,
        0xffff_ffff_ffff_ffff,
        0x7fff_ffff_ffff_fffe,
        0x8000_0000_0000_0001,
    ];
    let samples: Vec<(i64, f64)> = bits
        .iter()
        .enumerate()
        .map(|(i, &b)| (i as i64 * 15_000, f64::from_bits(b)))
        .collect();
    let chunk = encode_xor(&samples).expect("fits");
    let want: Vec<(i64, u64)> = bits
        .iter()
        .enumerate()
        .map(|(i, &b)| (i as i64 * 15_000, b))
        .collect();
    assert_eq!(decode_both(&chunk).1, Ok(want));
    for cut in 0..chunk.len() {
        check_against_reference(&chunk[..cut]);
    }
}

#[test]
fn long_chunks_beyond_the_padded_buffers_decode_into() {
    let mut rng = XorShift(99);
    // Random bits cost about 80 bits a sample: bodies of about 1, 2, 8 and 20 KiB.
    for n in [100usize, 200, 800, 2000] {
        let samples: Vec<(i64, f64)> = (0..n as i64)
            .map(|i| (i * 15_000, f64::from_bits(rng.next_u64())))
            .collect();
        let chunk = encode_xor(&samples).expect("fits");
        check_against_reference(&chunk);
        let cut = chunk.len() - 1 - rng.below(chunk.len() as u64 / 2) as usize;
        check_against_reference(&chunk[..cut]);
    }
}
