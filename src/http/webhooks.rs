//! `POST /v1/webhooks/{provider}/{tenant}`: interactions in.
//!
//! Order matters: size limit, tenant, signature, then parsing and
//! validation of the whole body, and only then storage, so a rejected
//! request stores nothing. 202 is answered once every interaction is committed.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::{body_bytes, parse_json};
use crate::crm::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::engine::interaction::parse_body;
use crate::ids::TenantId;
use crate::service::ingest::IngestReport;
use crate::service::Service;
use crate::tenant::Provider;

pub fn router() -> Router<Service> {
    Router::new().route("/v1/webhooks/{provider}/{tenant}", post(receive))
}

/// One message for unknown tenants and bad signatures alike, so the
/// endpoint does not reveal which tenants exist.
const REFUSED: &str = "unknown tenant or bad signature";

async fn receive(
    State(service): State<Service>,
    Path((provider, tenant)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestReport>), ApiError> {
    let body = body_bytes(body)?;
    let provider: Provider = serde_json::from_value(serde_json::Value::String(provider.clone()))
        .map_err(|_| ApiError::not_found(format!("unknown provider {provider:?}")))?;
    if provider != Provider::Generic {
        return Err(ApiError::not_found(format!("the {} connector is not available yet", provider.as_str())));
    }
    let tenant_id = TenantId::parse(tenant).map_err(|_| ApiError::unauthorized(REFUSED))?;
    let view = service
        .tenant_view(&tenant_id)
        .await?
        .filter(|v| v.record.provider == provider)
        .ok_or_else(|| ApiError::unauthorized(REFUSED))?;
    let tenant = &view.record;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    signature::verify(
        tenant.webhook_secret.expose(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        service.clock.now(),
    )
    .inspect_err(|e| tracing::warn!(tenant = %tenant_id, error = %e, "webhook refused"))?;
    let value: serde_json::Value = parse_json(&body)?;
    let interactions = parse_body(value).map_err(|e| ApiError::invalid(Some(format!("[{}]", e.at)), e.to_string()))?;
    let report = service.ingest(&view, &interactions).await?;
    Ok((StatusCode::ACCEPTED, Json(report)))
}
