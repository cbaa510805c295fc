//! The errors a client sees, in Prometheus's vocabulary: every failure leaves promgate as one
//! [`ApiError`] whose `errorType` and HTTP status are those Prometheus uses for the same case.

use std::fmt;

use http::StatusCode;

/// Prometheus's `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
    NotAcceptable,
    /// No or wrong credentials (`[server.auth]`); not a Prometheus type, as Prometheus
    /// itself answers 401 before its API.
    Unauthorized,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::NotAcceptable => "not_acceptable",
            ErrorType::Unauthorized => "unauthorized",
        }
    }

    /// The HTTP status Prometheus answers with for this error type.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn parse(s: &str) -> Option<ErrorType> {
        Some(match s {
            "bad_data" => ErrorType::BadData,
            "execution" => ErrorType::Execution,
            "timeout" => ErrorType::Timeout,
            "canceled" => ErrorType::Canceled,
            "internal" => ErrorType::Internal,
            "unavailable" => ErrorType::Unavailable,
            "not_found" => ErrorType::NotFound,
            "not_acceptable" => ErrorType::NotAcceptable,
            "unauthorized" => ErrorType::Unauthorized,
            _ => return None,
        })
    }
}

/// An error answer: `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
    /// Warnings gathered before the failure; Prometheus sends them with the error.
    pub warnings: Vec<String>,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            warnings: Vec::new(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// `invalid parameter "time": cannot parse ...`, as Prometheus words it.
    pub fn invalid_param(param: &str, reason: impl fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {param:?}: {reason}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Unavailable, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Unauthorized, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Timeout, message)
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}
