//! Request extraction with our own rejections: raw bytes for signatures,
//! JSON bodies that answer 400 vs 422 precisely, queries and path ids that
//! answer in the API's error shape instead of axum's plain text.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::ids::InvalidId;

/// Listing page sizes: the default and the most one page may hold.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// The size limit of every request body.
pub const BODY_LIMIT: usize = 256 * 1024;

/// How long reading one request's body may take (256 KiB at most), unless
/// `SCOREHOOK_BODY_READ_TIMEOUT_SECS` says otherwise.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);

pub const BODY_READ_TIMEOUT_VAR: &str = "SCOREHOOK_BODY_READ_TIMEOUT_SECS";

/// `SCOREHOOK_BODY_READ_TIMEOUT_SECS` that is not a number of seconds from 1 to 300.
#[derive(Debug, thiserror::Error)]
#[error("{BODY_READ_TIMEOUT_VAR} must be a whole number of seconds from 1 to 300, not {0:?}")]
pub struct InvalidBodyReadTimeout(pub String);

/// The default, or `SCOREHOOK_BODY_READ_TIMEOUT_SECS`'s value.
pub fn body_read_timeout(value: Option<String>) -> Result<Duration, InvalidBodyReadTimeout> {
    match value {
        None => Ok(BODY_READ_TIMEOUT),
        Some(value) => match value.parse().ok().filter(|s| (1..=300).contains(s)) {
            Some(seconds) => Ok(Duration::from_secs(seconds)),
            None => Err(InvalidBodyReadTimeout(value)),
        },
    }
}

/// A body read whole (within `BODY_LIMIT`), kept as bytes for signature checks.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(),
        _ => ApiError::malformed(format!("cannot read the body: {rejection}")),
    })
}

/// Parses bytes as JSON of type `T`: 400 if not JSON, 422 if the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    shaped(parse_value(bytes)?)
}

/// A request body that must be one JSON object, parsed as `parse_json`
/// does. serde would also read a struct from an array of its fields in
/// order, which no client means and whose errors name no field.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_value(bytes)?;
    if !value.is_object() {
        return Err(ApiError::invalid(None, "the body must be a JSON object"));
    }
    shaped(value)
}

fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", "the body is empty"));
    }
    Ok(serde_json::from_slice(bytes)?)
}

fn shaped<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid((path != ".").then_some(path), e.into_inner().to_string())
    })
}

/// An optional JSON body: none (or only whitespace) is `T::default()`,
/// anything else must be one JSON object.
pub fn optional_json<T: DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body_bytes(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_object(&bytes)
}

/// `axum::Json` with our error shape and the 400/422 split.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(Bytes::from_request(request, state).await)?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// `axum::Path` with our error shape: a segment that does not decode (not
/// UTF-8, e.g. `%FF`) names nothing that can exist, so it is a JSON 404,
/// not axum's plain-text 400.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(params)| PathParams(params))
            .map_err(|e| ApiError::not_found(format!("bad path: {e}")))
    }
}

pub fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri).map(|Query(q)| q).map_err(|e| ApiError::malformed(format!("bad query string: {e}")))
}

/// A path segment as an id type; an id that cannot exist is simply not found.
pub fn path_id<T: TryFrom<String, Error = InvalidId>>(raw: String) -> Result<T, ApiError> {
    T::try_from(raw).map_err(|e| ApiError::not_found(e.to_string()))
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_read_timeout_is_fifteen_seconds_or_a_valid_setting() {
        assert_eq!(body_read_timeout(None).unwrap(), Duration::from_secs(15));
        assert_eq!(body_read_timeout(Some("1".into())).unwrap(), Duration::from_secs(1));
        assert_eq!(body_read_timeout(Some("300".into())).unwrap(), Duration::from_secs(300));
        for bad in ["0", "301", "-1", "1.5", "15s", "ten"] {
            let err = body_read_timeout(Some(bad.into())).unwrap_err().to_string();
            assert!(err.contains(BODY_READ_TIMEOUT_VAR) && err.contains(bad), "{bad}: {err}");
        }
    }
}
