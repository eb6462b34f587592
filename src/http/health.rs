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
/// How long one probe's answer stands: the route is public, so a flood of
/// probes costs one store read a second, not one each.
const READY_FOR: Duration = Duration::from_secs(1);

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
    let cached = service.readiness.lock().map(|last| last.clone()).unwrap_or(None);
    let answer = match cached.filter(|(at, _)| at.elapsed() < READY_FOR) {
        Some((_, answer)) => answer,
        None => {
            let answer = probe(&service).await?;
            if let Ok(mut last) = service.readiness.lock() {
                *last = Some((std::time::Instant::now(), answer.clone()));
            }
            answer
        }
    };
    answer
        .map(|()| Json(Health { status: "ready" }))
        .map_err(|why| ServiceError::Store(StoreError::Unavailable(why)).into())
}

/// One point read of the store: `Err` with why when it cannot be read.
async fn probe(service: &Service) -> Result<Result<(), String>, ApiError> {
    // A tenant id no one is told to use: the read's answer does not matter, only that it comes.
    let id = TenantId::parse("_readyz").map_err(|_| ApiError::internal())?;
    Ok(match tokio::time::timeout(READY_WITHIN, service.store.tenant(&id)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(StoreError::Unavailable(why))) => Err(why),
        // A probe record that does not read back is still an answer from the store.
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(format!("the store did not answer within {} s", READY_WITHIN.as_secs())),
    })
}
