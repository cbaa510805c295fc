//! XOR chunk decoding throughput on 120-sample chunks shaped like real scrapes: 15 s
//! intervals with a little jitter, a slowly moving gauge, a steadily rising counter and a
//! gauge that rarely changes (like `up`), mostly runs of unchanged samples.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use promgate::storage::remote::{encode_xor, xor_samples};

const SAMPLES_PER_CHUNK: usize = 120;
const CHUNKS: usize = 100;

fn timestamps(seed: u64) -> impl Iterator<Item = i64> {
    let mut t = 1_700_000_000_000i64 + (seed as i64) * 1_000;
    let mut k = seed;
    (0..SAMPLES_PER_CHUNK).map(move |_| {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Most scrapes land exactly on the interval, a few a few milliseconds off.
        let jitter = if (k >> 60) == 0 {
            (k >> 40) as i64 % 7 - 3
        } else {
            0
        };
        t += 15_000 + jitter;
        t
    })
}

fn gauge_chunks() -> Vec<Vec<u8>> {
    (0..CHUNKS as u64)
        .map(|c| {
            let samples: Vec<(i64, f64)> = timestamps(c)
                .enumerate()
                .map(|(i, t)| {
                    let v = ((20.0 + 5.0 * ((i as f64 + c as f64) / 30.0).sin()) * 1000.0).round()
                        / 1000.0;
                    (t, v)
                })
                .collect();
            encode_xor(&samples).expect("fits")
        })
        .collect()
}

fn counter_chunks() -> Vec<Vec<u8>> {
    (0..CHUNKS as u64)
        .map(|c| {
            let mut v = (c * 100_000) as f64;
            let samples: Vec<(i64, f64)> = timestamps(c)
                .enumerate()
                .map(|(i, t)| {
                    v += (15.0 * (1.5 + (i % 5) as f64)).floor();
                    (t, v)
                })
                .collect();
            encode_xor(&samples).expect("fits")
        })
        .collect()
}

/// A gauge that rarely changes, like `up`: runs of unchanged samples, two bits each.
fn steady_chunks() -> Vec<Vec<u8>> {
    (0..CHUNKS as u64)
        .map(|c| {
            let samples: Vec<(i64, f64)> = timestamps(c)
                .enumerate()
                .map(|(i, t)| (t, if (i as u64 + c) % 97 == 0 { 0.0 } else { 1.0 }))
                .collect();
            encode_xor(&samples).expect("fits")
        })
        .collect()
}

/// Every sample is read into a checksum of its bits. A sum of floats would chain a 4-cycle
/// addition through every sample and measure that more than the decoding.
fn decode_all(chunks: &[Vec<u8>]) -> u64 {
    let mut check = 0;
    for chunk in chunks {
        for s in xor_samples(chunk).expect("header") {
            let (t, v) = s.expect("valid");
            check ^= t as u64 ^ v.to_bits();
        }
    }
    check
}

/// The same through `decode_into`, reusing the two vectors as a caller would.
fn decode_all_into(chunks: &[Vec<u8>], ts: &mut Vec<i64>, vs: &mut Vec<f64>) -> u64 {
    let mut check = 0;
    for chunk in chunks {
        ts.clear();
        vs.clear();
        xor_samples(chunk)
            .expect("header")
            .decode_into(ts, vs)
            .expect("valid");
        for (t, v) in ts.iter().zip(vs.iter()) {
            check ^= *t as u64 ^ v.to_bits();
        }
    }
    check
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("xor_decode");
    group.throughput(Throughput::Elements((SAMPLES_PER_CHUNK * CHUNKS) as u64));
    for (name, chunks) in [
        ("gauge", gauge_chunks()),
        ("counter", counter_chunks()),
        ("steady", steady_chunks()),
    ] {
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        eprintln!(
            "{name}: {:.2} bytes/sample",
            bytes as f64 / (SAMPLES_PER_CHUNK * CHUNKS) as f64
        );
        group.bench_function(name, |b| b.iter(|| decode_all(black_box(&chunks))));
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        group.bench_function(format!("{name}_into"), |b| {
            b.iter(|| decode_all_into(black_box(&chunks), &mut ts, &mut vs))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
