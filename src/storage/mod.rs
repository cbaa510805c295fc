//! Storage: series iterators, merging and replica deduplication.

pub mod dedup;
