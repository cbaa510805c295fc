//! The operator's limits on what one request may ask for (`query.max_query_length`,
//! `query.max_range`), checked before any backend is asked. Both are read from the running
//! configuration, so a reload changes them for the next request. Breaking one is the
//! client's mistake: 400 `bad_data`, worded like Prometheus's parameter errors.

use std::time::Duration;

use crate::config::QueryConfig;
use crate::error::ApiError;
use crate::time::format_prometheus_duration;

/// Fails when `text` (a PromQL expression or selector given as `param`) is longer than
/// `query.max_query_length` characters.
pub fn check_query_length(config: &QueryConfig, param: &str, text: &str) -> Result<(), ApiError> {
    let max = config.max_query_length;
    if max == 0 {
        return Ok(());
    }
    let length = text.chars().count();
    if length > max {
        return Err(ApiError::invalid_param(
            param,
            format!(
                "the expression is {length} characters long, more than the limit of {max} \
                 (query.max_query_length)"
            ),
        ));
    }
    Ok(())
}

/// Fails when `end - start` (unix milliseconds) is wider than `query.max_range`.
pub fn check_range(config: &QueryConfig, start_ms: i64, end_ms: i64) -> Result<(), ApiError> {
    let max = config.max_range.0;
    if max.is_zero() {
        return Ok(());
    }
    let width = Duration::from_millis(end_ms.saturating_sub(start_ms).max(0).unsigned_abs());
    if width > max {
        return Err(ApiError::invalid_param(
            "end",
            format!(
                "the time range (end - start) of {} is wider than the limit of {} \
                 (query.max_range)",
                format_prometheus_duration(width),
                format_prometheus_duration(max)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PromDuration;

    fn config(max_query_length: usize, max_range: Duration) -> QueryConfig {
        QueryConfig {
            max_query_length,
            max_range: PromDuration(max_range),
            ..QueryConfig::default()
        }
    }

    #[test]
    fn query_length_counts_characters_and_zero_turns_it_off() {
        let limited = config(5, Duration::ZERO);
        assert!(check_query_length(&limited, "query", "ünits").is_ok());
        let e = check_query_length(&limited, "query", "up + up").unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "invalid parameter \"query\": the expression is 7 characters long, more than the \
             limit of 5 (query.max_query_length)"
        );
        assert!(
            check_query_length(&config(0, Duration::ZERO), "query", &"x".repeat(1 << 20)).is_ok()
        );
    }

    #[test]
    fn range_wider_than_the_limit_is_bad_data() {
        let limited = config(0, Duration::from_secs(3600));
        assert!(check_range(&limited, 0, 3_600_000).is_ok());
        let e = check_range(&limited, 0, 3_600_001).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorType::BadData);
        assert_eq!(
            e.message,
            "invalid parameter \"end\": the time range (end - start) of 1h1ms is wider \
             than the limit of 1h (query.max_range)"
        );
        assert!(check_range(&config(0, Duration::ZERO), i64::MIN, i64::MAX).is_ok());
    }
}
