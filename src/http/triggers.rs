//! Triggers: `PUT|GET /v1/tenants/{t}/triggers/{id}` and the list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{path_id, JsonBody};
use super::profiles::job_out;
use crate::engine::trigger::TriggerSpec;
use crate::ids::{TenantId, TriggerId};
use crate::service::Service;
use crate::store::TriggerRecord;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/triggers", get(list))
        .route("/v1/tenants/{tenant}/triggers/{trigger}", put(save).get(show))
}

fn trigger_out(record: &TriggerRecord) -> Value {
    let mut out = json!(record.spec);
    out["id"] = json!(record.id);
    out["updated_at"] = json!(record.updated_at);
    out
}

async fn list(State(service): State<Service>, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let triggers: Vec<Value> = service.triggers(&tenant).await?.iter().map(trigger_out).collect();
    Ok(Json(json!({ "triggers": triggers })))
}

async fn save(
    State(service): State<Service>,
    Path((_, trigger)): Path<(String, String)>,
    scope: Scoped,
    JsonBody(spec): JsonBody<TriggerSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = scope.tenant;
    let trigger = path_id::<TriggerId>(trigger)?;
    let (record, created) = service.put_trigger(&tenant, &trigger, spec).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, detailed(&service, &tenant, &record).await?))
}

/// One trigger with the progress of its latest apply-to-existing job.
async fn detailed(service: &Service, tenant: &TenantId, record: &TriggerRecord) -> Result<Json<Value>, ApiError> {
    let mut out = trigger_out(record);
    out["existing"] = service.existing_job(tenant, &record.id).await?.as_ref().map_or(Value::Null, job_out);
    Ok(Json(out))
}

async fn show(
    State(service): State<Service>,
    Path((_, trigger)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let trigger = path_id::<TriggerId>(trigger)?;
    detailed(&service, &tenant, &service.trigger(&tenant, &trigger).await?).await
}
