use super::*;

const STALE: u64 = 0x7ff0_0000_0000_0002;

fn dedup(replicas: &[Vec<Sample>], mode: DedupMode) -> Vec<Sample> {
    ReplicaDedup::new(
        replicas.iter().map(|r| Replica::new(r.clone().into_iter())),
        mode,
    )
    .collect()
}

fn series(from: i64, to: i64, step: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
    (0..)
        .map(|k| from + k * step)
        .take_while(|t| *t <= to)
        .map(|t| (t, f(t)))
        .collect()
}

fn times(s: &[Sample]) -> Vec<i64> {
    s.iter().map(|(t, _)| *t).collect()
}

#[test]
fn dedup_stays_on_first_replica_when_both_are_complete() {
    let a = series(0, 60_000, 15_000, |t| t as f64);
    let b = series(1_000, 61_000, 15_000, |t| t as f64);
    let out = dedup(&[a.clone(), b], DedupMode::Gauge);
    assert_eq!(out, a);
}

#[test]
fn dedup_switches_replica_after_gap_longer_than_penalty() {
    let a: Vec<Sample> = series(0, 150_000, 15_000, |t| t as f64)
        .into_iter()
        .filter(|(t, _)| !(45_000..=90_000).contains(t))
        .collect();
    let b = series(3_000, 153_000, 15_000, |t| t as f64);
    let out = dedup(&[a, b], DedupMode::Gauge);
    // a until 30s; a's next sample is more than a penalty (2 * 15s) away, so b takes over
    // from its first sample at least one interval after 30s, and stays.
    assert_eq!(
        times(&out),
        vec![
            0, 15_000, 30_000, 48_000, 63_000, 78_000, 93_000, 108_000, 123_000, 138_000, 153_000
        ]
    );
}

#[test]
fn dedup_switches_back_when_second_replica_has_a_gap() {
    let a: Vec<Sample> = series(0, 300_000, 10_000, |t| t as f64)
        .into_iter()
        .filter(|(t, _)| !(50_000..=100_000).contains(t))
        .collect();
    let b: Vec<Sample> = series(3_000, 303_000, 10_000, |t| t as f64)
        .into_iter()
        .filter(|(t, _)| !(180_000..=240_000).contains(t))
        .collect();
    let out = dedup(&[a.clone(), b.clone()], DedupMode::Gauge);
    let ts = times(&out);
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    assert!(ts.contains(&63_000), "switched to b in a's gap: {ts:?}");
    assert!(
        ts.contains(&250_000) || ts.contains(&260_000),
        "back to a: {ts:?}"
    );
    assert!(ts.windows(2).all(|w| w[1] - w[0] <= 30_000), "{ts:?}");
}

#[test]
fn dedup_uses_initial_penalty_before_interval_is_known() {
    // b's 2s is within the initial 5s penalty after a's 0, so it is skipped; 6s is past it
    // and earlier than a's next. a's 20s is 14s on; b's 40s, one interval past it when a
    // has ended, is taken.
    let a = vec![(0, 1.0), (20_000, 1.0)];
    let b = vec![(2_000, 2.0), (6_000, 2.0), (40_000, 2.0)];
    let out = dedup(&[a, b], DedupMode::Gauge);
    assert_eq!(times(&out), vec![0, 6_000, 20_000, 40_000]);
}

#[test]
fn dedup_never_emits_a_sample_at_or_before_the_last_one() {
    let a = vec![(10, 1.0), (20, 1.0), (30, 1.0)];
    let b = vec![(10, 2.0), (20, 2.0), (25, 2.0), (30, 2.0), (40, 2.0)];
    let out = dedup(&[a, b], DedupMode::Gauge);
    assert!(times(&out).windows(2).all(|w| w[0] < w[1]));
    assert_eq!(out[0], (10, 1.0));
}

#[test]
fn dedup_counter_switch_to_lower_replica_keeps_output_monotonic() {
    // Replica b restarted earlier and counts lower; a has a gap.
    let a = vec![
        (0, 100.0),
        (10_000, 110.0),
        (20_000, 120.0),
        (100_000, 200.0),
    ];
    let b: Vec<Sample> = series(5_000, 95_000, 10_000, |t| (t / 1000) as f64);
    let out = dedup(&[a.clone(), b.clone()], DedupMode::Counter);
    assert!(out.windows(2).all(|w| w[0].1 <= w[1].1), "{out:?}");
    // Increments inside b are kept.
    let gauge = dedup(&[a, b], DedupMode::Gauge);
    assert!(gauge.windows(2).any(|w| w[0].1 > w[1].1));
}

#[test]
fn dedup_counter_keeps_a_real_reset_inside_the_new_replica() {
    let a = vec![(0, 100.0), (10_000, 110.0)];
    let b = vec![
        (45_000, 50.0),
        (55_000, 60.0),
        (65_000, 1.0),
        (75_000, 11.0),
    ];
    let out = dedup(&[a, b], DedupMode::Counter);
    assert_eq!(
        out,
        vec![
            (0, 100.0),
            (10_000, 110.0),
            (45_000, 110.0),
            (55_000, 120.0),
            (65_000, 61.0),
            (75_000, 71.0)
        ]
    );
}

#[test]
fn dedup_preserves_stale_marker_bits() {
    let stale = f64::from_bits(STALE);
    let a = vec![(0, 1.0), (10_000, stale)];
    let b = vec![(5_000, 2.0), (60_000, 3.0), (70_000, stale)];
    for mode in [DedupMode::Gauge, DedupMode::Counter] {
        let out = dedup(&[a.clone(), b.clone()], mode);
        let bits: Vec<u64> = out.iter().map(|(_, v)| v.to_bits()).collect();
        assert_eq!(times(&out), vec![0, 10_000, 60_000, 70_000]);
        assert_eq!(bits[1], STALE);
        assert_eq!(bits[3], STALE);
    }
}

#[test]
fn dedup_concatenates_disjoint_ranges_like_the_penalty_path() {
    let a = series(0, 100_000, 10_000, |t| t as f64);
    let b = series(105_000, 200_000, 10_000, |t| t as f64 / 2.0);
    let c = series(300_000, 400_000, 10_000, |t| t as f64 / 4.0);
    for mode in [DedupMode::Gauge, DedupMode::Counter] {
        let slow = dedup(&[a.clone(), b.clone(), c.clone()], mode);
        let fast: Vec<Sample> = ReplicaDedup::new(
            [
                (&c, 300_000, 400_000),
                (&a, 0, 100_000),
                (&b, 105_000, 200_000),
            ]
            .map(|(s, min, max)| Replica::with_range(s.clone().into_iter(), min, max)),
            mode,
        )
        .collect();
        assert_eq!(slow, fast, "{mode:?}");
    }
}

#[test]
fn dedup_single_replica_passes_through() {
    let a = series(0, 100_000, 10_000, |t| t as f64);
    assert_eq!(dedup(std::slice::from_ref(&a), DedupMode::Counter), a);
    assert!(dedup(&[vec![], vec![]], DedupMode::Gauge).is_empty());
}

#[test]
fn merge_emits_overlapping_samples_once_in_time_order() {
    let a = vec![(1, 1.0), (3, 3.0), (5, 5.0)];
    let b = vec![(2, 2.0), (3, 30.0), (6, 6.0)];
    let c = vec![(0, 0.0), (5, 50.0)];
    let out: Vec<Sample> = SeriesMerge::new([a, b, c].map(Vec::into_iter)).collect();
    assert_eq!(
        out,
        vec![(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (5, 5.0), (6, 6.0)]
    );
}

// === property tests ===

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn value_at(t: i64) -> f64 {
    ((t / 1000) as f64 * 0.37).sin() * 100.0
}

/// A replica of the series sampled every `interval` from `offset`, with random gaps.
fn random_replica(rng: &mut XorShift, interval: i64, offset: i64, len: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut t = offset;
    while t < len {
        if rng.below(40) == 0 {
            t += interval * (1 + rng.below(20) as i64);
            continue;
        }
        out.push((t, value_at(t)));
        t += interval;
    }
    out
}

/// The largest distance between consecutive timestamps of the union of all replicas.
fn largest_common_gap(replicas: &[Vec<Sample>]) -> i64 {
    let mut all: Vec<i64> = replicas.iter().flat_map(|r| times(r)).collect();
    all.sort_unstable();
    all.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

#[test]
fn dedup_properties_hold_for_random_gaps() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let interval = 10_000;
    for case in 0..500 {
        let n = 2 + rng.below(2) as usize;
        let replicas: Vec<Vec<Sample>> = (0..n)
            .map(|_| {
                let offset = rng.below(interval as u64) as i64;
                random_replica(&mut rng, interval, offset, 3_600_000)
            })
            .collect();
        let out = dedup(&replicas, DedupMode::Gauge);
        let ts = times(&out);
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "case {case}: not increasing"
        );
        for s in &out {
            assert!(
                replicas.iter().any(|r| r
                    .binary_search_by_key(&s.0, |x| x.0)
                    .is_ok_and(|i| r[i].1 == s.1)),
                "case {case}: {s:?} in no replica"
            );
        }
        // Each scrape slot (interval-wide) is counted at most once.
        let slots: std::collections::BTreeSet<i64> = replicas
            .iter()
            .flat_map(|r| r.iter().map(|(t, _)| t / interval))
            .collect();
        // Once the output has made one step of a full interval, no two emitted samples are
        // closer than that; before (on the initial penalty, while replicas take turns at
        // their first samples) they may be.
        let settled = ts
            .windows(2)
            .position(|w| w[1] - w[0] >= interval)
            .unwrap_or(ts.len());
        assert!(
            ts.windows(2).skip(settled).all(|w| w[1] - w[0] >= interval),
            "case {case}: two samples closer than the scrape interval"
        );
        let extra = settled;
        assert!(
            out.len() <= slots.len() + extra,
            "case {case}: {} > {}",
            out.len(),
            slots.len()
        );
        // Gaps: the output only lacks a sample where every replica lacks one, except that
        // a penalty skips samples of the other replicas for good (seeks only move forward):
        // after emitting t_k with step s_k, nothing of another replica before t_k + 2*s_k
        // can come later.
        let common = largest_common_gap(&replicas);
        let mut reach = i64::MIN;
        let mut prev_step = INITIAL_PENALTY_MS / 2;
        for w in ts.windows(2) {
            reach = reach.max(w[0] + 2 * prev_step);
            let step = w[1] - w[0];
            assert!(
                w[1] <= reach.max(w[0]) + common,
                "case {case}: gap {step} > common {common} past reach {reach}"
            );
            prev_step = step;
        }
    }
}

#[test]
fn dedup_fills_separate_gaps_within_three_scrape_intervals() {
    // Gaps far apart: each is filled from another replica; a switch costs at most the
    // penalty of two scrape intervals plus the scrape offset between the replicas.
    let mut rng = XorShift(42);
    let interval = 15_000;
    for case in 0..200 {
        let mut replicas = Vec::new();
        for r in 0..3i64 {
            let offset = rng.below(interval as u64) as i64;
            let gap_start = (r * 1_000 + rng.below(500) as i64) * interval;
            let gap_len = (1 + rng.below(30) as i64) * interval;
            replicas.push(
                series(offset, 5_000 * interval, interval, value_at)
                    .into_iter()
                    .filter(|(t, _)| !(gap_start..gap_start + gap_len).contains(t))
                    .collect::<Vec<_>>(),
            );
        }
        let out = dedup(&replicas, DedupMode::Gauge);
        let common = largest_common_gap(&replicas);
        let worst = times(&out)
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        assert!(
            worst <= common.max(3 * interval),
            "case {case}: {worst} > {common}"
        );
    }
}
