//! Retrying reads that failed for a reason a second try can cure.
//!
//! Every request promgate sends a backend is a read, so repeating it is safe. A connection
//! that failed or broke, or a gateway in front of the backend answering 502/503/504 without
//! a Prometheus error body, is retried up to `retries` times after a backoff of
//! `retry_backoff` doubling per attempt, with ±50% jitter so that replicas of promgate do not
//! retry in step. A query the backend rejected, a Prometheus timeout, or a too large answer
//! is final. No retry starts once its backoff would end past the request's deadline.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::{ApiRequest, ApiResponse, BackendError};

/// A request the retry policy can repeat: it knows its deadline.
pub trait Repeatable: Clone {
    fn deadline(&self) -> Option<Instant>;
}

/// An answer type whose failures the policy can judge.
pub trait Judged: Sized {
    /// Whether a second attempt can succeed where this one failed.
    fn transient(result: &Result<Self, BackendError>) -> bool;
}

impl Repeatable for ApiRequest {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Judged for ApiResponse {
    fn transient(result: &Result<Self, BackendError>) -> bool {
        transient(result)
    }
}

#[derive(Clone, Debug)]
pub struct ReadRetryPolicy {
    remaining: u32,
    backoff: Duration,
}

impl ReadRetryPolicy {
    pub fn new(retries: u32, backoff: Duration) -> Self {
        ReadRetryPolicy {
            remaining: retries,
            backoff,
        }
    }
}

/// Whether a second attempt can succeed where this one failed.
fn transient(result: &Result<ApiResponse, BackendError>) -> bool {
    match result {
        Ok(resp) => {
            matches!(
                resp.status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ) && !resp.body.starts_with(b"{")
        }
        Err(BackendError::Connect(_) | BackendError::Transport(_)) => true,
        Err(_) => false,
    }
}

/// ±50% of `d`, from the clock's low bits (no need for a random generator here).
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    d.mul_f64(factor)
}

impl<Req: Repeatable, Resp: Judged> tower::retry::Policy<Req, Resp, BackendError>
    for ReadRetryPolicy
{
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(
        &mut self,
        req: &mut Req,
        result: &mut Result<Resp, BackendError>,
    ) -> Option<Self::Future> {
        if self.remaining == 0 || !Resp::transient(result) {
            return None;
        }
        let wait = jittered(self.backoff);
        let wake = Instant::now() + wait;
        if req.deadline().is_some_and(|deadline| wake >= deadline) {
            return None;
        }
        self.remaining -= 1;
        self.backoff = self.backoff.saturating_mul(2);
        Some(Box::pin(tokio::time::sleep_until(wake)))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::{ServiceBuilder, ServiceExt};

    fn flaky(
        failures: u32,
        error: BackendError,
    ) -> (
        Arc<AtomicU32>,
        impl tower::Service<ApiRequest, Response = ApiResponse, Error = BackendError> + Clone,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let svc = tower::service_fn(move |_req: ApiRequest| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let error = error.clone();
            async move {
                if n < failures {
                    Err(error)
                } else {
                    Ok(ApiResponse {
                        status: StatusCode::OK,
                        body: bytes::Bytes::from_static(b"{}"),
                    })
                }
            }
        });
        (calls, svc)
    }

    fn request() -> ApiRequest {
        ApiRequest::get("/api/v1/query", vec![])
    }

    #[tokio::test]
    async fn connection_failures_are_retried_up_to_the_limit() {
        let (calls, svc) = flaky(2, BackendError::Connect("refused".into()));
        let svc = ServiceBuilder::new()
            .retry(ReadRetryPolicy::new(2, Duration::from_millis(1)))
            .service(svc);
        assert!(svc.oneshot(request()).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let (calls, svc) = flaky(5, BackendError::Connect("refused".into()));
        let svc = ServiceBuilder::new()
            .retry(ReadRetryPolicy::new(2, Duration::from_millis(1)))
            .service(svc);
        assert!(svc.oneshot(request()).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn rejected_queries_and_timeouts_are_final() {
        for error in [
            BackendError::Api {
                status: 400,
                error_type: Some(crate::error::ErrorType::BadData),
                message: "parse error".into(),
            },
            BackendError::Timeout(Duration::from_secs(1)),
            BackendError::TooLarge { limit: 1 },
        ] {
            let (calls, svc) = flaky(1, error.clone());
            let svc = ServiceBuilder::new()
                .retry(ReadRetryPolicy::new(3, Duration::from_millis(1)))
                .service(svc);
            assert!(svc.oneshot(request()).await.is_err(), "{error}");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{error}");
        }
    }

    #[tokio::test]
    async fn no_retry_ends_past_the_deadline() {
        let (calls, svc) = flaky(1, BackendError::Connect("refused".into()));
        let svc = ServiceBuilder::new()
            .retry(ReadRetryPolicy::new(3, Duration::from_secs(10)))
            .service(svc);
        let req = request().with_deadline(Instant::now() + Duration::from_secs(1));
        assert!(svc.oneshot(req).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn gateway_errors_without_a_prometheus_body_are_transient() {
        let resp = |status, body: &'static [u8]| {
            Ok(ApiResponse {
                status,
                body: bytes::Bytes::from_static(body),
            })
        };
        assert!(transient(&resp(StatusCode::BAD_GATEWAY, b"<html>")));
        assert!(!transient(&resp(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"error","errorType":"timeout"}"#
        )));
        assert!(!transient(&resp(StatusCode::OK, b"{}")));
    }
}
