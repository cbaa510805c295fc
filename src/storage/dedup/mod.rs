//! Deduplication of series that several HA replicas (or several backends) returned.
//!
//! Two iterators live here, both over `(t_ms, value)` samples in increasing time:
//!
//! * [`ReplicaDedup`] merges the replicas of one logical series with the penalty algorithm
//!   Thanos uses. It stays on the replica it is reading and switches to another one only
//!   when the current replica has a gap longer than a penalty. Before every sample each
//!   replica is advanced past the last emitted timestamp (the current one) or past it plus
//!   the penalty (the others), and the earliest head wins (the replica listed first on a
//!   tie). The penalty is [`INITIAL_PENALTY_MS`] after the first sample and twice the
//!   distance between the last two emitted samples after that, about twice the scrape
//!   interval. Advancing only moves forward, so samples a penalty skipped stay skipped.
//!   Thanos chains pairs of replicas; this compares all heads at once with the same rule. That
//!   keeps the output at the scrape rate of one replica instead of the union of both (which
//!   would double `count_over_time` and distort `rate`), while a gap in one replica is
//!   filled from another. A sample at or before the last emitted timestamp is never
//!   emitted. In [`DedupMode::Counter`] a switch to a replica whose counter is lower than
//!   the last emitted value adds an offset to that replica, so a switch never looks like a
//!   counter reset to `rate`, `increase`, `irate` or `resets`; a reset inside a replica
//!   still shows.
//! * [`SeriesMerge`] merges series with identical label sets that came from different
//!   backends (overlapping time ranges of one store): a plain k-way merge in time order
//!   that emits a timestamp present in several inputs once.
//!
//! When every replica's time range is known up front and the ranges do not overlap,
//! [`ReplicaDedup`] concatenates them and compares timestamps only at the boundaries.

mod merge;
mod penalty;
#[cfg(test)]
mod tests;

pub use merge::SeriesMerge;
pub use penalty::{DedupMode, INITIAL_PENALTY_MS, Replica, ReplicaDedup};

/// One sample: milliseconds since the epoch and its value.
pub type Sample = (i64, f64);
