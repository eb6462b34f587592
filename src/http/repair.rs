//! The operator's view of fault isolation: `GET /v1/quarantine` lists the
//! stored records set aside because they could not be read or committed,
//! and `POST …/contacts/{id}/repair` (or `…/deals/{id}/repair`) rebuilds
//! one from its ledger and history (`service::repair`). Both take the
//! operator token only: a tenant's token is 401, as for creating a tenant.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{bearer, PathParams};
use super::openapi::errors::{ReadErrors, StepErrors};
use super::scores::subject;
use crate::engine::points::Points;
use crate::engine::profile::SubjectKind;
use crate::ids::ProfileId;
use crate::service::{Caller, Service};
use crate::store::{QuarantineKind, Quarantined};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(repair_contact)).routes(routes!(repair_deal))
}

/// A stored record set aside.
#[derive(Serialize, ToSchema)]
struct QuarantinedOut {
    tenant: String,
    kind: QuarantineKind,
    /// The contact id (a deal's is `deal:<id>`) or the action id.
    key: String,
    /// Why it was set aside, the last time.
    error: String,
    /// Which work found it: `scoring`, `sweeper`, `recompute`, `executor`, `read`, …
    found_by: String,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    /// How many times it was found unreadable.
    count: u64,
}

impl From<Quarantined> for QuarantinedOut {
    fn from(entry: Quarantined) -> Self {
        Self {
            tenant: entry.tenant.to_string(),
            kind: entry.kind,
            key: entry.key,
            error: entry.error,
            found_by: entry.found_by,
            first_at: entry.first_at,
            last_at: entry.last_at,
            count: entry.count,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct QuarantineList {
    quarantined: Vec<QuarantinedOut>,
}

/// Records set aside (every tenant's), up to 1,000.
#[utoipa::path(
    get,
    path = "/v1/quarantine",
    tag = "operations",
    responses((status = 200, body = QuarantineList), ReadErrors)
)]
async fn list(State(service): State<Service>, headers: HeaderMap) -> Result<Json<QuarantineList>, ApiError> {
    if !bearer(&headers).is_some_and(|token| service.is_operator(token)) {
        return Err(ApiError::unauthorized("the operator token is needed"));
    }
    let quarantined = service.quarantined().await?.into_iter().map(QuarantinedOut::from).collect();
    Ok(Json(QuarantineList { quarantined }))
}

/// What a repair wrote.
#[derive(Serialize, ToSchema)]
struct RepairOut {
    /// The contact or deal id.
    id: String,
    /// The state's version after the repair.
    version: u64,
    /// Each published profile's rebuilt score.
    #[schema(value_type = BTreeMap<String, f64>)]
    scores: BTreeMap<ProfileId, Points>,
    /// Whether the stored state still read before the repair.
    was_readable: bool,
}

async fn repair(kind: SubjectKind, service: &Service, raw: String, scope: Scoped) -> Result<Json<RepairOut>, ApiError> {
    if !matches!(scope.caller, Caller::Operator) {
        return Err(ApiError::unauthorized("the operator token is needed"));
    }
    let id = subject(kind, raw.clone())?;
    let repaired = service.repair_contact(&scope.tenant, &id).await?;
    Ok(Json(RepairOut {
        id: raw,
        version: repaired.version,
        scores: repaired.scores,
        was_readable: repaired.was_readable,
    }))
}

/// Rebuilds a contact's state from its ledger and history (operator token only).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/contacts/{id}/repair",
    tag = "operations",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The contact id"),
    ),
    responses((status = 200, body = RepairOut), StepErrors)
)]
async fn repair_contact(
    State(service): State<Service>,
    PathParams((_, id)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<RepairOut>, ApiError> {
    repair(SubjectKind::Contact, &service, id, scope).await
}

/// Rebuilds a deal's state from its ledger and history (operator token only).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/deals/{id}/repair",
    tag = "operations",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The deal id"),
    ),
    responses((status = 200, body = RepairOut), StepErrors)
)]
async fn repair_deal(
    State(service): State<Service>,
    PathParams((_, id)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<RepairOut>, ApiError> {
    repair(SubjectKind::Deal, &service, id, scope).await
}
