//! Per-endpoint request counts and latency.
//!
//! [`HttpMetricsLayer`] wraps the API service; for every request it notes the route (one of
//! a fixed set of names, so a client cannot create series at will) and, when the response
//! is ready, counts it by status code and observes its latency. Time spent streaming the
//! body out is not included.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::api::route_name;
use crate::telemetry::{HandlerLabels, HandlerOnly, Metrics};

#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: Arc<Metrics>,
}

impl HttpMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        HttpMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

// === impl HttpMetrics ===

#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, RB> Service<Request<B>> for HttpMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = route_name(req.uri().path());
        ResponseFuture {
            inner: self.inner.call(req),
            metrics: self.metrics.clone(),
            route,
            started: Instant::now(),
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<Metrics>,
        route: &'static str,
        started: Instant,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let code = match &result {
            Ok(resp) => resp.status().as_u16().to_string(),
            Err(_) => "error".to_string(),
        };
        this.metrics
            .http_requests
            .get_or_create(&HandlerLabels {
                handler: this.route.to_string(),
                code,
            })
            .inc();
        this.metrics
            .http_duration
            .get_or_create(&HandlerOnly {
                handler: this.route.to_string(),
            })
            .observe(this.started.elapsed().as_secs_f64());
        Poll::Ready(result)
    }
}
