//! The breaker service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Service};

use super::future::ResponseFuture;
use super::state::Admission;
use super::{BreakerHandle, Classify, Clock};

/// Wraps `S`, rejecting calls while its breaker is open; see the module docs.
#[derive(Clone)]
pub struct CircuitBreaker<S, C> {
    inner: S,
    handle: BreakerHandle,
    classify: C,
    clock: Arc<dyn Clock>,
}

impl<S, C> CircuitBreaker<S, C> {
    pub fn new(inner: S, handle: BreakerHandle, classify: C, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            handle,
            classify,
            clock,
        }
    }

    /// The shared state, for metrics or to carry into a rebuilt stack.
    pub fn handle(&self) -> &BreakerHandle {
        &self.handle
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.handle.admit(self.clock.now()) {
            Admission::Rejected(open) => ResponseFuture::rejected(open),
            Admission::Admitted(permit) => ResponseFuture::new(
                self.inner.call(req),
                permit,
                self.classify.clone(),
                self.clock.clone(),
            ),
        }
    }
}
