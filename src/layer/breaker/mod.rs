//! Circuit breaker layer.
