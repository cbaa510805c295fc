//! Whatever a client sends to the HTTP API — any parameters, any form body, any remote read
//! body — promgate answers in Prometheus's format: a status it documents and a JSON body
//! with `status` set (or a protobuf for remote read), never a panic or an internal error.
//!
//! Input: one byte choosing the endpoint, one byte choosing GET or POST, then the query
//! string; after a NUL byte, the request body.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use promgate::app::App;
use promgate::config::Config;

const PATHS: [&str; 16] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
    "/api/v1/label/job/values",
    "/api/v1/label/__name__/values",
    "/api/v1/metadata",
    "/api/v1/query_exemplars",
    "/api/v1/format_query",
    "/api/v1/parse_query",
    "/api/v1/status/buildinfo",
    "/api/v1/status/backends",
    "/api/v1/read",
    "/api/v1/label/%ZZ/values",
    "/-/ready",
    "/api/v1/nonexistent",
];

fn runtime() -> &'static (tokio::runtime::Runtime, Arc<App>) {
    static RT: OnceLock<(tokio::runtime::Runtime, Arc<App>)> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let app = rt.block_on(async { App::new(Config::default(), None) });
        app.set_ready();
        spare_parser_panics();
        (rt, app)
    })
}

/// promql-parser panics on some inputs (durations too large for a `Duration`), and promgate
/// catches that and answers a parse error; libFuzzer's hook would abort on the caught panic.
/// Panics from anywhere else still reach it.
fn spare_parser_panics() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        if !(trace.contains("promql_parser::") && trace.contains("promgate::promql::parse")) {
            fuzzer_hook(info);
        }
    }));
}

fuzz_target!(|data: &[u8]| {
    let [endpoint, method, rest @ ..] = data else {
        return;
    };
    let path = PATHS[usize::from(*endpoint) % PATHS.len()];
    let (query, body) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &[][..]),
    };
    // A URI carries only some bytes; the HTTP layer refuses the rest before the API sees
    // them.
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let uri = format!("{path}?{query}");
    let (method, content_type) = if method & 1 == 0 {
        (Method::GET, "application/x-www-form-urlencoded")
    } else if path == "/api/v1/read" {
        (Method::POST, "application/x-protobuf")
    } else {
        (Method::POST, "application/x-www-form-urlencoded")
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        return;
    };
    let (rt, app) = runtime();
    let response = rt.block_on(promgate::api::handle(app.clone(), request));
    let status = response.status();
    assert!(
        [
            StatusCode::OK,
            StatusCode::NO_CONTENT,
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::NOT_ACCEPTABLE,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::SERVICE_UNAVAILABLE,
        ]
        .contains(&status),
        "{uri}: unexpected status {status}"
    );
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        let body = body_bytes(response);
        let expected = if status == StatusCode::OK { "success" } else { "error" };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(value) => assert_eq!(value["status"], expected, "{uri}: {value}"),
            // A deeply nested query's syntax tree (parse_query) nests deeper than the
            // checker parses; its envelope still tells the outcome.
            Err(e) if e.to_string().contains("recursion limit") => assert!(
                body.starts_with(format!("{{\"status\":\"{expected}\"").as_bytes()),
                "{uri}: {}",
                String::from_utf8_lossy(&body[..body.len().min(100)])
            ),
            Err(e) => panic!("{uri}: not JSON: {e}"),
        }
    }
});

fn body_bytes(response: http::Response<promgate::api::Body>) -> Bytes {
    use http_body_util::BodyExt;
    let (rt, _) = runtime();
    rt.block_on(response.into_body().collect())
        .expect("a body of bytes in memory is infallible")
        .to_bytes()
}
