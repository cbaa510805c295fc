//! The response future: records the outcome in the breaker when the inner call completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::BoxError;

use super::state::Permit;
use super::{BreakerOpen, Classify, Clock};

pin_project! {
    /// Resolves to the inner response, or at once to [`BreakerOpen`].
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            future: F,
            // `None` once recorded; dropping an unrecorded permit releases a probe slot.
            permit: Option<Permit>,
            classify: C,
            clock: Arc<dyn Clock>,
        },
        Rejected { error: Option<BreakerOpen> },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn new(future: F, permit: Permit, classify: C, clock: Arc<dyn Clock>) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                classify,
                clock,
            },
        }
    }

    pub(super) fn rejected(error: BreakerOpen) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
        }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion").into()))
            }
            KindProj::Called {
                future,
                permit,
                classify,
                clock,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(clock.now(), classify.failure(result.as_ref()));
                }
                Poll::Ready(result.map_err(Into::into))
            }
        }
    }
}
