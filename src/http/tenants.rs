//! `PUT|GET /v1/tenants/{t}`: connect a CRM account. Reads never show secrets.
//! `GET /v1/tenants/{t}/webhooks/unmapped`: the tallies of webhook events
//! acknowledged but not mapped, by `<provider>:<kind>`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::JsonBody;
use crate::service::admin::TenantInput;
use crate::service::Service;
use crate::tenant::{Provider, Secret, TenantRecord};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}", put(put_tenant).get(get_tenant))
        .route("/v1/tenants/{tenant}/webhooks/unmapped", get(unmapped))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    provider: Provider,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    actions_url: Option<String>,
    #[serde(default)]
    crm: Map<String, Value>,
}

fn tenant_out(record: &TenantRecord) -> Value {
    json!({
        "tenant": record.id,
        "provider": record.provider,
        "actions_url": record.actions_url,
        "crm": record.public_crm(),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    })
}

async fn put_tenant(
    State(service): State<Service>,
    scope: Scoped,
    JsonBody(body): JsonBody<TenantIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Only the operator can create: a tenant that does not exist has no token of its own.
    let Scoped { tenant, caller } = scope;
    let input = TenantInput {
        provider: body.provider,
        webhook_secret: body.webhook_secret.map(Secret::new),
        actions_url: body.actions_url,
        crm: body.crm,
    };
    let written = service.put_tenant(&caller, &tenant, input).await?;
    Ok(match written.token {
        Some(token) => (StatusCode::CREATED, Json(json!({"tenant": tenant, "token": token}))),
        None => (StatusCode::OK, Json(tenant_out(&written.record))),
    })
}

async fn get_tenant(State(service): State<Service>, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let record = service.store.tenant(&tenant).await.map_err(crate::service::ServiceError::from)?;
    let record = record.ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    Ok(Json(tenant_out(&record)))
}

async fn unmapped(State(service): State<Service>, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let counts = service.store.unmapped(&scope.tenant).await.map_err(crate::service::ServiceError::from)?;
    Ok(Json(json!({ "tenant": scope.tenant, "unmapped": counts })))
}
