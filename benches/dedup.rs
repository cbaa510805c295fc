//! Throughput of replica deduplication: two replicas of 1M samples each with a few gaps.

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use promgate::storage::dedup::{DedupMode, Replica, ReplicaDedup, Sample};

const SAMPLES: i64 = 1_000_000;
const INTERVAL: i64 = 15_000;

fn replica(offset: i64, gaps: &[(i64, i64)]) -> Vec<Sample> {
    (0..SAMPLES)
        .map(|k| offset + k * INTERVAL)
        .filter(|t| !gaps.iter().any(|(from, to)| (*from..*to).contains(t)))
        .map(|t| (t, (t / 1000) as f64))
        .collect()
}

fn bench(c: &mut Criterion) {
    let step = SAMPLES * INTERVAL / 10;
    let a = replica(
        0,
        &[
            (step, step + 20 * INTERVAL),
            (5 * step, 5 * step + 300 * INTERVAL),
        ],
    );
    let b = replica(
        3_000,
        &[
            (3 * step, 3 * step + 50 * INTERVAL),
            (8 * step, 8 * step + 5 * INTERVAL),
        ],
    );
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements((a.len() + b.len()) as u64));
    for mode in [DedupMode::Gauge, DedupMode::Counter] {
        group.bench_function(format!("penalty_2x1M_{mode:?}"), |bench| {
            bench.iter(|| {
                let replicas = [&a, &b].map(|r| Replica::new(r.iter().copied()));
                let mut n = 0usize;
                for s in ReplicaDedup::new(replicas, mode) {
                    n += 1;
                    black_box(s);
                }
                n
            })
        });
    }
    // The disjoint case reads one replica cut in two, so it counts half the samples.
    group.throughput(Throughput::Elements(a.len() as u64));
    let half = a.len() / 2;
    let (first, second) = (&a[..half], &a[half..]);
    group.bench_function("concat_disjoint_2x0.5M", |bench| {
        bench.iter(|| {
            let replicas = [first, second]
                .map(|r| Replica::with_range(r.iter().copied(), r[0].0, r[r.len() - 1].0));
            ReplicaDedup::new(replicas, DedupMode::Gauge).count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
