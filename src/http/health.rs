//! `GET /healthz`: liveness, an answer that touches nothing, for load
//! balancers and scripts. `GET /readyz`: readiness, one point read of the
//! store, so a process whose store is gone is taken out of rotation (503)
//! rather than answering every webhook 503.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::openapi::errors::ProbeErrors;
use crate::ids::TenantId;
use crate::service::{Service, ServiceError};
use crate::store::StoreError;

/// How long the readiness read may take before the store counts as gone.
const READY_WITHIN: Duration = Duration::from_secs(3);

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process is up and answering.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can read its store (one point read, at most 3 s): `ready`, or 503 `store_unavailable`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "meta",
    security(()),
    responses((status = 200, body = Health, example = json!({"status": "ready"})), ProbeErrors)
)]
async fn readyz(State(service): State<Service>) -> Result<Json<Health>, ApiError> {
    // A tenant id no one is told to use: the read's answer does not matter, only that it comes.
    let probe = TenantId::parse("_readyz").map_err(|_| ApiError::internal())?;
    let read = tokio::time::timeout(READY_WITHIN, service.store.tenant(&probe)).await;
    match read {
        Ok(Ok(_)) => Ok(Json(Health { status: "ready" })),
        Ok(Err(error @ StoreError::Unavailable(_))) => Err(ServiceError::Store(error).into()),
        // A probe record that does not read back is still an answer from the store.
        Ok(Err(_)) => Ok(Json(Health { status: "ready" })),
        Err(_) => {
            let slow = format!("the store did not answer within {} s", READY_WITHIN.as_secs());
            Err(ServiceError::Store(StoreError::Unavailable(slow)).into())
        }
    }
}
