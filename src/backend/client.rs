//! The HTTP API client for one Prometheus-compatible backend, as a tower Service: a request
//! is an API path with form parameters, the answer is the raw body. Callers decide what to
//! parse, so an answer that can be relayed as it came is never decoded.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::error::BackendError;

/// One call of a backend's HTTP API.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    /// Path below the backend's base URL, e.g. `/api/v1/query`.
    pub path: String,
    /// Query-string (GET) or form (POST) parameters.
    pub params: Vec<(String, String)>,
    /// The caller's deadline; the request is abandoned at this instant.
    pub deadline: Option<Instant>,
}

impl ApiRequest {
    pub fn get(path: impl Into<String>, params: Vec<(String, String)>) -> Self {
        ApiRequest {
            method: Method::GET,
            path: path.into(),
            params,
            deadline: None,
        }
    }

    pub fn post(path: impl Into<String>, params: Vec<(String, String)>) -> Self {
        ApiRequest {
            method: Method::POST,
            ..Self::get(path, params)
        }
    }

    /// GET when the parameters fit comfortably in a URL (cheaper for the backend to parse),
    /// POST otherwise, as both Prometheus endpoints accept.
    pub fn form(path: impl Into<String>, params: Vec<(String, String)>) -> Self {
        const MAX_GET_QUERY: usize = 2048;
        let size: usize = params.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        if size <= MAX_GET_QUERY {
            Self::get(path, params)
        } else {
            Self::post(path, params)
        }
    }

    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

/// A backend's answer, undecoded.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

/// A connection pool for `http://` and `https://` backends. One is shared by every backend
/// without TLS settings of its own, so a backend that survives a reload keeps its
/// connections; a backend with `[backend.tls]` has its own.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shared pool: `https://` backends are checked against the public roots.
pub fn http_client() -> HttpClient {
    http_client_with_tls(crate::tls::default_client_config())
}

pub fn http_client_with_tls(tls: rustls::ClientConfig) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(connector)
}

/// An `Authorization` header value, marked sensitive so that it is never logged.
pub fn authorization_header(secret: &crate::config::Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose()).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Sends [`ApiRequest`]s to one backend's base URL.
#[derive(Clone)]
pub struct PrometheusHttp {
    client: HttpClient,
    base: String,
    max_body_bytes: usize,
    authorization: Option<HeaderValue>,
}

impl PrometheusHttp {
    pub fn new(client: HttpClient, base_url: &str, max_body_bytes: usize) -> Self {
        PrometheusHttp {
            client,
            base: base_url.trim_end_matches('/').to_string(),
            max_body_bytes,
            authorization: None,
        }
    }

    /// Sends this `Authorization` header with every request.
    pub fn with_authorization(mut self, value: Option<HeaderValue>) -> Self {
        self.authorization = value;
        self
    }
}

fn encode_form(params: &[(String, String)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        form.append_pair(k, v);
    }
    form.finish()
}

/// A successful answer of the Prometheus API is a JSON object. Anything else (the HTML page
/// of a load balancer or login portal in front of the backend) is no answer from it: an
/// error here, so that the breaker counts it and the query goes on without this backend,
/// rather than failing the whole query where the body is decoded, or being relayed to the
/// client as it came.
fn check_answer(response: &ApiResponse) -> Result<(), BackendError> {
    if !response.status.is_success() {
        return Ok(());
    }
    match response.body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => {
            let text = String::from_utf8_lossy(&response.body);
            let snippet: String = text.trim().chars().take(80).collect();
            Err(BackendError::Decode(format!(
                "HTTP {} answer is not JSON: {snippet:?}",
                response.status.as_u16()
            )))
        }
    }
}

impl tower::Service<ApiRequest> for PrometheusHttp {
    type Response = ApiResponse;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiResponse, BackendError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ApiRequest) -> Self::Future {
        let client = self.client.clone();
        let limit = self.max_body_bytes;
        let form = encode_form(&req.params);
        let mut uri = format!("{}{}", self.base, req.path);
        let body = if req.method == Method::POST {
            Bytes::from(form)
        } else {
            if !form.is_empty() {
                uri.push('?');
                uri.push_str(&form);
            }
            Bytes::new()
        };
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .header(
                header::USER_AGENT,
                concat!("promgate/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "application/json");
        if req.method == Method::POST {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(value) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, value.clone());
        }
        let request = builder.body(Full::new(body));
        let deadline = req.deadline;
        Box::pin(async move {
            let request = request.map_err(|e| BackendError::Transport(e.to_string()))?;
            let exchange = async {
                let response = client
                    .request(request)
                    .await
                    .map_err(BackendError::from_client)?;
                let status = response.status();
                let body = Limited::new(response.into_body(), limit)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<http_body_util::LengthLimitError>() {
                            BackendError::TooLarge { limit }
                        } else {
                            BackendError::Transport(format!(
                                "reading response body: {}",
                                super::error::error_chain(e.as_ref())
                            ))
                        }
                    })?
                    .to_bytes();
                let response = ApiResponse { status, body };
                check_answer(&response)?;
                Ok(response)
            };
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, exchange)
                    .await
                    .map_err(|_| BackendError::DeadlineExceeded)?,
                None => exchange.await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, body: &'static str) -> ApiResponse {
        ApiResponse {
            status,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn a_successful_answer_that_is_not_json_is_an_error() {
        let page = answer(StatusCode::OK, "<html><body>Sign in</body></html>");
        let e = check_answer(&page).unwrap_err();
        assert!(matches!(e, BackendError::Decode(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "undecodable answer: HTTP 200 answer is not JSON: \"<html><body>Sign in</body></html>\""
        );
        assert!(check_answer(&answer(StatusCode::OK, "")).is_err());
        assert!(check_answer(&answer(StatusCode::OK, " \n{\"status\":\"success\"}")).is_ok());
        // Error answers are judged by their status, whatever their body.
        assert!(check_answer(&answer(StatusCode::BAD_GATEWAY, "<html>")).is_ok());
    }
}
