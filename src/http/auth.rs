//! Bearer-token checks for the admin API.
//!
//! Authentication comes before anything else about the tenant: a caller
//! without a valid token for the path's tenant gets the same 401 whether or
//! not the tenant exists.

use axum::http::HeaderMap;

use super::error::ApiError;
use super::extract::bearer;
use crate::ids::TenantId;
use crate::service::{Caller, Service};

/// The path's tenant, once the caller is allowed to act on it.
pub async fn tenant_scope(service: &Service, headers: &HeaderMap, raw: &str) -> Result<(TenantId, Caller), ApiError> {
    let token = bearer(headers);
    let tenant = match TenantId::parse(raw) {
        Ok(tenant) => tenant,
        Err(e) if token.is_some_and(|t| service.is_operator(t)) => return Err(ApiError::not_found(e.to_string())),
        Err(_) => return Err(ApiError::unauthorized("missing or invalid bearer token")),
    };
    let caller = service.authorize(token, &tenant).await?;
    Ok((tenant, caller))
}
