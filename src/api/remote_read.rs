//! `POST /api/v1/read`: promgate as a remote read endpoint, answering from the merged and
//! deduplicated view of every backend, so that a Prometheus (or another promgate) can
//! `remote_read` from it. Both response types are served; the client's first accepted one
//! wins. Errors are plain text with a 4xx/5xx status, as Prometheus's own endpoint answers.
//!
//! Remote read has no way to carry warnings: with partial responses on, a failed backend
//! leaves the answer partial and is logged; with them off it fails the read.

use bytes::Bytes;
use http::StatusCode;
use promql_parser::label::{MatchOp, Matcher};
use tokio::time::Instant;

use super::Reply;
use crate::app::App;
use crate::backend::fanout::MemberFailure;
use crate::storage::remote::{
    ChunkedResponseWriter, DEFAULT_MAX_BYTES_IN_FRAME, LabelMatcher, MatcherType, Query,
    ResponseType, SAMPLES_CONTENT_ENCODING, SAMPLES_CONTENT_TYPE, STREAMED_CONTENT_TYPE,
    SamplesResponseBuilder, decode_read_request, negotiate,
};
use crate::storage::{MergedStore, SelectHints, SelectRequest, Store, StoreError};

/// Largest decompressed request.
const MAX_REQUEST_BYTES: usize = 32 << 20;
/// Largest answer promgate builds for one read, either response type.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// A failed read: status and plain-text message.
struct ReadError(StatusCode, String);

impl ReadError {
    fn bad_request(message: impl Into<String>) -> Self {
        ReadError(StatusCode::BAD_REQUEST, message.into())
    }

    fn internal(message: impl Into<String>) -> Self {
        ReadError(StatusCode::INTERNAL_SERVER_ERROR, message.into())
    }
}

pub async fn read(app: &App, body: &[u8]) -> Reply {
    match answer(app, body).await {
        Ok(reply) => reply,
        Err(ReadError(status, message)) => Reply::Status(status, format!("{message}\n")),
    }
}

async fn answer(app: &App, body: &[u8]) -> Result<Reply, ReadError> {
    let request = decode_read_request(body, MAX_REQUEST_BYTES)
        .map_err(|e| ReadError::bad_request(e.to_string()))?;
    let response_type = negotiate(&request.accepted_response_types)
        .map_err(|e| ReadError::bad_request(e.to_string()))?;
    let topology = app.topology.load();
    let partial = topology.config.query.partial_response;
    let deadline = Instant::now() + topology.config.query.timeout.0;
    let store = MergedStore::new(topology, partial);
    let queries = request.queries.len();
    let mut samples = SamplesResponseBuilder::new(queries, MAX_RESPONSE_BYTES);
    let mut chunks = ChunkedResponseWriter::new(queries, DEFAULT_MAX_BYTES_IN_FRAME);
    let mut streamed = Vec::new();
    for (index, query) in request.queries.iter().enumerate() {
        let select = select_request(query, deadline).map_err(ReadError::bad_request)?;
        let set = store.select(&select).await.map_err(|e| match e {
            StoreError::BackendFailed(m) | StoreError::BackendTimedOut(m) => {
                ReadError(StatusCode::SERVICE_UNAVAILABLE, m)
            }
        })?;
        if set.answered == 0 && !set.failures.is_empty() {
            let reasons: Vec<String> = set.failures.iter().map(MemberFailure::warning).collect();
            return Err(ReadError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no backend answered: {}", reasons.join("; ")),
            ));
        }
        for f in &set.failures {
            tracing::warn!(backend = %f.backend, error = %f.error, "remote read answered without this backend");
        }
        let mode = select.dedup_mode();
        for series in &set.series {
            let labels: Vec<(&str, &str)> = series.labels.iter().collect();
            let mut points = series.samples(select.start_ms, select.end_ms, mode);
            let written = match response_type {
                ResponseType::Samples => samples.add_series(index, &labels, &mut points),
                ResponseType::StreamedXorChunks => chunks.write_series(index, &labels, &mut points),
            };
            written.map_err(|e| ReadError::internal(e.to_string()))?;
            if let Some(e) = points.error() {
                return Err(ReadError::internal(format!(
                    "corrupt chunk from a backend: {e}"
                )));
            }
            while let Some(frames) = chunks.take_ready() {
                streamed.extend_from_slice(&frames);
                if streamed.len() > MAX_RESPONSE_BYTES {
                    return Err(ReadError::internal(format!(
                        "response exceeds the limit of {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
            }
        }
    }
    Ok(match response_type {
        ResponseType::Samples => Reply::Binary {
            content_type: SAMPLES_CONTENT_TYPE,
            content_encoding: Some(SAMPLES_CONTENT_ENCODING),
            body: samples
                .finish()
                .map_err(|e| ReadError::internal(e.to_string()))?,
        },
        ResponseType::StreamedXorChunks => {
            streamed.extend_from_slice(&chunks.finish());
            Reply::Binary {
                content_type: STREAMED_CONTENT_TYPE,
                content_encoding: None,
                body: Bytes::from(streamed),
            }
        }
    })
}

/// The store request for one remote read query.
fn select_request(query: &Query, deadline: Instant) -> Result<SelectRequest, String> {
    let matchers = query
        .matchers
        .iter()
        .map(matcher)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SelectRequest {
        matchers,
        start_ms: query.start_timestamp_ms,
        end_ms: query.end_timestamp_ms,
        hints: query.hints.as_ref().map(|h| SelectHints {
            step_ms: h.step_ms,
            // A remote read client wants samples whatever it will do with them.
            func: if h.func == "series" {
                String::new()
            } else {
                h.func.clone()
            },
            range_ms: h.range_ms,
            grouping: h.grouping.clone(),
            by: h.by,
        }),
        deadline: Some(deadline),
    })
}

fn matcher(m: &LabelMatcher) -> Result<Matcher, String> {
    let regex = || {
        regex::Regex::new(&format!("^(?:{})$", m.value))
            .map_err(|e| format!("invalid regular expression {:?}: {e}", m.value))
    };
    let op = match MatcherType::try_from(m.r#type) {
        Ok(MatcherType::Eq) => MatchOp::Equal,
        Ok(MatcherType::Neq) => MatchOp::NotEqual,
        Ok(MatcherType::Re) => MatchOp::Re(regex()?),
        Ok(MatcherType::Nre) => MatchOp::NotRe(regex()?),
        Err(_) => return Err(format!("invalid matcher type {}", m.r#type)),
    };
    Ok(Matcher::new(op, &m.name, &m.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_anchored_and_typed() {
        let re = matcher(&LabelMatcher::new(MatcherType::Re, "job", "a|b")).unwrap();
        assert!(re.is_match("a") && !re.is_match("xa"));
        let nre = matcher(&LabelMatcher::new(MatcherType::Nre, "job", "a.*")).unwrap();
        assert!(nre.is_match("b") && !nre.is_match("ab"));
        assert!(matcher(&LabelMatcher::new(MatcherType::Re, "job", "(")).is_err());
        let mut bad = LabelMatcher::new(MatcherType::Eq, "job", "a");
        bad.r#type = 9;
        assert!(matcher(&bad).is_err());
    }
}
