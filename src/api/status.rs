//! Endpoints promgate answers itself: build information, and formatting or parsing a query.

use super::Reply;
use super::json;
use super::params::Params;
use crate::error::ApiError;

/// The Prometheus version whose API and PromQL promgate speaks; Grafana enables features
/// by it.
pub const PROMETHEUS_COMPATIBLE_VERSION: &str = "3.5.0";

pub fn buildinfo() -> Reply {
    Reply::Json(json::success(&[], &[], |out| {
        let fields = [
            ("version", PROMETHEUS_COMPATIBLE_VERSION),
            (
                "revision",
                option_env!("PROMGATE_GIT_REVISION").unwrap_or("unknown"),
            ),
            ("branch", "promgate"),
            ("buildUser", "promgate"),
            ("buildDate", ""),
            ("goVersion", concat!("promgate ", env!("CARGO_PKG_VERSION"))),
        ];
        out.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, k);
            out.push(b':');
            json::write_str(out, v);
        }
        out.push(b'}');
    }))
}

fn parse(params: &Params) -> Result<promql_parser::parser::Expr, ApiError> {
    let query = params.get("query").unwrap_or("");
    promql_parser::parser::parse(query)
        .map_err(|e| ApiError::invalid_param("query", format!("parse error: {e}")))
}

pub fn format_query(params: &Params) -> Result<Reply, ApiError> {
    let expr = parse(params)?;
    let formatted = crate::promql::format_query(&expr);
    Ok(Reply::Json(json::success(&[], &[], |out| {
        json::write_str(out, &formatted)
    })))
}

pub fn parse_query(params: &Params) -> Result<Reply, ApiError> {
    let expr = parse(params)?;
    let tree = crate::promql::ast_to_json(&expr);
    Ok(Reply::Json(json::success(&[], &[], |out| {
        // serde_json leaves '<', '>' and '&' unescaped where Go escapes them: the same JSON
        // values, not the same bytes.
        out.extend_from_slice(tree.to_string().as_bytes());
    })))
}
