//! Endpoints promgate answers itself: build information, and formatting or parsing a query.

use super::Reply;
use super::json;
use super::params::Params;
use crate::app::App;
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
    crate::promql::parse(query)
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

/// `/api/v1/status/config`: the configuration in force, as YAML in Prometheus's envelope,
/// with every secret shown as `<secret>`. It has no `global.external_labels`: promgate
/// has none of its own, so a promgate reading another one as a backend discovers none.
pub fn config(app: &App) -> Reply {
    let yaml = app.topology.load().config.to_redacted_yaml();
    Reply::Json(json::success(&[], &[], |out| {
        out.extend_from_slice(b"{\"yaml\":");
        json::write_str(out, &yaml);
        out.push(b'}');
    }))
}

/// `/api/v1/status/backends`: every configured backend, its group and what promgate knows
/// of its health.
pub fn backends(app: &App) -> Reply {
    let topology = app.topology.load();
    let replica_labels = &topology.config.query.replica_labels;
    let list: Vec<serde_json::Value> = topology
        .backends
        .iter()
        .map(|b| {
            let labels = b.external_labels();
            let group = labels.as_ref().map(|l| {
                let mut g = (**l).clone();
                g.retain(|k, _| !replica_labels.contains(k));
                g
            });
            let status = b.status();
            let breaker = b.breaker();
            let blocks = b.block_set().map(|set| {
                let counts = set.counts();
                serde_json::json!({
                    "location": set.describe(),
                    "loaded": counts.loaded,
                    "partial": counts.partial,
                    "markedForDeletion": counts.deleted,
                    "unreadable": counts.failed,
                    "downsampled": counts.downsampled,
                    "minTime": counts.time_range.map(|(min, _)| seconds(min)),
                    "maxTime": counts.time_range.map(|(_, max)| seconds(max)),
                })
            });
            serde_json::json!({
                "name": b.name(),
                "kind": b.config.kind.to_string(),
                "url": b.config.url,
                "version": b.version().as_deref(),
                "blocks": blocks,
                "externalLabels": labels.as_deref(),
                "group": group,
                "up": b.is_healthy(),
                "lastSuccess": status.last_success_ms.map(seconds),
                "lastError": status.last_error.as_ref().map(|(_, e)| e.clone()),
                "lastErrorTime": status.last_error.as_ref().map(|(t, _)| seconds(*t)),
                "lastLatencySeconds": status.last_latency_seconds,
                "breaker": {
                    "state": match breaker.state {
                        crate::layer::breaker::BreakerState::Closed => "closed",
                        crate::layer::breaker::BreakerState::HalfOpen => "half-open",
                        crate::layer::breaker::BreakerState::Open => "open",
                    },
                    "consecutiveFailures": breaker.consecutive_failures,
                    "lastError": breaker.last_error,
                    "opened": breaker.opened,
                    "rejections": breaker.rejections,
                },
            })
        })
        .collect();
    Reply::Json(json::success(&[], &[], |out| {
        out.extend_from_slice(serde_json::Value::from(list).to_string().as_bytes());
    }))
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
