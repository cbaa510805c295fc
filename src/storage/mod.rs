//! Where series come from and how they become one: remote read from Prometheus and
//! InfluxDB, merging of equal series and deduplication of HA replicas. TSDB blocks come next.

pub mod dedup;
pub mod remote;
