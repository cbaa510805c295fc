//! The shared breaker state and its transitions.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{BreakerConfig, BreakerOpen};

/// Buckets of the rolling failure-ratio window.
const BUCKETS: usize = 10;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// A snapshot of a breaker for metrics and status pages.
#[derive(Debug, Clone)]
pub struct BreakerStatus {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_transition: Instant,
    /// The cool-down the breaker waits (or will wait) while open.
    pub cool_down: Duration,
    /// Calls answered with [`BreakerOpen`] since the handle was created.
    pub rejections: u64,
    /// Times the breaker opened since the handle was created.
    pub opened: u64,
}

/// The state of one backend's breaker, shared by every clone of its service and kept
/// across rebuilds of the stack; cloning shares it.
#[derive(Clone)]
pub struct BreakerHandle {
    name: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_transition: Instant,
    cool_down: Duration,
    probes_in_flight: u32,
    probe_successes: u32,
    /// Bumped on every transition so outcomes of requests admitted before it are ignored.
    generation: u64,
    window: Window,
    rejections: u64,
    opened: u64,
}

/// Request outcomes of the last `ratio_window`, in `BUCKETS` slices.
struct Window {
    origin: Instant,
    /// (slice index since `origin`, successes, failures)
    buckets: [(u64, u32, u32); BUCKETS],
}

pub(super) enum Admission {
    Admitted(Permit),
    Rejected(BreakerOpen),
}

/// One admitted call; records its outcome, or on drop gives back a probe slot.
pub(super) struct Permit {
    handle: BreakerHandle,
    generation: u64,
    probe: bool,
    recorded: bool,
}

// === impl BreakerHandle ===

impl BreakerHandle {
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        Self::new_at(name, config, Instant::now())
    }

    /// A closed breaker whose clock starts at `now` (for tests with a fake clock).
    pub fn new_at(name: impl Into<Arc<str>>, config: BreakerConfig, now: Instant) -> Self {
        let cool_down = config.cool_down;
        Self {
            name: name.into(),
            inner: Arc::new(Mutex::new(Inner {
                config,
                state: BreakerState::Closed,
                consecutive_failures: 0,
                last_error: None,
                last_transition: now,
                cool_down,
                probes_in_flight: 0,
                probe_successes: 0,
                generation: 0,
                window: Window::new(now),
                rejections: 0,
                opened: 0,
            })),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies a changed configuration (on reload) without forgetting the state.
    pub fn reconfigure(&self, config: BreakerConfig) {
        let mut inner = self.lock();
        if inner.state == BreakerState::Closed {
            inner.cool_down = config.cool_down;
        }
        inner.config = config;
    }

    pub fn status(&self) -> BreakerStatus {
        let inner = self.lock();
        BreakerStatus {
            state: inner.state,
            consecutive_failures: inner.consecutive_failures,
            last_error: inner.last_error.clone(),
            last_transition: inner.last_transition,
            cool_down: inner.cool_down,
            rejections: inner.rejections,
            opened: inner.opened,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every update is complete
        // before any call that could panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn admit(&self, now: Instant) -> Admission {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open && now >= inner.last_transition + inner.cool_down {
            inner.transition(BreakerState::HalfOpen, now);
        }
        let probe = match inner.state {
            BreakerState::Closed => false,
            BreakerState::HalfOpen
                if inner.probes_in_flight < inner.config.half_open_probes.max(1) =>
            {
                inner.probes_in_flight += 1;
                true
            }
            _ => {
                inner.rejections += 1;
                return Admission::Rejected(BreakerOpen {
                    name: self.name.clone(),
                    since: inner.last_transition,
                    last_error: inner.last_error.clone(),
                });
            }
        };
        Admission::Admitted(Permit {
            handle: self.clone(),
            generation: inner.generation,
            probe,
            recorded: false,
        })
    }
}

// === impl Inner ===

impl Inner {
    fn transition(&mut self, to: BreakerState, now: Instant) {
        self.state = to;
        self.last_transition = now;
        self.generation += 1;
        self.probes_in_flight = 0;
        self.probe_successes = 0;
        match to {
            BreakerState::Open => self.opened += 1,
            BreakerState::Closed => {
                self.consecutive_failures = 0;
                self.cool_down = self.config.cool_down;
                self.window = Window::new(now);
            }
            BreakerState::HalfOpen => {}
        }
    }

    fn record(&mut self, generation: u64, probe: bool, now: Instant, failure: Option<String>) {
        if generation != self.generation {
            // Admitted before the last transition: says nothing about the state now.
            return;
        }
        let failed = failure.is_some();
        if let Some(e) = failure {
            self.last_error = Some(e);
        }
        match self.state {
            BreakerState::Closed => {
                let slice = self.config.ratio_window / BUCKETS as u32;
                self.window.record(now, slice, failed);
                if !failed {
                    self.consecutive_failures = 0;
                    return;
                }
                self.consecutive_failures += 1;
                let by_count = self.config.consecutive_failures > 0
                    && self.consecutive_failures >= self.config.consecutive_failures;
                let (ok, bad) = self.window.totals(now, slice);
                let total = ok + bad;
                let by_ratio = total > 0
                    && total >= self.config.ratio_min_requests
                    && f64::from(bad) / f64::from(total) >= self.config.failure_ratio;
                if by_count || by_ratio {
                    self.transition(BreakerState::Open, now);
                }
            }
            BreakerState::HalfOpen if probe => {
                if failed {
                    self.consecutive_failures += 1;
                    if self.config.double_cool_down {
                        self.cool_down = (self.cool_down * 2).min(self.config.max_cool_down);
                    }
                    self.transition(BreakerState::Open, now);
                } else {
                    self.probes_in_flight -= 1;
                    self.probe_successes += 1;
                    if self.probe_successes >= self.config.half_open_probes.max(1) {
                        self.transition(BreakerState::Closed, now);
                    }
                }
            }
            _ => {}
        }
    }
}

// === impl Window ===

impl Window {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn index(&self, now: Instant, slice: Duration) -> u64 {
        let slice = slice.as_nanos().max(1);
        (now.saturating_duration_since(self.origin).as_nanos() / slice) as u64
    }

    fn record(&mut self, now: Instant, slice: Duration, failed: bool) {
        let idx = self.index(now, slice);
        let bucket = &mut self.buckets[(idx % BUCKETS as u64) as usize];
        if bucket.0 != idx {
            *bucket = (idx, 0, 0);
        }
        if failed {
            bucket.2 += 1;
        } else {
            bucket.1 += 1;
        }
    }

    /// (successes, failures) in the slices that are within the window at `now`.
    fn totals(&self, now: Instant, slice: Duration) -> (u32, u32) {
        let idx = self.index(now, slice);
        self.buckets
            .iter()
            .filter(|(i, _, _)| *i != u64::MAX && idx.saturating_sub(*i) < BUCKETS as u64)
            .fold((0, 0), |(ok, bad), (_, o, b)| (ok + o, bad + b))
    }
}

// === impl Permit ===

impl Permit {
    pub(super) fn record(mut self, now: Instant, failure: Option<String>) {
        self.recorded = true;
        self.handle
            .lock()
            .record(self.generation, self.probe, now, failure);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.recorded || !self.probe {
            return;
        }
        // A cancelled probe: free its slot so the breaker does not stay half-open forever.
        let mut inner = self.handle.lock();
        if inner.generation == self.generation && inner.probes_in_flight > 0 {
            inner.probes_in_flight -= 1;
        }
    }
}
