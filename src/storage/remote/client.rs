//! The remote read client: sends one snappy-compressed `ReadRequest` to `{base}/api/v1/read`
//! and decodes whichever answer the server picked (the first of the accepted response types
//! it supports): a stream of CRC-checked chunk frames, decoded as the body arrives, or one
//! snappy-compressed `ReadResponse` of raw samples (InfluxDB and other SAMPLES-only stores).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prost::Message;

use super::error::RemoteReadError;
use super::frame::{FrameDecoder, FrameLimits};
use super::proto::{ReadRequest, ReadResponse, ResponseType};
use super::series::RemoteSeries;
use crate::backend::client::HttpClient;
use crate::backend::error::error_chain;

/// Content type of a STREAMED_XOR_CHUNKS answer (before any parameters).
const STREAMED_CONTENT_TYPE: &str = "application/x-streamed-protobuf";

/// Settings of one remote read endpoint.
#[derive(Debug, Clone)]
pub struct RemoteReadConfig {
    /// Best first; the server takes the first it supports.
    pub accepted_response_types: Vec<ResponseType>,
    /// Largest body (for SAMPLES also its decompressed size).
    pub max_response_bytes: usize,
    /// Largest single frame of a streamed answer.
    pub max_frame_bytes: usize,
    /// For the whole exchange of [`RemoteReadClient::read`]; for the response head only
    /// of [`RemoteReadClient::stream`].
    pub timeout: Option<Duration>,
    /// Sent as the `Authorization` header.
    pub authorization: Option<http::HeaderValue>,
}

impl Default for RemoteReadConfig {
    fn default() -> Self {
        RemoteReadConfig {
            accepted_response_types: vec![ResponseType::StreamedXorChunks, ResponseType::Samples],
            max_response_bytes: 512 << 20,
            max_frame_bytes: 64 << 20,
            timeout: None,
            authorization: None,
        }
    }
}

impl RemoteReadConfig {
    /// Only raw samples, for stores that answer nothing else.
    pub fn samples_only() -> Self {
        RemoteReadConfig {
            accepted_response_types: vec![ResponseType::Samples],
            ..Self::default()
        }
    }
}

/// Reads series from one remote read endpoint.
#[derive(Clone)]
pub struct RemoteReadClient {
    client: HttpClient,
    url: String,
    config: RemoteReadConfig,
}

impl RemoteReadClient {
    /// `base_url` is the server's root (`http://host:9090`); the read path is appended.
    pub fn new(client: HttpClient, base_url: &str, config: RemoteReadConfig) -> Self {
        Self::with_url(
            client,
            format!("{}/api/v1/read", base_url.trim_end_matches('/')),
            config,
        )
    }

    /// An endpoint at a URL of its own (InfluxDB: `http://host:8086/api/v1/prom/read?db=x`).
    pub fn with_url(client: HttpClient, url: String, config: RemoteReadConfig) -> Self {
        RemoteReadClient {
            client,
            url,
            config,
        }
    }

    pub fn config(&self) -> &RemoteReadConfig {
        &self.config
    }

    /// Runs the request and returns the series of each query, in the request's order.
    pub async fn read(
        &self,
        request: &ReadRequest,
    ) -> Result<Vec<Vec<RemoteSeries>>, RemoteReadError> {
        let exchange = async {
            let mut stream = self.send(request).await?;
            let mut out: Vec<Vec<RemoteSeries>> = vec![Vec::new(); request.queries.len()];
            while let Some((index, series)) = stream.next_series().await? {
                if let Some(slot) = out.get_mut(index) {
                    slot.push(series);
                }
            }
            Ok(out)
        };
        match self.config.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| RemoteReadError::Timeout)?,
            None => exchange.await,
        }
    }

    /// Sends the request and returns the answer as a stream of series, decoded as the body
    /// arrives when the server streams.
    pub async fn stream(&self, request: &ReadRequest) -> Result<SeriesStream, RemoteReadError> {
        match self.config.timeout {
            Some(limit) => tokio::time::timeout(limit, self.send(request))
                .await
                .map_err(|_| RemoteReadError::Timeout)?,
            None => self.send(request).await,
        }
    }

    async fn send(&self, request: &ReadRequest) -> Result<SeriesStream, RemoteReadError> {
        let mut request = request.clone();
        request.accepted_response_types = self
            .config
            .accepted_response_types
            .iter()
            .map(|t| *t as i32)
            .collect();
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
        let mut http_request = Request::post(&self.url);
        if let Some(value) = &self.config.authorization {
            http_request = http_request.header(header::AUTHORIZATION, value.clone());
        }
        let http_request = http_request
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .header(
                header::USER_AGENT,
                concat!("promgate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| RemoteReadError::Transport(e.to_string()))?;
        let response = self.client.request(http_request).await.map_err(|e| {
            if e.is_connect() {
                RemoteReadError::Connect(error_chain(&e))
            } else {
                RemoteReadError::Transport(error_chain(&e))
            }
        })?;
        let status = response.status();
        let streamed = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(STREAMED_CONTENT_TYPE))
            });
        let mut body = response.into_body();
        if !status.is_success() {
            let text = collect_limited(&mut body, 64 << 10)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            return Err(RemoteReadError::Http {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&text).trim().to_string(),
            });
        }
        let limits = FrameLimits {
            max_frame_bytes: self.config.max_frame_bytes,
            max_response_bytes: self.config.max_response_bytes,
        };
        if streamed {
            return Ok(SeriesStream {
                inner: Inner::Streamed {
                    body,
                    frames: FrameDecoder::new(limits),
                    pending: Vec::new().into_iter(),
                    queries: request.queries.len(),
                    ended: false,
                },
            });
        }
        let compressed = collect_limited(&mut body, limits.max_response_bytes)
            .await?
            .ok_or(RemoteReadError::ResponseTooLarge {
                limit: limits.max_response_bytes,
            })?;
        let response = decode_samples_response(&compressed, limits.max_response_bytes)?;
        let series: Vec<(usize, RemoteSeries)> = response
            .results
            .into_iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.timeseries
                    .into_iter()
                    .map(move |ts| (i, RemoteSeries::from_time_series(ts)))
            })
            .collect();
        Ok(SeriesStream {
            inner: Inner::Samples(series.into_iter()),
        })
    }
}

/// Decodes a SAMPLES answer: snappy block format around a `ReadResponse`.
pub fn decode_samples_response(
    compressed: &[u8],
    max_bytes: usize,
) -> Result<ReadResponse, RemoteReadError> {
    if snap::raw::decompress_len(compressed)? > max_bytes {
        return Err(RemoteReadError::ResponseTooLarge { limit: max_bytes });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(compressed)?;
    Ok(ReadResponse::decode(raw.as_slice())?)
}

/// The whole body, or None when it passes `limit` bytes.
async fn collect_limited(
    body: &mut Incoming,
    limit: usize,
) -> Result<Option<Vec<u8>>, RemoteReadError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RemoteReadError::Transport(error_chain(&e)))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Ok(None);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Some(out))
}

/// The series of one answer, with the index of the query each belongs to.
pub struct SeriesStream {
    inner: Inner,
}

enum Inner {
    Samples(std::vec::IntoIter<(usize, RemoteSeries)>),
    Streamed {
        body: Incoming,
        frames: FrameDecoder,
        pending: std::vec::IntoIter<(usize, RemoteSeries)>,
        queries: usize,
        ended: bool,
    },
}

impl SeriesStream {
    /// Whether the server chose the streamed (chunked) response type.
    pub fn is_streamed(&self) -> bool {
        matches!(self.inner, Inner::Streamed { .. })
    }

    /// The next series and its query index; `Ok(None)` at the end of the answer.
    pub async fn next_series(&mut self) -> Result<Option<(usize, RemoteSeries)>, RemoteReadError> {
        match &mut self.inner {
            Inner::Samples(it) => Ok(it.next()),
            Inner::Streamed {
                body,
                frames,
                pending,
                queries,
                ended,
            } => loop {
                if let Some(s) = pending.next() {
                    return Ok(Some(s));
                }
                if let Some(message) = frames.next_message()? {
                    let index = usize::try_from(message.query_index)
                        .ok()
                        .filter(|i| i < queries)
                        .ok_or(RemoteReadError::QueryIndexOutOfRange {
                            index: message.query_index,
                            queries: *queries,
                        })?;
                    let batch = message
                        .chunked_series
                        .into_iter()
                        .map(|s| RemoteSeries::from_chunked(s).map(|s| (index, s)))
                        .collect::<Result<Vec<_>, _>>()?;
                    *pending = batch.into_iter();
                    continue;
                }
                if *ended {
                    frames.finish()?;
                    return Ok(None);
                }
                match body.frame().await {
                    Some(frame) => {
                        let frame =
                            frame.map_err(|e| RemoteReadError::Transport(error_chain(&e)))?;
                        if let Ok(data) = frame.into_data() {
                            frames.push(&data)?;
                        }
                    }
                    None => *ended = true,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::remote::proto::{QueryResult, Sample, TimeSeries};

    #[test]
    fn bad_snappy_is_a_snappy_error() {
        let garbage = [0x05, 0x24, 0x01, 0x02];
        assert!(matches!(
            decode_samples_response(&garbage, 1 << 20),
            Err(RemoteReadError::Snappy(_))
        ));
        let mut good = snap::raw::Encoder::new()
            .compress_vec(&[7u8; 300])
            .expect("compresses");
        good.truncate(good.len() - 2);
        assert!(matches!(
            decode_samples_response(&good, 1 << 20),
            Err(RemoteReadError::Snappy(_))
        ));
    }

    #[test]
    fn samples_response_round_trips_and_respects_the_size_limit() {
        let response = ReadResponse {
            results: vec![QueryResult {
                timeseries: vec![TimeSeries {
                    labels: vec![],
                    samples: vec![Sample {
                        value: 2.5,
                        timestamp: 10,
                    }],
                }],
            }],
        };
        let raw = response.encode_to_vec();
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("compresses");
        assert_eq!(
            decode_samples_response(&compressed, raw.len()).ok(),
            Some(response)
        );
        assert!(matches!(
            decode_samples_response(&compressed, raw.len() - 1),
            Err(RemoteReadError::ResponseTooLarge { .. })
        ));
    }
}
