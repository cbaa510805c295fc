//! Where series come from and how they become one: the [`Store`] that selects over every
//! backend, remote read from Prometheus and InfluxDB, merging of equal series and
//! deduplication of HA replicas, and Prometheus TSDB blocks in object stores.

pub mod dedup;
pub mod fanout;
pub mod memory;
pub mod object;
pub mod remote;
pub mod store;
pub mod tsdb;

pub use fanout::MergedStore;
pub use memory::MemoryStore;
pub use store::{
    SelectHints, SelectRequest, SeriesSet, Store, StoreError, StoreSamples, StoreSeries,
};
