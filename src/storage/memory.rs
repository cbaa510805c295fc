//! A store holding series in memory: for tests, the PromQL test scripts and benchmarks, where
//! the data is made up rather than read from a backend.

use std::sync::Arc;

use super::remote::{RemoteSeries, SeriesData};
use super::store::{SelectRequest, SeriesSet, Store, StoreError, StoreSeries};
use crate::model::Labels;

/// Series with their samples, selected by matchers like any other store.
#[derive(Default, Clone)]
pub struct MemoryStore {
    series: Vec<(Labels, Arc<RemoteSeries>)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples to the series with `labels`, creating it if new; a sample at a time the
    /// series already has replaces the earlier one.
    pub fn append(&mut self, labels: Labels, samples: &[(i64, f64)]) {
        if let Some((_, existing)) = self.series.iter_mut().find(|(l, _)| *l == labels) {
            let series = Arc::make_mut(existing);
            if let SeriesData::Samples(s) = &mut series.data {
                s.extend_from_slice(samples);
                // Stable: of equal times the later one comes last, and is the one kept.
                s.sort_by_key(|(t, _)| *t);
                let mut kept: Vec<(i64, f64)> = Vec::with_capacity(s.len());
                for &sample in s.iter() {
                    match kept.last_mut() {
                        Some(last) if last.0 == sample.0 => *last = sample,
                        _ => kept.push(sample),
                    }
                }
                *s = kept;
            }
            return;
        }
        let pairs = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let series = RemoteSeries {
            labels: pairs,
            data: SeriesData::Samples(samples.to_vec()),
        };
        self.series.push((labels, Arc::new(series)));
        self.series.sort_by(|a, b| a.0.cmp(&b.0));
    }

    pub fn clear(&mut self) {
        self.series.clear();
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

impl Store for MemoryStore {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesSet, StoreError> {
        let series = self
            .series
            .iter()
            .filter(|(labels, _)| {
                request
                    .matchers
                    .iter()
                    .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
            })
            .map(|(labels, s)| StoreSeries::new(labels.clone(), vec![vec![s.clone()]]))
            .collect();
        Ok(SeriesSet {
            series,
            failures: Vec::new(),
            answered: 1,
        })
    }
}
