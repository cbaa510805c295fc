//! A circuit breaker for one backend: stop sending requests to a backend that keeps failing,
//! answer them at once with [`BreakerOpen`], and let a few probes through now and then to
//! find out whether it has recovered.
//!
//! The breaker is **closed** while the backend is healthy and every request passes. It
//! **opens** after `consecutive_failures` failures in a row, or when, over the last
//! `ratio_window`, at least `ratio_min_requests` requests completed and the share of failures
//! among them reached `failure_ratio`. While open, `call` fails in microseconds without
//! touching the inner service. After `cool_down` the breaker is **half-open**: up to
//! `half_open_probes` requests pass as probes and the rest are still rejected. When that many
//! probes succeeded it closes again (and the counters start afresh); the first failed probe
//! opens it again, with the cool-down doubled when `double_cool_down` is set, up to
//! `max_cool_down`. A successful close resets the cool-down.
//!
//! What counts as a failure is up to a [`Classify`] the owner supplies: a backend answering
//! HTTP 400 to a bad query is healthy, one answering 503 or timing out is not.
//!
//! The state lives in a [`BreakerHandle`] (an `Arc`): every clone of the service shares it,
//! the owner reads [`BreakerStatus`] from it for metrics and status pages, and it is handed
//! to the service stack built on a config reload so an unchanged backend keeps its state.
//! Time comes from a [`Clock`] so tests need not sleep.
//!
//! `poll_ready` only delegates to the inner service: an open breaker must not hold up
//! readiness (the fan-out polls every backend), so rejection happens in `call`.

mod config;
mod error;
mod future;
mod layer;
mod service;
mod state;
#[cfg(test)]
mod tests;

pub use config::BreakerConfig;
pub use error::BreakerOpen;
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreaker;
pub use state::{BreakerHandle, BreakerState, BreakerStatus};

use tokio::time::Instant;

/// Where the breaker reads the time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// Tokio's clock (which tests may also pause and advance).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Decides whether a completed request counts as a failure of the backend.
///
/// Returns `None` for a success, `Some(reason)` for a failure; the reason becomes the
/// breaker's last error. Closures `Fn(Result<&T, &E>) -> Option<String>` implement it.
pub trait Classify<T, E> {
    fn failure(&self, result: Result<&T, &E>) -> Option<String>;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(Result<&T, &E>) -> Option<String>,
{
    fn failure(&self, result: Result<&T, &E>) -> Option<String> {
        self(result)
    }
}

/// Every `Err` is a failure, every `Ok` a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

impl<T, E: std::fmt::Display> Classify<T, E> for ErrorsAreFailures {
    fn failure(&self, result: Result<&T, &E>) -> Option<String> {
        result.err().map(ToString::to_string)
    }
}
