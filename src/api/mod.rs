//! The Prometheus HTTP API as promgate serves it: routing, request bodies, and the one place
//! where results and errors become HTTP responses.

pub mod body;
pub mod engine_json;
mod evaluate;
pub mod json;
mod limits;
mod metadata;
pub mod params;
mod pushdown;
mod query;
mod raw;
mod remote_read;
mod status;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use crate::app::App;
use crate::error::ApiError;
pub use body::Body;
use params::Params;

/// What a handler answers.
pub enum Reply {
    /// A JSON answer promgate wrote.
    Json(Vec<u8>),
    /// A JSON answer promgate wrote in pieces.
    JsonPieces(json::Pieces),
    /// A backend's JSON answer, relayed unchanged.
    Raw(Bytes),
    /// Plain text with its content type.
    Text(&'static str, String),
    /// A status with a plain-text body.
    Status(StatusCode, String),
    /// A binary answer (remote read) with its content type and encoding.
    Binary {
        content_type: &'static str,
        content_encoding: Option<&'static str>,
        body: Bytes,
    },
}

/// The route a request took, for metrics: a fixed set of names, never the raw path.
pub fn route_name(path: &str) -> &'static str {
    match path {
        "/api/v1/query" => "query",
        "/api/v1/query_range" => "query_range",
        "/api/v1/series" => "series",
        "/api/v1/read" => "read",
        "/api/v1/labels" => "labels",
        "/api/v1/metadata" => "metadata",
        "/api/v1/query_exemplars" => "query_exemplars",
        "/api/v1/format_query" => "format_query",
        "/api/v1/parse_query" => "parse_query",
        "/api/v1/status/buildinfo" => "buildinfo",
        "/api/v1/status/backends" => "backends",
        "/api/v1/status/config" => "config",
        "/-/healthy" => "healthy",
        "/-/ready" => "ready",
        "/-/reload" => "reload",
        "/metrics" => "metrics",
        p if label_values_name(p).is_some() => "label_values",
        _ => "other",
    }
}

/// Answers one request.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body_limit = app.topology.load().config.server.max_request_body_bytes;
    if path == "/api/v1/read" && method == Method::POST {
        return match Limited::new(req.into_body(), body_limit).collect().await {
            Ok(body) => respond(Ok(remote_read::read(&app, &body.to_bytes()).await)),
            Err(e) => respond(Ok(Reply::Status(
                StatusCode::BAD_REQUEST,
                format!("reading request body: {e}\n"),
            ))),
        };
    }
    let body = if method == Method::POST && is_form {
        match Limited::new(req.into_body(), body_limit).collect().await {
            Ok(b) => Some(b.to_bytes()),
            Err(e) => {
                return respond(Err(ApiError::bad_data(format!(
                    "error parsing form values: {e}"
                ))));
            }
        }
    } else {
        None
    };
    let params = Params::from_parts(query.as_deref(), body.as_deref());
    respond(route(&app, &method, &path, &params).await)
}

async fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    params: &Params,
) -> Result<Reply, ApiError> {
    let get_post = matches!(*method, Method::GET | Method::POST);
    let get = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/api/v1/query" if get_post => query::instant(app, params).await,
        "/api/v1/query_range" if get_post => query::range(app, params).await,
        "/api/v1/series" if get_post => metadata::series(app, params).await,
        "/api/v1/labels" if get_post => metadata::label_names(app, params).await,
        "/api/v1/metadata" if get => metadata::metadata(app, params).await,
        "/api/v1/query_exemplars" if get_post => metadata::exemplars(app, params).await,
        "/api/v1/format_query" if get_post => status::format_query(params),
        "/api/v1/parse_query" if get_post => status::parse_query(params),
        "/api/v1/status/buildinfo" if get => Ok(status::buildinfo()),
        "/api/v1/status/backends" if get => Ok(status::backends(app)),
        "/api/v1/status/config" if get => Ok(status::config(app)),
        "/-/healthy" if get => Ok(Reply::Status(
            StatusCode::OK,
            "Prometheus Server is Healthy.\n".into(),
        )),
        "/-/ready" if get => Ok(if app.is_ready() {
            Reply::Status(StatusCode::OK, "Prometheus Server is Ready.\n".into())
        } else {
            Reply::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable\n".into(),
            )
        }),
        "/-/reload" if matches!(*method, Method::POST | Method::PUT) => {
            Ok(match app.reload().await {
                Ok(()) => Reply::Status(StatusCode::OK, String::new()),
                Err(e) => Reply::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to reload config: {e}\n"),
                ),
            })
        }
        "/metrics" if get => Ok(Reply::Text(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            app.render_metrics(),
        )),
        p if get && label_values_name(p).is_some() => {
            let name = percent_decode(label_values_name(p).unwrap_or_default());
            metadata::label_values(app, params, &name).await
        }
        "/api/v1/query"
        | "/api/v1/query_range"
        | "/api/v1/series"
        | "/api/v1/read"
        | "/api/v1/labels"
        | "/api/v1/metadata"
        | "/api/v1/query_exemplars"
        | "/api/v1/format_query"
        | "/api/v1/parse_query"
        | "/api/v1/status/buildinfo"
        | "/api/v1/status/backends"
        | "/api/v1/status/config"
        | "/-/healthy"
        | "/-/ready"
        | "/-/reload"
        | "/metrics" => Ok(Reply::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n".into(),
        )),
        _ => Ok(Reply::Status(
            StatusCode::NOT_FOUND,
            "404 page not found\n".into(),
        )),
    }
}

/// The (still percent-encoded) label name of a `/api/v1/label/<name>/values` path.
fn label_values_name(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/label/")?
        .strip_suffix("/values")
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

fn percent_decode(s: &str) -> String {
    let bytes: Vec<u8> = form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

fn respond(result: Result<Reply, ApiError>) -> Response<Body> {
    let (status, content_type, body) = match result {
        Ok(Reply::Json(body)) => (StatusCode::OK, JSON, Body::from(body)),
        Ok(Reply::JsonPieces(pieces)) => (StatusCode::OK, JSON, pieces.into_body()),
        Ok(Reply::Raw(body)) => (StatusCode::OK, JSON, Body::from(body)),
        Ok(Reply::Text(ct, text)) => (StatusCode::OK, HeaderValue::from_static(ct), text.into()),
        Ok(Reply::Status(status, text)) => (
            status,
            HeaderValue::from_static("text/plain; charset=utf-8"),
            text.into(),
        ),
        Ok(Reply::Binary {
            content_type,
            content_encoding,
            body,
        }) => {
            let mut resp = Response::new(Body::from(body));
            let headers = resp.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Some(encoding) = content_encoding {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
            }
            return resp;
        }
        Err(e) => (e.status(), JSON, Body::from(json::error(&e))),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}

/// Errors raised by the server's own layers (overload, timeout) as Prometheus answers.
pub fn error_response(e: &ApiError) -> Response<Body> {
    respond(Err(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_paths_yield_their_name() {
        assert_eq!(label_values_name("/api/v1/label/job/values"), Some("job"));
        assert_eq!(label_values_name("/api/v1/label/values"), None);
        assert_eq!(label_values_name("/api/v1/label//values"), None);
        assert_eq!(label_values_name("/api/v1/label/a/b/values"), None);
        assert_eq!(percent_decode("a%2Fb+c"), "a/b+c");
        assert_eq!(route_name("/api/v1/label/values"), "other");
    }

    async fn answer(uri: &str) -> (StatusCode, serde_json::Value) {
        let app = App::new(crate::config::Config::default(), None);
        let request = Request::get(uri)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let response = handle(app, request).await;
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// The parser panics on a range too long for a `Duration` (found by fuzzing the API);
    /// the client gets a parse error.
    #[tokio::test]
    async fn a_range_too_long_for_the_parser_is_bad_data() {
        for uri in [
            "/api/v1/query?query=2.2[2018877390742563353035]",
            "/api/v1/parse_query?query=rate(up[14444444444444444444440])",
        ] {
            let (status, body) = answer(uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert_eq!(body["errorType"], "bad_data", "{uri}: {body}");
        }
    }
}
