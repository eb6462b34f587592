//! The one error shape at the edge: `{"error": {"code", "message", "path"?}}`.
//!
//! This is the only place that knows status codes. Internal failures are
//! logged here with their detail and answered with an opaque message, so no
//! store text ever reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::crm::signature::SignatureError;
use crate::service::ServiceError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `invalid_request`.
    #[schema(example = "invalid_request")]
    pub code: &'static str,
    pub message: String,
    /// The offending field of a 422, e.g. `rules[0].points`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The offending field of a 422, e.g. `rules[0].when.type`.
    pub path: Option<String>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), path: None, retry_after: None }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    pub fn invalid(path: Option<String>, message: impl Into<String>) -> Self {
        Self { path, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is larger than 256 KiB")
    }

    /// 429 with `Retry-After`: the tenant sends faster than its limit.
    pub fn rate_limited(seconds: u32) -> Self {
        Self {
            retry_after: Some(seconds),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many webhook requests; retry later")
        }
    }

    fn unavailable(code: &'static str, message: &str) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound(what) => Self::not_found(format!("{what} not found")),
            ServiceError::Unauthorized => Self::unauthorized("missing or invalid bearer token"),
            ServiceError::Invalid(e) => Self::invalid(Some(e.path), e.message),
            ServiceError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            ServiceError::Busy => Self::unavailable("busy", "the contact is being updated concurrently; retry"),
            ServiceError::Store(StoreError::Unavailable(detail)) => {
                tracing::error!(error = %detail, "store unavailable");
                Self::unavailable("store_unavailable", "storage is temporarily unavailable; retry")
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, "internal store error");
                Self::internal()
            }
        }
    }
}

impl From<SignatureError> for ApiError {
    fn from(error: SignatureError) -> Self {
        Self::unauthorized(error.to_string())
    }
}

/// 400 for bytes that are not JSON; 422 for JSON of the wrong shape.
impl From<serde_json::Error> for ApiError {
    fn from(error: serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => Self::invalid(None, error.to_string()),
            _ => Self::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {error}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, path: self.path } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
