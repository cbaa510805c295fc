//! Deduplication of series that several HA replicas (or several backends) returned.
//!
//! Two iterators live here, both over `(t_ms, value)` samples in increasing time:
//!
//! * [`ReplicaDedup`] merges the replicas of one logical series with a penalty algorithm
//!   compatible with Thanos's. It stays on the replica it is reading and switches to another
//!   one only when the current replica's next sample is more than a penalty away: twice the
//!   distance between the last two emitted samples (about twice the scrape interval), or
//!   [`INITIAL_PENALTY_MS`] before that is known. When it switches, it continues with the
//!   first sample of another replica that lies at least one interval after the last emitted
//!   sample (before the interval is known: more than the initial penalty after it), so a
//!   switch neither loses a scrape nor adds one: no window holds more samples than one
//!   replica would give it, which keeps `count_over_time` and `rate` right, and replicas
//!   scraping at the same instants merge into exactly their union. A sample at or before
//!   the last emitted timestamp is never emitted. In [`DedupMode::Counter`] a switch to a
//!   replica whose counter is lower than the last emitted value adds an offset to that
//!   replica, so a switch never looks like a counter reset to `rate`, `increase`, `irate`
//!   or `resets`; a reset inside a replica still shows.
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
