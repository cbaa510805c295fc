//! Where series come from: remote read today; TSDB blocks, merging and replica dedup later.

pub mod remote;
