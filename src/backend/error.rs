//! What can go wrong talking to one backend, typed so the fan-out can tell a dead backend
//! (fail over, warn) from a query the backend rejected (the client's error to see).

use std::fmt;
use std::time::Duration;

use crate::error::ErrorType;

#[derive(Debug, Clone, PartialEq)]
pub enum BackendError {
    /// The backend's own timeout (from config) elapsed.
    Timeout(Duration),
    /// The query's deadline passed first.
    DeadlineExceeded,
    /// Connecting failed (refused, unreachable, DNS).
    Connect(String),
    /// The connection broke or the exchange was malformed.
    Transport(String),
    /// The answer was larger than the configured limit.
    TooLarge { limit: usize },
    /// The backend answered with a Prometheus error.
    Api {
        status: u16,
        error_type: Option<ErrorType>,
        message: String,
    },
    /// The answer did not decode.
    Decode(String),
    /// The backend's external labels are not known yet (it has not been reachable).
    LabelsUnknown(String),
    /// Its circuit breaker is open: the request was not sent.
    BreakerOpen(String),
}

impl BackendError {
    pub(crate) fn from_client(e: hyper_util::client::legacy::Error) -> Self {
        let text = error_chain(&e);
        if e.is_connect() {
            BackendError::Connect(text)
        } else {
            BackendError::Transport(text)
        }
    }

    /// True when the backend rejected the query itself (bad PromQL, too many samples):
    /// asking its replica would give the same answer, and the client must see it.
    pub fn is_query_error(&self) -> bool {
        matches!(
            self,
            BackendError::Api {
                error_type: Some(ErrorType::BadData | ErrorType::Execution | ErrorType::NotFound),
                ..
            }
        )
    }

    /// True when the backend refused the request itself (a 4xx answer): it is up, and
    /// asking again gives the same answer.
    pub fn is_request_error(&self) -> bool {
        matches!(self, BackendError::Api { status, .. } if (400..500).contains(status))
    }

    /// The label used on promgate_backend_requests_total.
    pub fn metric_result(&self) -> &'static str {
        match self {
            BackendError::Timeout(_) | BackendError::DeadlineExceeded => "timeout",
            _ => "error",
        }
    }

    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            BackendError::Timeout(_)
                | BackendError::DeadlineExceeded
                | BackendError::Api {
                    error_type: Some(ErrorType::Timeout),
                    ..
                }
        )
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Timeout(d) => write!(f, "timed out after {}", humanize(*d)),
            BackendError::DeadlineExceeded => f.write_str("query deadline exceeded"),
            BackendError::Connect(e) => write!(f, "connection failed: {e}"),
            BackendError::Transport(e) => write!(f, "{e}"),
            BackendError::TooLarge { limit } => {
                write!(f, "response larger than max_response_bytes ({limit} bytes)")
            }
            BackendError::Api {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            BackendError::Decode(e) => write!(f, "undecodable answer: {e}"),
            BackendError::LabelsUnknown(e) => write!(f, "external labels unknown: {e}"),
            BackendError::BreakerOpen(e) => f.write_str(e),
        }
    }
}

/// An error with its causes, `outer: inner: innermost`: hyper's outer errors say where
/// things broke ("error reading a body from connection"), only the inner ones say why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn humanize(d: Duration) -> String {
    crate::time::format_prometheus_duration(d)
}

impl std::error::Error for BackendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error reading a body from connection")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_chain_says_why_not_only_where() {
        let e = Wrapped(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "end of file before message length reached",
        ));
        assert_eq!(
            error_chain(&e),
            "error reading a body from connection: end of file before message length reached"
        );
    }
}
