//! promgate: a query gateway that answers the Prometheus HTTP API in front of many
//! Prometheus servers (HA pairs, several data centres) as if they were one.
#![forbid(unsafe_code)]
