//! Triggers: `PUT|GET /v1/tenants/{t}/triggers/{id}` and the list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{path_id, JsonBody, PathParams};
use super::openapi::errors::{BodyErrors, ReadErrors};
use super::openapi::schemas;
use super::profiles::JobOut;
use crate::engine::trigger::TriggerSpec;
use crate::ids::{TenantId, TriggerId};
use crate::service::Service;
use crate::store::TriggerRecord;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(save, show))
}

/// A trigger: its spec with its id and when it was last saved.
#[derive(Serialize, ToSchema)]
struct TriggerOut {
    #[serde(flatten)]
    #[schema(value_type = schemas::TriggerSpec)]
    spec: TriggerSpec,
    #[schema(value_type = String)]
    id: TriggerId,
    updated_at: DateTime<Utc>,
}

impl From<&TriggerRecord> for TriggerOut {
    fn from(record: &TriggerRecord) -> Self {
        Self { spec: record.spec.clone(), id: record.id.clone(), updated_at: record.updated_at }
    }
}

/// One trigger with the progress of its latest apply-to-existing job (`null` if none ran).
#[derive(Serialize, ToSchema)]
struct TriggerDetail {
    #[serde(flatten)]
    trigger: TriggerOut,
    existing: Option<JobOut>,
}

#[derive(Serialize, ToSchema)]
struct TriggerList {
    triggers: Vec<TriggerOut>,
}

/// Every trigger of the tenant.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/triggers",
    operation_id = "list_triggers",
    tag = "triggers",
    params(("tenant" = String, Path, description = "The tenant id")),
    responses((status = 200, body = TriggerList), ReadErrors)
)]
async fn list(State(service): State<Service>, scope: Scoped) -> Result<Json<TriggerList>, ApiError> {
    let tenant = scope.tenant;
    let triggers = service.triggers(&tenant).await?.iter().map(TriggerOut::from).collect();
    Ok(Json(TriggerList { triggers }))
}

/// Creates or replaces a trigger (a score trigger's profile must exist).
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/triggers/{trigger}",
    operation_id = "save_trigger",
    tag = "triggers",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("trigger" = String, Path, description = "The trigger id: 1-64 of `A-Z a-z 0-9 _ -`"),
    ),
    request_body = schemas::TriggerSpec,
    responses(
        (status = 201, description = "Created", body = TriggerDetail),
        (status = 200, description = "Replaced", body = TriggerDetail),
        BodyErrors
    )
)]
async fn save(
    State(service): State<Service>,
    PathParams((_, trigger)): PathParams<(String, String)>,
    scope: Scoped,
    JsonBody(spec): JsonBody<TriggerSpec>,
) -> Result<(StatusCode, Json<TriggerDetail>), ApiError> {
    let tenant = scope.tenant;
    let trigger = path_id::<TriggerId>(trigger)?;
    let (record, created) = service.put_trigger(&tenant, &trigger, spec).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, detailed(&service, &tenant, &record).await?))
}

/// One trigger with the progress of its latest apply-to-existing job.
async fn detailed(
    service: &Service,
    tenant: &TenantId,
    record: &TriggerRecord,
) -> Result<Json<TriggerDetail>, ApiError> {
    let existing = service.existing_job(tenant, &record.id).await?.as_ref().map(JobOut::from);
    Ok(Json(TriggerDetail { trigger: TriggerOut::from(record), existing }))
}

/// One trigger.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/triggers/{trigger}",
    operation_id = "show_trigger",
    tag = "triggers",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("trigger" = String, Path, description = "The trigger id"),
    ),
    responses((status = 200, body = TriggerDetail), ReadErrors)
)]
async fn show(
    State(service): State<Service>,
    PathParams((_, trigger)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<TriggerDetail>, ApiError> {
    let tenant = scope.tenant;
    let trigger = path_id::<TriggerId>(trigger)?;
    detailed(&service, &tenant, &service.trigger(&tenant, &trigger).await?).await
}
