//! Bearer-token checks for the admin API.
//!
//! Authentication comes before anything else about the tenant: a caller
//! without a valid token for the path's tenant gets the same 401 whether or
//! not the tenant exists.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
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

/// The authenticated tenant scope of an admin route, as an extractor. It
/// reads only the request head, so it runs before any body is read: a
/// caller without a valid token gets 401 whatever the body holds.
pub struct Scoped {
    pub tenant: TenantId,
    pub caller: Caller,
}

impl FromRequestParts<Service> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, service: &Service) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, service)
            .await
            .map_err(|e| ApiError::not_found(format!("bad path: {e}")))?;
        let raw = params.get("tenant").ok_or_else(|| ApiError::not_found("no tenant in the path"))?;
        let (tenant, caller) = tenant_scope(service, &parts.headers, raw).await?;
        Ok(Self { tenant, caller })
    }
}
