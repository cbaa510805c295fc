//! Breaker configuration as it appears in the TOML config.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The knobs of a [`super::CircuitBreaker`]; see the module docs for what each does.
/// Durations are Prometheus duration strings (`30s`, `2m`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker; 0 turns this trigger off.
    pub consecutive_failures: u32,
    /// Share of failed requests in the window that opens the breaker; above 1 turns this
    /// trigger off.
    pub failure_ratio: f64,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub ratio_window: Duration,
    /// Requests the window must hold before the ratio is trusted.
    pub ratio_min_requests: u32,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub cool_down: Duration,
    pub double_cool_down: bool,
    #[serde(deserialize_with = "duration", serialize_with = "show_duration")]
    pub max_cool_down: Duration,
    /// Probes let through when half-open; that many successes close the breaker.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            ratio_window: Duration::from_secs(30),
            ratio_min_requests: 10,
            cool_down: Duration::from_secs(10),
            double_cool_down: true,
            max_cool_down: Duration::from_secs(120),
            half_open_probes: 1,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::time::parse_prometheus_duration(&s).map_err(serde::de::Error::custom)
}

fn show_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::time::format_prometheus_duration(*d))
}
