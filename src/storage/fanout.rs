//! The store over every configured backend: one select goes to all of them at once, each
//! backend answers through its own stack (breaker, timeout, limit, retry), and the answers
//! become one set of series. Series with equal labels merge; series equal but for the
//! replica labels are replicas of one series, deduplicated when their samples are read. A
//! backend that fails leaves a failure with its reason; whether that fails the select
//! depends on `partial_response`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::store::{SelectRequest, SeriesSet, Store, StoreError, StoreSeries};
use crate::backend::fanout::MemberFailure;
use crate::backend::{Backend, SelectedSeries, Topology};
use crate::model::Labels;
use crate::storage::remote::RemoteSeries;

/// Every backend of one topology, as one store.
pub struct MergedStore {
    topology: Arc<Topology>,
    backends: Vec<Arc<Backend>>,
    partial_response: bool,
}

impl MergedStore {
    /// Every backend of `topology`. Without `partial_response` a failed backend fails the
    /// select; with it, it is left in [`SeriesSet::failures`].
    pub fn new(topology: Arc<Topology>, partial_response: bool) -> Self {
        let backends = topology.backends.clone();
        Self::with_backends(topology, backends, partial_response)
    }

    /// Some of `topology`'s backends only.
    pub fn with_backends(
        topology: Arc<Topology>,
        backends: Vec<Arc<Backend>>,
        partial_response: bool,
    ) -> Self {
        MergedStore {
            topology,
            backends,
            partial_response,
        }
    }
}

impl Store for MergedStore {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesSet, StoreError> {
        let backends = &self.backends;
        let answers = futures::future::join_all(backends.iter().map(|b| b.select(request))).await;
        let mut failures = Vec::new();
        let mut answered = Vec::new();
        for (backend, answer) in backends.iter().zip(answers) {
            match answer {
                Ok(series) => answered.push(series),
                Err(error) => failures.push(MemberFailure {
                    backend: backend.name().to_string(),
                    error,
                }),
            }
        }
        if !self.partial_response {
            if let Some(f) = failures.first() {
                return Err(if f.error.is_timeout() {
                    StoreError::BackendTimedOut(f.warning())
                } else {
                    StoreError::BackendFailed(f.warning())
                });
            }
        }
        let count = answered.len();
        let series = merge(answered, &self.topology.config.query.replica_labels);
        Ok(SeriesSet {
            series,
            failures,
            answered: count,
        })
    }
}

/// Groups the backends' series (in backend order) into the series of the answer.
pub fn merge(answers: Vec<Vec<SelectedSeries>>, replica_labels: &[String]) -> Vec<StoreSeries> {
    // Final labels → full labels (with replica labels) → the answers with exactly those.
    type Replicas = Vec<(Labels, Vec<Arc<RemoteSeries>>)>;
    let mut by_labels: BTreeMap<Labels, Replicas> = BTreeMap::new();
    for SelectedSeries { labels, series } in answers.into_iter().flatten() {
        let mut key = labels.clone();
        for name in replica_labels {
            key.remove(name);
        }
        let replicas = by_labels.entry(key).or_default();
        match replicas.iter_mut().find(|(full, _)| *full == labels) {
            Some((_, same)) => same.push(Arc::new(series)),
            None => replicas.push((labels, vec![Arc::new(series)])),
        }
    }
    by_labels
        .into_iter()
        .map(|(labels, replicas)| {
            StoreSeries::new(labels, replicas.into_iter().map(|(_, s)| s).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::dedup::DedupMode;
    use crate::storage::remote::SeriesData;

    fn selected(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SelectedSeries {
        let labels: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SelectedSeries {
            labels: Labels::new(labels.clone()),
            series: RemoteSeries {
                labels,
                data: SeriesData::Samples(samples.to_vec()),
            },
        }
    }

    fn every(step: i64, from: i64, to: i64, v: f64) -> Vec<(i64, f64)> {
        (from..=to)
            .step_by(step as usize)
            .map(|t| (t, v + t as f64))
            .collect()
    }

    #[test]
    fn replicas_become_one_series_with_the_gap_filled() {
        let replica = vec!["replica".to_string()];
        let mut a = every(15_000, 0, 300_000, 0.0);
        a.retain(|(t, _)| !(100_000..200_000).contains(t));
        let b = every(15_000, 1_000, 301_000, 0.0);
        let merged = merge(
            vec![
                vec![selected(&[("__name__", "up"), ("replica", "a")], &a)],
                vec![selected(&[("__name__", "up"), ("replica", "b")], &b)],
            ],
            &replica,
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(
            merged[0].labels,
            Labels::new(vec![("__name__".into(), "up".into())])
        );
        assert_eq!(merged[0].replica_count(), 2);
        let out: Vec<i64> = merged[0]
            .samples(0, 400_000, DedupMode::Gauge)
            .map(|(t, _)| t)
            .collect();
        // `a` until its gap (more than a penalty, two scrapes, long), then `b` from its first
        // sample at least one scrape interval after `a`'s last; from then on `b`, which has
        // no gap. One sample per scrape, never two, none lost.
        let mut expected: Vec<i64> = (0..=90_000).step_by(15_000).collect();
        expected.extend((106_000..=301_000).step_by(15_000));
        assert_eq!(out, expected);
    }

    #[test]
    fn equal_series_from_two_backends_merge_into_one_replica() {
        let recent = every(10_000, 50_000, 100_000, 0.0);
        let old = every(10_000, 0, 70_000, 0.0);
        let merged = merge(
            vec![
                vec![selected(&[("__name__", "x")], &recent)],
                vec![selected(&[("__name__", "x")], &old)],
            ],
            &[],
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].replica_count(), 1);
        let out: Vec<(i64, f64)> = merged[0].samples(0, 100_000, DedupMode::Gauge).collect();
        assert_eq!(out, every(10_000, 0, 100_000, 0.0));
    }

    #[test]
    fn series_come_out_sorted_by_labels_and_trimmed_to_the_range() {
        let merged = merge(
            vec![
                vec![selected(&[("__name__", "b")], &[(1, 1.0), (5, 2.0)])],
                vec![selected(&[("__name__", "a")], &[(2, 3.0)])],
            ],
            &[],
        );
        let names: Vec<&str> = merged
            .iter()
            .map(|s| s.labels.get("__name__").unwrap_or(""))
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        let b: Vec<(i64, f64)> = merged[1].samples(2, 10, DedupMode::Gauge).collect();
        assert_eq!(b, vec![(5, 2.0)]);
    }
}
