use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::*;

#[derive(Clone)]
struct FakeClock(Arc<Mutex<Instant>>);

impl FakeClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

/// The request is the outcome the fake backend answers with: an HTTP status or an error.
type Req = Result<u16, String>;

fn status_classifier(r: Result<&u16, &String>) -> Option<String> {
    match r {
        Ok(s) if *s >= 500 => Some(format!("HTTP {s}")),
        Ok(_) => None,
        Err(e) => Some(e.clone()),
    }
}

type Classifier = fn(Result<&u16, &String>) -> Option<String>;

struct Fixture {
    clock: FakeClock,
    handle: BreakerHandle,
    calls: Arc<AtomicUsize>,
}

impl Fixture {
    fn new(config: BreakerConfig) -> Self {
        let clock = FakeClock::new();
        let handle = BreakerHandle::new_at("eu1-a", config, clock.now());
        Self {
            clock,
            handle,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn service(
        &self,
    ) -> impl Service<Req, Response = u16, Error = BoxError, Future: Send> + Clone + Send + 'static
    {
        let calls = self.calls.clone();
        let inner = tower::service_fn(move |r: Req| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { r }
        });
        CircuitBreakerLayer::with_clock(
            self.handle.clone(),
            status_classifier as Classifier,
            Arc::new(self.clock.clone()),
        )
        .layer(inner)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn state(&self) -> BreakerState {
        self.handle.status().state
    }
}

async fn send<S>(svc: &mut S, r: Req) -> Result<u16, BoxError>
where
    S: Service<Req, Response = u16, Error = BoxError>,
{
    svc.ready().await?.call(r).await
}

fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_ratio: 2.0,
        ..BreakerConfig::default()
    }
}

fn fail() -> Req {
    Err("connection refused".to_string())
}

#[tokio::test]
async fn breaker_opens_after_consecutive_failures() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..2 {
        assert!(send(&mut svc, fail()).await.is_err());
    }
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(f.handle.status().consecutive_failures, 2);
    assert!(send(&mut svc, fail()).await.is_err());
    assert_eq!(f.state(), BreakerState::Open);
    assert_eq!(
        f.handle.status().last_error.as_deref(),
        Some("connection refused")
    );
}

#[tokio::test]
async fn breaker_success_resets_consecutive_failures() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..5 {
        send(&mut svc, fail()).await.unwrap_err();
        send(&mut svc, fail()).await.unwrap_err();
        send(&mut svc, Ok(200)).await.unwrap();
    }
    assert_eq!(f.state(), BreakerState::Closed);
}

#[tokio::test]
async fn open_breaker_fails_fast_without_calling_inner() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, Ok(503)).await.unwrap();
    }
    let before = f.calls();
    for _ in 0..100 {
        let err = send(&mut svc, Ok(200)).await.unwrap_err();
        let open = err.downcast_ref::<BreakerOpen>().expect("BreakerOpen");
        assert_eq!(&*open.name, "eu1-a");
        assert_eq!(open.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(open.since, f.handle.status().last_transition);
    }
    assert_eq!(f.calls(), before);
    assert_eq!(f.handle.status().rejections, 100);
}

#[tokio::test]
async fn classifier_decides_that_bad_queries_are_healthy() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..50 {
        assert_eq!(send(&mut svc, Ok(400)).await.unwrap(), 400);
    }
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(f.handle.status().consecutive_failures, 0);
}

#[tokio::test]
async fn breaker_opens_on_failure_ratio_over_window() {
    let f = Fixture::new(BreakerConfig {
        consecutive_failures: 0,
        ..BreakerConfig::default()
    });
    let mut svc = f.service();
    // Alternating: ratio 0.5, but only at the 10th request is the window trusted.
    for i in 0..9 {
        let r = if i % 2 == 0 { fail() } else { Ok(200) };
        let _ = send(&mut svc, r).await;
        f.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(f.state(), BreakerState::Closed);
    send(&mut svc, Ok(200)).await.unwrap();
    assert_eq!(f.state(), BreakerState::Closed, "4 of 10 failed");
    send(&mut svc, fail()).await.unwrap_err();
    assert_eq!(f.state(), BreakerState::Open, "6 of 11 failed");
}

#[tokio::test]
async fn ratio_window_forgets_requests_older_than_the_window() {
    let f = Fixture::new(BreakerConfig {
        consecutive_failures: 0,
        ..BreakerConfig::default()
    });
    let mut svc = f.service();
    for _ in 0..9 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    f.clock.advance(Duration::from_secs(40));
    for _ in 0..9 {
        send(&mut svc, Ok(200)).await.unwrap();
    }
    send(&mut svc, fail()).await.unwrap_err();
    assert_eq!(
        f.state(),
        BreakerState::Closed,
        "1 of 10 in the window failed"
    );
}

#[tokio::test]
async fn breaker_half_opens_after_cool_down_and_closes_on_probe_success() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    f.clock.advance(Duration::from_secs(9));
    assert!(send(&mut svc, Ok(200)).await.is_err());
    assert_eq!(f.state(), BreakerState::Open);
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(send(&mut svc, Ok(200)).await.unwrap(), 200);
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(f.handle.status().consecutive_failures, 0);
    assert_eq!(f.handle.status().opened, 1);
}

#[tokio::test]
async fn half_open_admits_only_the_configured_probes() {
    let f = Fixture::new(BreakerConfig {
        half_open_probes: 2,
        ..config()
    });
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    f.clock.advance(Duration::from_secs(10));
    let calls = f.calls();
    let p1 = svc.call(Ok(200));
    let p2 = svc.call(Ok(200));
    let third = svc.call(Ok(200)).await.unwrap_err();
    assert!(third.is::<BreakerOpen>());
    assert_eq!(f.state(), BreakerState::HalfOpen);
    assert_eq!(p1.await.unwrap(), 200);
    assert_eq!(
        f.state(),
        BreakerState::HalfOpen,
        "one of two probes succeeded"
    );
    assert_eq!(p2.await.unwrap(), 200);
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(f.calls(), calls + 2);
}

#[tokio::test]
async fn failed_probe_reopens_with_doubled_cool_down_up_to_max() {
    let f = Fixture::new(BreakerConfig {
        max_cool_down: Duration::from_secs(30),
        ..config()
    });
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    for expected in [20, 30, 30] {
        let current = f.handle.status().cool_down;
        f.clock.advance(current);
        send(&mut svc, fail()).await.unwrap_err();
        assert_eq!(f.state(), BreakerState::Open);
        assert_eq!(f.handle.status().cool_down, Duration::from_secs(expected));
    }
    f.clock.advance(Duration::from_secs(29));
    assert!(
        send(&mut svc, Ok(200))
            .await
            .unwrap_err()
            .is::<BreakerOpen>()
    );
    f.clock.advance(Duration::from_secs(1));
    send(&mut svc, Ok(200)).await.unwrap();
    assert_eq!(f.state(), BreakerState::Closed);
    assert_eq!(f.handle.status().cool_down, Duration::from_secs(10));
}

#[tokio::test]
async fn cancelled_probe_frees_its_slot() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    f.clock.advance(Duration::from_secs(10));
    drop(svc.call(Ok(200)));
    assert_eq!(send(&mut svc, Ok(200)).await.unwrap(), 200);
    assert_eq!(f.state(), BreakerState::Closed);
}

#[tokio::test]
async fn late_results_from_before_a_transition_are_ignored() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    let slow = svc.call(fail());
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    f.clock.advance(Duration::from_secs(10));
    send(&mut svc, Ok(200)).await.unwrap();
    slow.await.unwrap_err();
    assert_eq!(f.handle.status().consecutive_failures, 0);
}

#[tokio::test]
async fn state_survives_a_rebuilt_stack() {
    let f = Fixture::new(config());
    let mut svc = f.service();
    for _ in 0..3 {
        send(&mut svc, fail()).await.unwrap_err();
    }
    drop(svc);
    // A reload builds a new stack around the same handle.
    let mut rebuilt = f.service();
    assert!(
        send(&mut rebuilt, Ok(200))
            .await
            .unwrap_err()
            .is::<BreakerOpen>()
    );
    f.handle.reconfigure(BreakerConfig {
        half_open_probes: 3,
        ..config()
    });
    assert_eq!(f.state(), BreakerState::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clones_share_state_across_concurrent_tasks() {
    let f = Fixture::new(BreakerConfig {
        consecutive_failures: 50,
        ..config()
    });
    let svc = f.service();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let mut rejected = 0;
                for _ in 0..100 {
                    match send(&mut svc, fail()).await {
                        Err(e) if e.is::<BreakerOpen>() => rejected += 1,
                        _ => {}
                    }
                    tokio::task::yield_now().await;
                }
                rejected
            })
        })
        .collect();
    let mut rejected = 0;
    for t in tasks {
        rejected += t.await.unwrap();
    }
    assert_eq!(f.state(), BreakerState::Open);
    // The 50 failures that opened it reached the backend, plus at most one request per
    // other task admitted while the 50th was still on its way; every other was rejected.
    let calls = f.calls();
    assert!(
        (50..50 + 8).contains(&calls),
        "{calls} requests reached the backend"
    );
    assert_eq!(rejected, 800 - calls);
    assert_eq!(f.handle.status().rejections, 800 - calls as u64);
}

#[test]
fn config_defaults_and_prometheus_durations() {
    let c: BreakerConfig = toml::from_str("").unwrap();
    assert_eq!(c, BreakerConfig::default());
    assert_eq!(c.consecutive_failures, 5);
    assert_eq!(c.ratio_window, Duration::from_secs(30));
    assert_eq!(c.max_cool_down, Duration::from_secs(120));
    let c: BreakerConfig = toml::from_str("cool_down = \"1m30s\"\nhalf_open_probes = 3").unwrap();
    assert_eq!(c.cool_down, Duration::from_secs(90));
    assert_eq!(c.half_open_probes, 3);
    assert!(toml::from_str::<BreakerConfig>("cooldown = \"1m\"").is_err());
    assert!(toml::from_str::<BreakerConfig>("cool_down = \"10 seconds\"").is_err());
}

#[test]
fn errors_are_failures_classifier_uses_the_error_text() {
    let c = ErrorsAreFailures;
    assert_eq!(
        Classify::<u16, String>::failure(&c, Err(&"boom".to_string())),
        Some("boom".to_string())
    );
    assert_eq!(Classify::<u16, String>::failure(&c, Ok(&500)), None);
}
