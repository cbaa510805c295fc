//! Penalty deduplication of HA replicas (see the module docs of `dedup` for the rule).

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
    /// How far past the last emitted sample the current replica's next one may lie before
    /// another replica may take over: twice the last interval.
    step_penalty: i64,
    /// How far past the last emitted sample another replica's next sample must lie: one
    /// interval, so that no window holds more samples than one replica would give it.
    same_scrape: i64,
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
            same_scrape: INITIAL_PENALTY_MS,
        }
    }

    /// Records `sample` of replica `i` as emitted and returns it with any counter offset.
    #[inline]
    fn emit(&mut self, i: usize, (t, v): Sample) -> Sample {
        // Before the interval is known, a sample of another replica within the initial
        // penalty is taken for the same scrape.
        (self.step_penalty, self.same_scrape) = if self.last_t == i64::MIN {
            (INITIAL_PENALTY_MS, INITIAL_PENALTY_MS + 1)
        } else {
            (2 * (t - self.last_t), t - self.last_t)
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
        let others_from = self.last_t.saturating_add(self.same_scrape);
        let mut best: Option<(usize, Sample)> = None;
        let mut alive = 0;
        for i in 0..self.replicas.len() {
            let starting = self.current == usize::MAX;
            let target = if i == self.current || starting {
                base
            } else {
                others_from
            };
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
        // The current replica keeps the output unless its next sample is more than a
        // penalty away; only then does the earliest sample of any replica win.
        let stay = self
            .heads
            .get(self.current)
            .copied()
            .flatten()
            .filter(|(t, _)| *t < base.saturating_add(self.step_penalty));
        let (i, sample) = match stay {
            Some(s) => (self.current, s),
            None => best?,
        };
        self.heads[i] = self.replicas[i].next();
        let out = self.emit(i, sample);
        if alive <= 1 {
            self.strategy = Strategy::Solo;
        }
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
            // Entering the next replica: skip what belongs to the scrape already emitted.
            if self.last_t != i64::MIN {
                let target = self.last_t.saturating_add(self.same_scrape);
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
