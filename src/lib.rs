//! promgate: a query gateway that answers the Prometheus HTTP API in front of many
//! Prometheus servers (HA pairs, several data centres) as if they were one.
// No unsafe code, but for one measured hot path that opts in where it stands: choosing the
// BMI2 build of the XOR decoding loop on processors that have it.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod demo;
pub mod error;
pub mod layer;
pub mod model;
pub mod promql;
pub mod realenv;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod upload;
