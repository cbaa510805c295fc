//! Request parameters as Prometheus reads them: the URL's query string and, for POST, an
//! `application/x-www-form-urlencoded` body, with body values taking precedence; typed
//! readers that word their errors as Prometheus does.

use crate::error::ApiError;
use crate::time::{parse_duration_param, parse_time};

#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Body values first, then the URL's, so the first value of a name is the body's.
    pub fn from_parts(query: Option<&str>, form_body: Option<&[u8]>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(body) = form_body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter given but empty counts as absent, as in Prometheus.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A timestamp parameter, `default` when absent.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.non_empty(name) {
            None => Ok(default),
            Some(v) => parse_time(v).map_err(|e| {
                ApiError::invalid_param(name, format!("invalid time value for '{name}': {e}"))
            }),
        }
    }

    /// A duration parameter in milliseconds, when present.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.non_empty(name) {
            None => Ok(None),
            Some(v) => parse_duration_param(v)
                .map(Some)
                .map_err(|e| ApiError::invalid_param(name, e)),
        }
    }

    /// `limit`: a non-negative integer, 0 or absent meaning none.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.non_empty("limit") {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n < 0 => Err(ApiError::invalid_param(
                    "limit",
                    "limit must be non-negative",
                )),
                Ok(0) => Ok(None),
                Ok(n) => Ok(Some(n as usize)),
                Err(_) => Err(ApiError::invalid_param(
                    "limit",
                    format!("strconv.Atoi: parsing {v:?}: invalid syntax"),
                )),
            },
        }
    }

    /// `partial_response`: per request, overriding the configured default.
    pub fn partial_response(&self, default: bool) -> Result<bool, ApiError> {
        match self.non_empty("partial_response") {
            None => Ok(default),
            Some(v) => match v {
                "1" | "true" | "True" | "TRUE" | "t" | "T" => Ok(true),
                "0" | "false" | "False" | "FALSE" | "f" | "F" => Ok(false),
                _ => Err(ApiError::invalid_param(
                    "partial_response",
                    format!("cannot parse {v:?} to a boolean"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_values_take_precedence_over_url_values() {
        let p = Params::from_parts(
            Some("query=up&match[]=a"),
            Some(b"query=down&match%5B%5D=b"),
        );
        assert_eq!(p.get("query"), Some("down"));
        assert_eq!(p.all("match[]"), vec!["b", "a"]);
    }

    #[test]
    fn time_errors_are_worded_like_prometheus() {
        let p = Params::from_parts(Some("time=yesterday"), None);
        assert_eq!(
            p.time("time", 0).unwrap_err().message,
            "invalid parameter \"time\": invalid time value for 'time': cannot parse \"yesterday\" to a valid timestamp"
        );
        assert_eq!(Params::default().time("time", 42).unwrap(), 42);
    }

    #[test]
    fn partial_response_overrides_default() {
        let p = Params::from_parts(Some("partial_response=false"), None);
        assert!(!p.partial_response(true).unwrap());
        assert!(Params::default().partial_response(true).unwrap());
        let bad = Params::from_parts(Some("partial_response=maybe"), None);
        assert!(bad.partial_response(true).is_err());
    }
}
