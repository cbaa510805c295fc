//! The state every request shares: the topology in force, where the configuration comes
//! from, and promgate's own metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::TopologyHandle;
use crate::config::{Config, ConfigErrors};
use crate::layer::auth::Authenticator;
use crate::telemetry::Metrics;

/// How long one round of external-label discovery may take.
pub(crate) const DISCOVERY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Distinct query texts kept parsed.
const QUERY_CACHE_ENTRIES: usize = 4096;

pub struct App {
    pub topology: TopologyHandle,
    /// Who may ask, from `[server.auth]`; none means everyone.
    pub auth: arc_swap::ArcSwapOption<Authenticator>,
    /// Parsed queries by text.
    pub queries: crate::promql::cache::ParseCache,
    pub metrics: Arc<Metrics>,
    config_path: Option<PathBuf>,
    ready: AtomicBool,
    reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    pub fn new(config: Config, config_path: Option<PathBuf>) -> Arc<App> {
        let metrics = Metrics::new();
        metrics.reload_successful.set(1);
        metrics
            .reload_success_time
            .set(crate::time::now_ms() / 1000);
        Arc::new(App {
            auth: arc_swap::ArcSwapOption::from(authenticator(&config)),
            topology: TopologyHandle::new(config, metrics.clone()),
            queries: crate::promql::cache::ParseCache::new(QUERY_CACHE_ENTRIES),
            metrics,
            config_path,
            ready: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The text exposition of promgate's metrics, with what the backends keep themselves
    /// (block counts, cache lookups) brought up to date first.
    pub fn render_metrics(&self) -> String {
        for backend in &self.topology.load().backends {
            if let Some(set) = backend.block_set() {
                let c = set.counts();
                self.metrics.observe_blocks(
                    backend.name(),
                    &[
                        ("loaded", c.loaded),
                        ("partial", c.partial),
                        ("deleted", c.deleted),
                        ("unreadable", c.failed),
                        ("downsampled", c.downsampled),
                    ],
                );
                let name = backend.name();
                let reads = set.reads();
                self.metrics
                    .observe_object_reads(name, reads.requests, reads.bytes);
                let stats = set.cache().stats();
                for (item, kind) in [
                    ("postings", stats.postings),
                    ("series", stats.series),
                    ("chunks", stats.chunks),
                ] {
                    self.metrics
                        .observe_block_cache(name, item, "hit", kind.hits);
                    self.metrics
                        .observe_block_cache(name, item, "miss", kind.misses);
                }
            }
        }
        self.metrics.render()
    }

    /// Re-reads the configuration file and, when it is valid, swaps the topology. An invalid
    /// file changes nothing: the running configuration keeps serving.
    pub async fn reload(self: &Arc<Self>) -> Result<(), ConfigErrors> {
        let Some(path) = &self.config_path else {
            return Err(ConfigErrors(vec![
                "no configuration file to reload: promgate runs on a built-in configuration"
                    .to_string(),
            ]));
        };
        let _serial = self.reload_lock.lock().await;
        let result = Config::load(path);
        match result {
            Ok(config) => {
                let running = self.topology.load().config.clone();
                let changed = *running != config;
                let listener = running.server.listener_settings_differ(&config.server);
                if !listener.is_empty() {
                    tracing::warn!(
                        settings = ?listener,
                        "listener settings changed: they take effect when promgate restarts"
                    );
                }
                if changed {
                    self.auth.store(authenticator(&config));
                    self.topology.apply(config);
                }
                // New backends learn their external labels in the background (or on first
                // use, whichever comes first); blocks backends read their block lists again.
                let app = self.clone();
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + DISCOVERY_BUDGET;
                    app.topology.discover_all(Some(deadline), false).await;
                    app.topology.sync_blocks(Some(deadline)).await;
                });
                self.metrics.reload_successful.set(1);
                self.metrics
                    .reload_success_time
                    .set(crate::time::now_ms() / 1000);
                self.count_reload("success");
                tracing::info!(path = %path.display(), changed, "configuration reloaded");
                Ok(())
            }
            Err(errors) => {
                self.metrics.reload_successful.set(0);
                self.count_reload("failure");
                tracing::error!(path = %path.display(), %errors, "configuration reload failed; keeping the running configuration");
                Err(errors)
            }
        }
    }

    /// Whether a request may be served: always without `[server.auth]`, and for the
    /// probes; otherwise when it presents a configured user or token.
    pub async fn authorizes(&self, path: &str, headers: &http::HeaderMap) -> bool {
        match self.auth.load_full() {
            None => true,
            Some(_) if crate::layer::auth::is_public(path) => true,
            Some(auth) => auth.allows(headers).await,
        }
    }

    fn count_reload(&self, outcome: &str) {
        self.metrics
            .reloads
            .get_or_create(&crate::telemetry::HandlerOnly {
                handler: outcome.to_string(),
            })
            .inc();
    }
}

/// The authenticator for `[server.auth]`. Validation read the same files a moment ago; if
/// they went away since, nobody gets in rather than everybody.
fn authenticator(config: &Config) -> Option<Arc<Authenticator>> {
    let auth = config.server.auth.as_ref()?;
    Some(Arc::new(Authenticator::new(auth).unwrap_or_else(|e| {
        tracing::error!(error = %e, "[server.auth] does not load: every request is refused");
        Authenticator::default()
    })))
}
