//! promgate's own tower layers; everything else comes from tower and tower-http.

pub mod admission;
pub mod auth;
pub mod breaker;
pub mod http_metrics;
