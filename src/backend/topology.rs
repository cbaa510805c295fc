//! The set of backends in force, grouped into replica groups, and its replacement on reload.
//! Requests load the topology once and keep that `Arc` to the end, so a reload never changes
//! the backends under a request in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::fanout::MemberFailure;
use super::{Backend, ExternalLabels, HttpClient};
use crate::config::Config;
use crate::telemetry::Metrics;

/// How long a request may wait for a backend's external labels to be learnt; the background
/// discovery keeps trying beyond that.
const DISCOVERY_IN_REQUEST: Duration = Duration::from_secs(2);

/// Backends that hold the same data: equal external labels once replica labels are removed.
#[derive(Clone)]
pub struct ReplicaGroup {
    /// External labels without the replica labels: what answers from this group carry.
    pub labels: ExternalLabels,
    /// Healthy members first, then in configuration order.
    pub members: Vec<Arc<Backend>>,
}

impl ReplicaGroup {
    /// `{cluster="eu1"}`, for messages.
    pub fn describe(&self) -> String {
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    /// External labels as pairs, for attaching to results.
    pub fn label_pairs(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The configuration in force and the backends built from it.
pub struct Topology {
    pub config: Arc<Config>,
    pub backends: Vec<Arc<Backend>>,
}

impl Topology {
    /// Builds the backends of `config`, taking over every backend of `previous` whose
    /// configuration did not change (with its connections, labels and health).
    pub fn build(
        config: Config,
        previous: Option<&Topology>,
        client: &HttpClient,
        metrics: &Arc<Metrics>,
    ) -> Topology {
        let backends = config
            .backends
            .iter()
            .map(|bc| {
                previous
                    .and_then(|p| p.backends.iter().find(|b| b.config == *bc))
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Backend::new(bc.clone(), client.clone(), metrics.clone()))
                    })
            })
            .collect();
        Topology {
            config: Arc::new(config),
            backends,
        }
    }

    /// Groups the backends that answer the query API by external labels without the
    /// replica labels. Backends whose
    /// labels cannot be learnt are returned apart with the reason; learning them holds a
    /// request up for [`DISCOVERY_IN_REQUEST`] at most.
    pub async fn replica_groups(
        &self,
        deadline: Option<Instant>,
    ) -> (Vec<ReplicaGroup>, Vec<MemberFailure>) {
        let soon = Instant::now() + DISCOVERY_IN_REQUEST;
        let deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
        // Replica groups answer the query API; raw-only stores are read through the store.
        let lookups = self
            .backends
            .iter()
            .filter(|b| b.config.kind.has_query_api())
            .map(|b| async move {
                let labels = b.ensure_labels(deadline).await;
                (b.clone(), labels)
            });
        let results = futures::future::join_all(lookups).await;
        let replica_labels = &self.config.query.replica_labels;
        let mut groups: BTreeMap<ExternalLabels, Vec<Arc<Backend>>> = BTreeMap::new();
        let mut unknown = Vec::new();
        let mut order = Vec::new();
        for (backend, labels) in results {
            match labels {
                Ok(labels) => {
                    let mut key = (*labels).clone();
                    key.retain(|k, _| !replica_labels.contains(k));
                    if !groups.contains_key(&key) {
                        order.push(key.clone());
                    }
                    groups.entry(key).or_default().push(backend);
                }
                Err(error) => unknown.push(MemberFailure {
                    backend: backend.name().to_string(),
                    error,
                }),
            }
        }
        let groups = order
            .into_iter()
            .filter_map(|key| {
                let mut members = groups.remove(&key)?;
                // Stable: configuration order among equally healthy members.
                members.sort_by_key(|b| !b.is_healthy());
                Some(ReplicaGroup {
                    labels: key,
                    members,
                })
            })
            .collect();
        (groups, unknown)
    }
}

/// The topology in force, swapped atomically on reload.
pub struct TopologyHandle {
    current: ArcSwap<Topology>,
    client: HttpClient,
    metrics: Arc<Metrics>,
}

impl TopologyHandle {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> TopologyHandle {
        let client = super::client::http_client();
        let topology = Topology::build(config, None, &client, &metrics);
        TopologyHandle {
            current: ArcSwap::from_pointee(topology),
            client,
            metrics,
        }
    }

    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Replaces the topology with one built from `config`; requests in flight keep the old
    /// one. Backends that left are forgotten in the metrics.
    pub fn apply(&self, config: Config) -> Arc<Topology> {
        let previous = self.current.load_full();
        let next = Arc::new(Topology::build(
            config,
            Some(&previous),
            &self.client,
            &self.metrics,
        ));
        for old in &previous.backends {
            if !next.backends.iter().any(|b| b.name() == old.name()) {
                self.metrics.forget_backend(old.name());
            }
        }
        self.current.store(next.clone());
        next
    }

    /// Asks every Prometheus whose labels or version are unknown for them, concurrently;
    /// with `refresh`, every Prometheus (labels change when a Prometheus reloads its own
    /// configuration).
    pub async fn discover_all(&self, deadline: Option<Instant>, refresh: bool) {
        let topology = self.load();
        let syncs = self.sync_some_blocks(deadline, false);
        let lookups = topology
            .backends
            .iter()
            .filter(|b| {
                let unknown = b.external_labels().is_none() || b.version().is_none();
                b.config.kind.has_query_api() && (refresh || unknown)
            })
            .map(|b| b.discover_labels(deadline));
        let (results, _) = futures::future::join(futures::future::join_all(lookups), syncs).await;
        for result in results {
            if let Err(e) = result {
                tracing::warn!(error = %e, "backend external label discovery failed");
            }
        }
    }

    /// Reads the block list of every blocks backend again.
    pub async fn sync_blocks(&self, deadline: Option<Instant>) {
        self.sync_some_blocks(deadline, true).await
    }

    /// Reads the block lists of blocks backends not read yet or not for their sync interval;
    /// with `all`, of every one.
    async fn sync_some_blocks(&self, deadline: Option<Instant>, all: bool) {
        let topology = self.load();
        let syncs = topology
            .backends
            .iter()
            .filter_map(|b| b.block_set().map(|set| (b, set)))
            .filter(|(_, set)| all || set.due())
            .map(|(b, set)| async move {
                let sync = set.sync();
                let result = match deadline {
                    Some(d) => tokio::time::timeout_at(d, sync)
                        .await
                        .unwrap_or(Err(crate::storage::object::ObjectError::Timeout)),
                    None => sync.await,
                };
                if let Err(e) = result {
                    tracing::warn!(backend = b.name(), error = %e, "block list not read");
                }
            });
        futures::future::join_all(syncs).await;
    }
}
