//! Admission of API requests: a per-client rate limit, then a fixed number of slots with a
//! bounded, time-limited queue in front of them.
//!
//! A request first passes the client's rate: pingora's [`Rate`] counts each client address's
//! requests in one-second periods (in a fixed-size count-min sketch, so memory does not grow
//! with the number of clients; it may count a client high, never low) and estimates its requests over the last second by weighting
//! the previous period by the part of it still inside that second. A client whose previous
//! second stayed within `requests_per_second` may go `burst` requests above it; one that was
//! above it gets no burst until it slows down, so over time it keeps to its rate. A request
//! over the limit is answered 429 with `Retry-After`.
//!
//! Then it takes one of `max_concurrent` slots. With none free it waits, if fewer than
//! `max_queued` requests already wait, for at most `queue_timeout`; otherwise, or when that
//! passes, it is answered 503 `unavailable` with `Retry-After`. The slots are counted at
//! start; the rate, queue length and queue timeout are read for each request (so a reload
//! changes them). Health, readiness, reload and /metrics pass without either check: a
//! saturated gateway still reports its state.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::api::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use pingora_limits::rate::Rate;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::api::{error_response, route_name};
use crate::error::ApiError;
use crate::telemetry::Metrics;

/// Size of the rate sketch: 4 × 8192 counters per period, two periods, 512 KiB in all. A
/// count-min sketch only errs high, and rarely while a few thousand clients are active in
/// the same second.
const RATE_HASHES: usize = 4;
const RATE_SLOTS: usize = 8192;

/// The address of the client a request came from, set on each request by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The knobs read for each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionSettings {
    /// Requests per second a client may keep up; 0 = no limit.
    pub requests_per_second: f64,
    /// Requests above the rate allowed after a second within it.
    pub burst: u32,
    /// Requests that may wait for a slot.
    pub max_queued: usize,
    /// How long one may wait.
    pub queue_timeout: Duration,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    RateLimited,
    QueueFull,
    QueueTimeout,
}

impl Refusal {
    /// The `reason` label of `promgate_http_requests_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::QueueFull => "queue_full",
            Refusal::QueueTimeout => "queue_timeout",
        }
    }

    /// The answer, in Prometheus's error format.
    pub fn response(self) -> Response<Body> {
        let (status, message) = match self {
            Refusal::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this client; slow down (server.client_requests_per_second)",
            ),
            Refusal::QueueFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests and the queue is full; try again later",
            ),
            Refusal::QueueTimeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests: no slot freed within server.queue_timeout; try again later",
            ),
        };
        let mut resp = error_response(&ApiError::unavailable(message));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }
}

/// Routes that are never limited: a saturated gateway must still say how it is.
fn exempt(path: &str) -> bool {
    matches!(route_name(path), "healthy" | "ready" | "reload" | "metrics")
}

/// Whether one more request from a client is over its rate. `prev` and `curr` are its
/// requests in the previous and current one-second periods, `fraction` how far into the
/// current period we are (0..1).
pub fn over_rate(
    prev: f64,
    curr: f64,
    fraction: f64,
    requests_per_second: f64,
    burst: u32,
) -> bool {
    let last_second = prev * (1.0 - fraction.clamp(0.0, 1.0)) + curr;
    let allowance = if prev <= requests_per_second {
        requests_per_second + f64::from(burst)
    } else {
        requests_per_second
    };
    last_second + 1.0 > allowance
}

/// What every connection's service shares: slots, the queue count, the clients' rates.
pub struct Admission {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    rate: Rate,
    settings: Box<dyn Fn() -> AdmissionSettings + Send + Sync>,
    metrics: Arc<Metrics>,
}

impl Admission {
    pub fn new(
        max_concurrent: usize,
        settings: impl Fn() -> AdmissionSettings + Send + Sync + 'static,
        metrics: Arc<Metrics>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            queued: AtomicUsize::new(0),
            rate: Rate::new_with_estimator_config(Duration::from_secs(1), RATE_HASHES, RATE_SLOTS),
            settings: Box::new(settings),
            metrics,
        })
    }

    /// A slot for one request, or why there is none.
    pub async fn admit(&self, client: Option<IpAddr>) -> Result<Slot, Refusal> {
        let settings = (self.settings)();
        if let Some(ip) = client {
            self.check_rate(ip, &settings)
                .inspect_err(|r| self.refused(*r))?;
        }
        self.slot(&settings).await.inspect_err(|r| self.refused(*r))
    }

    fn check_rate(&self, ip: IpAddr, settings: &AdmissionSettings) -> Result<(), Refusal> {
        if settings.requests_per_second <= 0.0 {
            return Ok(());
        }
        let over = self.rate.rate_with(&ip, |c| {
            over_rate(
                c.prev_samples as f64,
                c.curr_samples as f64,
                c.current_interval_fraction,
                settings.requests_per_second,
                settings.burst,
            )
        });
        if over {
            return Err(Refusal::RateLimited);
        }
        self.rate.observe(&ip, 1);
        Ok(())
    }

    async fn slot(&self, settings: &AdmissionSettings) -> Result<Slot, Refusal> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::enter(self, settings.max_queued)?;
                match tokio::time::timeout(
                    settings.queue_timeout,
                    self.slots.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(Refusal::QueueTimeout),
                }
            }
        };
        self.metrics.http_in_flight.inc();
        Ok(Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    fn refused(&self, refusal: Refusal) {
        self.metrics.observe_refused(refusal.reason());
    }
}

/// A place in the queue, left when dropped (also when the client goes away while waiting).
struct Waiting<'a>(&'a Admission);

impl<'a> Waiting<'a> {
    fn enter(admission: &'a Admission, max_queued: usize) -> Result<Self, Refusal> {
        let before = admission.queued.fetch_add(1, Ordering::SeqCst);
        if before >= max_queued {
            admission.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::QueueFull);
        }
        admission.metrics.http_queued.inc();
        Ok(Waiting(admission))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.http_queued.dec();
    }
}

/// One of the slots, held while the request is served.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.http_in_flight.dec();
    }
}

// === impl AdmissionLayer ===

#[derive(Clone)]
pub struct AdmissionLayer {
    admission: Arc<Admission>,
}

impl AdmissionLayer {
    pub fn new(admission: Arc<Admission>) -> Self {
        AdmissionLayer { admission }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

// === impl AdmissionService ===

#[derive(Clone)]
pub struct AdmissionService<S> {
    inner: S,
    admission: Arc<Admission>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for AdmissionService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if exempt(req.uri().path()) {
            return Box::pin(inner.call(req));
        }
        let admission = self.admission.clone();
        let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
        Box::pin(async move {
            match admission.admit(client).await {
                Ok(slot) => {
                    let resp = inner.call(req).await;
                    drop(slot);
                    resp
                }
                Err(refusal) => Ok(refusal.response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_queued: usize, queue_timeout_ms: u64) -> AdmissionSettings {
        AdmissionSettings {
            requests_per_second: 0.0,
            burst: 0,
            max_queued,
            queue_timeout: Duration::from_millis(queue_timeout_ms),
        }
    }

    #[test]
    fn a_client_within_its_rate_may_burst_but_not_twice_in_a_row() {
        // 10/s with a burst of 5: after a calm second, 15 in a second pass.
        assert!(!over_rate(0.0, 14.0, 0.5, 10.0, 5));
        assert!(over_rate(0.0, 15.0, 0.5, 10.0, 5));
        // After a second above the rate, no burst: 12 last second, half of it still counts.
        assert!(!over_rate(12.0, 3.0, 0.5, 10.0, 5));
        assert!(over_rate(12.0, 4.0, 0.5, 10.0, 5));
        // Without a burst the rate is the limit.
        assert!(over_rate(0.0, 10.0, 0.9, 10.0, 0));
        assert!(!over_rate(0.0, 9.0, 0.9, 10.0, 0));
    }

    #[tokio::test]
    async fn rate_limited_clients_are_refused_and_others_are_not() {
        let admission = Admission::new(
            100,
            || AdmissionSettings {
                requests_per_second: 3.0,
                ..settings(0, 1)
            },
            Metrics::new(),
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut slots = Vec::new();
        for _ in 0..3 {
            slots.push(admission.admit(Some(a)).await.unwrap());
        }
        assert_eq!(
            admission.admit(Some(a)).await.err(),
            Some(Refusal::RateLimited)
        );
        assert!(admission.admit(Some(b)).await.is_ok());
        assert!(admission.admit(None).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_waiter_gives_up_after_the_timeout() {
        let admission = Admission::new(1, || settings(1, 50), Metrics::new());
        let held = admission.admit(None).await.unwrap();
        let started = tokio::time::Instant::now();
        let (waiter, second) = tokio::join!(admission.admit(None), async {
            tokio::task::yield_now().await;
            admission.admit(None).await
        });
        assert_eq!(second.err(), Some(Refusal::QueueFull));
        assert_eq!(waiter.err(), Some(Refusal::QueueTimeout));
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(admission.admit(None).await.is_ok());
        assert_eq!(admission.queued.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_slot_freed_before_its_timeout() {
        let admission = Admission::new(1, || settings(4, 5_000), Metrics::new());
        let held = admission.admit(None).await.unwrap();
        let (waiter, ()) = tokio::join!(admission.admit(None), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(held);
        });
        assert!(waiter.is_ok());
    }

    #[test]
    fn refusals_are_prometheus_errors_with_retry_after() {
        let resp = Refusal::RateLimited.response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let resp = Refusal::QueueTimeout.response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(exempt("/-/healthy") && exempt("/metrics") && !exempt("/api/v1/query"));
    }
}
