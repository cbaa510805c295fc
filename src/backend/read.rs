//! Raw series from one backend through Prometheus remote read, as a tower Service under the
//! same breaker, concurrency limit and retry as its HTTP API; and the selection on top of it
//! that knows each kind's quirks.
//!
//! Matchers on the backend's external labels are promgate's to evaluate: a Prometheus
//! answers a regex matcher on one of its external labels with no series at all, and an
//! InfluxDB has no external labels. They decide whether the backend is asked and are not
//! sent. InfluxDB 1.x also reads one query per request, needs a metric name matcher, and
//! matches regexes unanchored; it is sent only the matchers it evaluates the way PromQL does
//! (equality with a value, anchored regexes that cannot match the empty string). Every
//! matcher is checked again on the answer, so what comes back is exact whatever the store did.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use promql_parser::label::{MatchOp, Matcher};
use tokio::time::Instant;

use super::retry::{Judged, Repeatable};
use super::{Backend, BackendError, ExternalLabels};
use crate::config::BackendKind;
use crate::model::Labels;
use crate::storage::SelectRequest;
use crate::storage::remote::{
    LabelMatcher, MatcherType, Query, ReadHints, ReadRequest, RemoteReadClient, RemoteReadError,
    RemoteSeries,
};

/// One remote read query, with the caller's deadline.
#[derive(Debug, Clone)]
pub struct ReadCall {
    pub query: Query,
    pub deadline: Option<Instant>,
}

impl Repeatable for ReadCall {
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The series one query returned.
#[derive(Debug, Clone, Default)]
pub struct ReadAnswer(pub Vec<RemoteSeries>);

impl Judged for ReadAnswer {
    fn transient(result: &Result<Self, BackendError>) -> bool {
        matches!(
            result,
            Err(BackendError::Connect(_) | BackendError::Transport(_))
        )
    }
}

/// Sends [`ReadCall`]s to one remote read endpoint, one query per request (InfluxDB refuses
/// more, and one per request lets queries run in parallel).
#[derive(Clone)]
pub struct RemoteReadService {
    client: RemoteReadClient,
}

impl RemoteReadService {
    pub fn new(client: RemoteReadClient) -> Self {
        RemoteReadService { client }
    }
}

impl tower::Service<ReadCall> for RemoteReadService {
    type Response = ReadAnswer;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<ReadAnswer, BackendError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: ReadCall) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = ReadRequest {
                queries: vec![call.query],
                accepted_response_types: Vec::new(),
            };
            let exchange = client.read(&request);
            let result = match call.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, exchange)
                    .await
                    .map_err(|_| BackendError::DeadlineExceeded)?,
                None => exchange.await,
            };
            let mut per_query = result.map_err(read_error)?;
            Ok(ReadAnswer(per_query.pop().unwrap_or_default()))
        })
    }
}

fn read_error(e: RemoteReadError) -> BackendError {
    match e {
        RemoteReadError::Http { status, body } => BackendError::Api {
            status,
            error_type: None,
            message: body,
        },
        RemoteReadError::Connect(e) => BackendError::Connect(e),
        RemoteReadError::Transport(e) => BackendError::Transport(e),
        RemoteReadError::Timeout => BackendError::DeadlineExceeded,
        RemoteReadError::ResponseTooLarge { limit } => BackendError::TooLarge { limit },
        other => BackendError::Decode(other.to_string()),
    }
}

/// A series a backend returned, with its labels as promgate answers them: the backend's
/// external labels set (configured ones win over what the series carried).
pub struct SelectedSeries {
    pub labels: Labels,
    pub series: RemoteSeries,
}

impl Backend {
    /// The series matching `request` in its time range, read with remote read.
    pub async fn select(
        &self,
        request: &SelectRequest,
    ) -> Result<Vec<SelectedSeries>, BackendError> {
        if let Some(service) = self.blocks_service() {
            let call = super::blocks::BlocksCall {
                labels_only: request.is_metadata(),
                matchers: request.matchers.clone(),
                start_ms: request.start_ms,
                end_ms: request.end_ms,
                deadline: request.deadline,
            };
            let ReadAnswer(series) = self.read_blocks(service, call).await?;
            return Ok(keep_matching(series, &[], &request.matchers));
        }
        let external = self.ensure_labels(request.deadline).await?;
        let Some(sent) = matchers_to_send(self.config.kind, &request.matchers, &external) else {
            return Ok(Vec::new());
        };
        let query = Query {
            start_timestamp_ms: request.start_ms,
            end_timestamp_ms: request.end_ms,
            matchers: sent,
            hints: request.hints.as_ref().map(|h| ReadHints {
                step_ms: h.step_ms,
                func: h.func.clone(),
                start_ms: request.start_ms,
                end_ms: request.end_ms,
                grouping: h.grouping.clone(),
                by: h.by,
                range_ms: h.range_ms,
            }),
        };
        let ReadAnswer(series) = self
            .read(ReadCall {
                query,
                deadline: request.deadline,
            })
            .await?;
        let pairs: Vec<(String, String)> = external
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(keep_matching(series, &pairs, &request.matchers))
    }
}

/// The series of an answer with `external` labels set on them (replacing what the series
/// carried) that match every one of `matchers`.
fn keep_matching(
    series: Vec<RemoteSeries>,
    external: &[(String, String)],
    matchers: &[Matcher],
) -> Vec<SelectedSeries> {
    series
        .into_iter()
        .filter_map(|series| {
            let mut labels = Labels::new(series.labels.clone());
            for (name, value) in external {
                labels.remove(name);
                labels.set_if_absent(name, value);
            }
            let keep = matchers
                .iter()
                .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")));
            keep.then_some(SelectedSeries { labels, series })
        })
        .collect()
}

/// The matchers `kind` is sent for `matchers`: `None` when the external labels already rule
/// the backend out.
fn matchers_to_send(
    kind: BackendKind,
    matchers: &[Matcher],
    external: &ExternalLabels,
) -> Option<Vec<LabelMatcher>> {
    let mut sent = Vec::new();
    for m in matchers {
        if let Some(value) = external.get(&m.name) {
            if !m.is_match(value) {
                return None;
            }
            continue;
        }
        match kind {
            BackendKind::Prometheus | BackendKind::Blocks => sent.push(to_proto(m)),
            BackendKind::Influx => {
                if let Some(p) = influx_matcher(m) {
                    sent.push(p);
                }
            }
        }
    }
    if sent.is_empty() {
        // Every matcher was on external labels or is evaluated here: ask for every series.
        sent.push(LabelMatcher::new(MatcherType::Re, "__name__", ".+"));
    }
    Some(sent)
}

fn to_proto(m: &Matcher) -> LabelMatcher {
    let kind = match m.op {
        MatchOp::Equal => MatcherType::Eq,
        MatchOp::NotEqual => MatcherType::Neq,
        MatchOp::Re(_) => MatcherType::Re,
        MatchOp::NotRe(_) => MatcherType::Nre,
    };
    LabelMatcher::new(kind, m.name.as_str(), m.value.as_str())
}

/// The form of `m` InfluxDB evaluates as PromQL does, if there is one: equality with a
/// non-empty value, or a regex (anchored here) that cannot match a missing label. The rest
/// are evaluated on the answer only.
fn influx_matcher(m: &Matcher) -> Option<LabelMatcher> {
    match &m.op {
        MatchOp::Equal if !m.value.is_empty() => Some(to_proto(m)),
        MatchOp::Re(re) if !re.is_match("") => Some(LabelMatcher::new(
            MatcherType::Re,
            m.name.as_str(),
            format!("^(?:{})$", m.value),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matchers(selector: &str) -> Vec<Matcher> {
        match promql_parser::parser::parse(selector) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => {
                let mut out = vs.matchers.matchers;
                if let Some(name) = vs.name {
                    out.push(Matcher::new(MatchOp::Equal, "__name__", &name));
                }
                out
            }
            other => panic!("not a selector: {other:?}"),
        }
    }

    fn external(pairs: &[(&str, &str)]) -> ExternalLabels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn names(sent: &[LabelMatcher]) -> Vec<(i32, &str, &str)> {
        sent.iter()
            .map(|m| (m.r#type, m.name.as_str(), m.value.as_str()))
            .collect()
    }

    #[test]
    fn matchers_on_external_labels_prune_or_are_dropped() {
        let ext = external(&[("cluster", "eu1"), ("replica", "a")]);
        let other = matchers(r#"up{cluster="us1"}"#);
        assert!(matchers_to_send(BackendKind::Prometheus, &other, &ext).is_none());
        let ours = matchers(r#"up{cluster=~"eu.*",job="x"}"#);
        let sent = matchers_to_send(BackendKind::Prometheus, &ours, &ext).unwrap();
        assert_eq!(
            names(&sent),
            vec![
                (MatcherType::Eq as i32, "job", "x"),
                (MatcherType::Eq as i32, "__name__", "up")
            ]
        );
    }

    #[test]
    fn only_external_label_matchers_ask_for_every_series() {
        let ext = external(&[("cluster", "eu1")]);
        let sent = matchers_to_send(
            BackendKind::Prometheus,
            &matchers(r#"{cluster="eu1"}"#),
            &ext,
        )
        .unwrap();
        assert_eq!(
            names(&sent),
            vec![(MatcherType::Re as i32, "__name__", ".+")]
        );
    }

    #[test]
    fn influx_gets_anchored_regexes_and_no_matchers_that_match_missing_labels() {
        let ext = external(&[]);
        let m = matchers(r#"{__name__=~"up|x", job!="a", env="", zone=~"b|", dc=~"e.+"}"#);
        let sent = matchers_to_send(BackendKind::Influx, &m, &ext).unwrap();
        assert_eq!(
            names(&sent),
            vec![
                (MatcherType::Re as i32, "__name__", "^(?:up|x)$"),
                (MatcherType::Re as i32, "dc", "^(?:e.+)$"),
            ]
        );
    }

    #[test]
    fn influx_is_asked_for_every_series_when_no_matcher_can_be_sent() {
        let ext = external(&[]);
        let sent = matchers_to_send(BackendKind::Influx, &matchers(r#"{job!=""}"#), &ext).unwrap();
        assert_eq!(
            names(&sent),
            vec![(MatcherType::Re as i32, "__name__", ".+")]
        );
    }
}
