//! Penalty deduplication of HA replicas, compatible with Thanos's `penalty` algorithm.

use super::Sample;

/// Penalty, in milliseconds, before the first two samples tell the scrape interval. Scrape
/// intervals are seconds long, so five seconds keeps a replica whose scrapes are offset by
/// less than that from interleaving into the output.
pub const INITIAL_PENALTY_MS: i64 = 5000;

/// How values are treated when the output switches replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DedupMode {
    /// Values pass through unchanged.
    #[default]
    Gauge,
    /// Values are counters: a replica that is behind the last emitted value gets an offset,
    /// so the switch is not read as a counter reset. For `rate`, `increase`, `irate` and
    /// `resets`.
    Counter,
}

/// One replica's samples, optionally with the time range they are known to lie in.
///
/// Ranges are a promise from the caller (a remote read frame or a chunk's min/max time):
/// when every replica has one and no two overlap, [`ReplicaDedup`] concatenates instead of
/// comparing samples.
pub struct Replica<I> {
    samples: I,
    range: Option<(i64, i64)>,
}

impl<I> Replica<I> {
    /// A replica whose time range is not known in advance.
    pub fn new(samples: I) -> Self {
        Self {
            samples,
            range: None,
        }
    }

    /// A replica whose samples all lie in `min_t..=max_t`.
    pub fn with_range(samples: I, min_t: i64, max_t: i64) -> Self {
        Self {
            samples,
            range: Some((min_t, max_t)),
        }
    }
}

/// The deduplicated samples of the replicas of one series; see the module docs.
pub struct ReplicaDedup<I> {
    replicas: Vec<I>,
    /// The next sample of each replica not yet consumed.
    heads: Vec<Option<Sample>>,
    /// How far past the last emitted timestamp each replica must look for its next sample.
    penalties: Vec<i64>,
    /// Counter mode: added to each replica's values.
    offsets: Vec<f64>,
    mode: DedupMode,
    strategy: Strategy,
    /// The replica the last sample came from (`usize::MAX` before the first).
    current: usize,
    last_t: i64,
    /// The last emitted value that was not NaN, the reference for counter offsets.
    last_value: Option<f64>,
    /// The replica `Concat` is streaming.
    cursor: usize,
    /// The output moved to another replica and no value has been checked against the
    /// last one since (a stale marker may sit between).
    switch_pending: bool,
    /// The penalty the last step gave to replicas it did not pick.
    step_penalty: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Compare the heads of all replicas for every sample.
    Penalty,
    /// Only `current` has samples left to compare with nothing: stream it.
    Solo,
    /// Replicas are ordered by time and do not overlap: stream one after the other.
    Concat,
}

impl<I: Iterator<Item = Sample>> ReplicaDedup<I> {
    /// Deduplicates `replicas` (each in increasing time). On equal timestamps the replica
    /// listed first wins, as in Thanos.
    pub fn new(replicas: impl IntoIterator<Item = Replica<I>>, mode: DedupMode) -> Self {
        let mut replicas: Vec<Replica<I>> = replicas.into_iter().collect();
        let disjoint = replicas.len() > 1 && replicas.iter().all(|r| r.range.is_some()) && {
            replicas.sort_by_key(|r| r.range.map(|(min, _)| min));
            replicas
                .windows(2)
                .all(|w| matches!((w[0].range, w[1].range), (Some((_, a)), Some((b, _))) if a < b))
        };
        let mut iters: Vec<I> = replicas.into_iter().map(|r| r.samples).collect();
        let heads = iters.iter_mut().map(Iterator::next).collect();
        let n = iters.len();
        Self {
            replicas: iters,
            heads,
            penalties: vec![0; n],
            offsets: vec![0.0; n],
            mode,
            strategy: if disjoint {
                Strategy::Concat
            } else {
                Strategy::Penalty
            },
            current: usize::MAX,
            cursor: 0,
            switch_pending: false,
            last_t: i64::MIN,
            last_value: None,
            step_penalty: INITIAL_PENALTY_MS,
        }
    }

    /// Records `sample` of replica `i` as emitted and returns it with any counter offset.
    #[inline]
    fn emit(&mut self, i: usize, (t, v): Sample) -> Sample {
        self.step_penalty = if self.last_t == i64::MIN {
            INITIAL_PENALTY_MS
        } else {
            2 * (t - self.last_t)
        };
        self.last_t = t;
        if i != self.current {
            self.current = i;
            self.switch_pending = true;
        }
        if v.is_nan() {
            // Stale markers keep their exact bits.
            return (t, v);
        }
        let mut out = v + self.offsets[i];
        if self.mode == DedupMode::Counter && std::mem::take(&mut self.switch_pending) {
            if let Some(last) = self.last_value {
                if last > out {
                    self.offsets[i] += last - out;
                    out = last;
                }
            }
        }
        self.last_value = Some(out);
        (t, out)
    }

    fn next_penalty(&mut self) -> Option<Sample> {
        let base = self.last_t.saturating_add(1);
        let mut best: Option<(usize, Sample)> = None;
        let mut alive = 0;
        for i in 0..self.replicas.len() {
            let target = base.saturating_add(self.penalties[i]);
            let head = &mut self.heads[i];
            while head.is_some_and(|(t, _)| t < target) {
                *head = self.replicas[i].next();
            }
            if let Some(s) = *head {
                alive += 1;
                if best.is_none_or(|(_, b)| s.0 < b.0) {
                    best = Some((i, s));
                }
            }
        }
        let (i, sample) = best?;
        self.heads[i] = self.replicas[i].next();
        let out = self.emit(i, sample);
        if alive > 1 {
            self.penalties.fill(self.step_penalty);
        } else {
            self.strategy = Strategy::Solo;
        }
        self.penalties[i] = 0;
        Some(out)
    }

    fn next_concat(&mut self) -> Option<Sample> {
        loop {
            let i = self.cursor;
            if let Some(sample) = self.heads.get(i).copied().flatten() {
                self.heads[i] = self.replicas[i].next();
                return Some(self.emit(i, sample));
            }
            let next = i + 1;
            if next >= self.replicas.len() {
                return None;
            }
            // Entering the next replica: skip what the penalty would have skipped.
            if self.last_t != i64::MIN {
                let target = self
                    .last_t
                    .saturating_add(1)
                    .saturating_add(self.step_penalty);
                while self.heads[next].is_some_and(|(t, _)| t < target) {
                    self.heads[next] = self.replicas[next].next();
                }
            }
            self.cursor = next;
        }
    }
}

impl<I: Iterator<Item = Sample>> Iterator for ReplicaDedup<I> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        match self.strategy {
            Strategy::Penalty => self.next_penalty(),
            Strategy::Solo => {
                let i = self.current;
                let sample = self.heads[i]?;
                self.heads[i] = self.replicas[i].next();
                Some(self.emit(i, sample))
            }
            Strategy::Concat => self.next_concat(),
        }
    }
}
