//! The error an open breaker answers with.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

/// The breaker of backend `name` is open (or half-open with all probes taken): the request
/// was not sent.
#[derive(Debug, Clone)]
pub struct BreakerOpen {
    pub name: Arc<str>,
    /// When the breaker last opened.
    pub since: Instant,
    /// The failure that opened it, as the classifier described it.
    pub last_error: Option<String>,
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker of backend {} is open since {:.1?} ago",
            self.name,
            self.since.elapsed()
        )?;
        if let Some(e) = &self.last_error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BreakerOpen {}
