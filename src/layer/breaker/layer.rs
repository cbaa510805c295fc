//! The layer that wraps a backend's service in its breaker.

use std::sync::Arc;

use tower::Layer;

use super::{BreakerHandle, CircuitBreaker, Clock, TokioClock};

/// Applies the breaker whose state is `handle` with classifier `classify`.
#[derive(Clone)]
pub struct CircuitBreakerLayer<C> {
    handle: BreakerHandle,
    classify: C,
    clock: Arc<dyn Clock>,
}

impl<C> CircuitBreakerLayer<C> {
    pub fn new(handle: BreakerHandle, classify: C) -> Self {
        Self::with_clock(handle, classify, Arc::new(TokioClock))
    }

    pub fn with_clock(handle: BreakerHandle, classify: C, clock: Arc<dyn Clock>) -> Self {
        Self {
            handle,
            classify,
            clock,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(
            inner,
            self.handle.clone(),
            self.classify.clone(),
            self.clock.clone(),
        )
    }
}
