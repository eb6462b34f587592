//! Scoring profiles: `PUT|GET /v1/tenants/{t}/profiles/{p}`, list, publish,
//! archive, simulate, and the progress of a publish's recompute.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
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
use super::extract::{optional_json, path_id, JsonBody, PathParams};
use super::openapi::errors::{BodyErrors, ReadErrors, StepErrors};
use super::openapi::schemas;
use crate::engine::profile::{Change, ProfileRecord, ProfileSpec, ProfileStatus};
use crate::engine::replay::{Band, TopContact};
use crate::ids::{ProfileId, TenantId, TriggerId};
use crate::service::simulate::SimulateInput;
use crate::service::Service;
use crate::store::{JobStatus, RecomputeJob};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(save, show))
        .routes(routes!(publish))
        .routes(routes!(archive))
        .routes(routes!(simulate))
}

/// A background job's progress (a recompute, or a trigger applied to existing contacts).
#[derive(Serialize, ToSchema)]
pub(super) struct JobOut {
    /// The profile version it computes.
    version: u32,
    status: JobStatus,
    contacts_done: u64,
    contacts_changed: u64,
    /// Of `contacts_done`, those whose stored record could not be read or
    /// committed: quarantined and passed over (see `GET /v1/quarantine`).
    contacts_skipped: u64,
    /// The subjects it goes through, counted when it started (`null` until then, and for a trigger applied to
    /// existing subjects): `contacts_done` of `contacts_total` is its progress.
    contacts_total: Option<u64>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<&RecomputeJob> for JobOut {
    fn from(job: &RecomputeJob) -> Self {
        Self {
            version: job.version,
            status: job.status,
            contacts_done: job.contacts_done,
            contacts_changed: job.contacts_changed,
            contacts_skipped: job.contacts_skipped,
            contacts_total: job.contacts_total,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// A profile: its status, the published spec and the pending draft.
#[derive(Serialize, ToSchema)]
struct ProfileOut {
    #[schema(value_type = String)]
    id: ProfileId,
    #[schema(value_type = schemas::ProfileStatus)]
    status: ProfileStatus,
    /// The latest version (the draft's, else the published one's).
    version: Option<u32>,
    published_version: Option<u32>,
    name: Option<String>,
    #[schema(value_type = Option<schemas::ProfileSpec>)]
    published: Option<ProfileSpec>,
    #[schema(value_type = Option<schemas::ProfileSpec>)]
    draft: Option<ProfileSpec>,
    updated_at: DateTime<Utc>,
}

impl From<&ProfileRecord> for ProfileOut {
    fn from(record: &ProfileRecord) -> Self {
        let latest = record.draft.as_ref().or(record.live.as_ref());
        Self {
            id: record.id.clone(),
            status: record.status,
            version: latest.map(|v| v.version),
            published_version: record.live.as_ref().map(|v| v.version),
            name: latest.map(|v| v.spec.name.clone()),
            published: record.live.as_ref().map(|v| v.spec.clone()),
            draft: record.draft.as_ref().map(|v| v.spec.clone()),
            updated_at: record.updated_at,
        }
    }
}

/// One profile with the progress of its latest recompute (`null` before the first publish).
#[derive(Serialize, ToSchema)]
struct ProfileDetail {
    #[serde(flatten)]
    profile: ProfileOut,
    recompute: Option<JobOut>,
}

#[derive(Serialize, ToSchema)]
struct ProfileList {
    profiles: Vec<ProfileOut>,
}

/// What the draft (else the published version) would have scored over stored history; nothing is written.
#[derive(Serialize, ToSchema)]
struct SimulateOut {
    #[schema(value_type = String)]
    profile: ProfileId,
    version: u32,
    /// False when the tenant has more contacts than were read.
    complete: bool,
    contacts: usize,
    scored: usize,
    #[schema(value_type = Vec<schemas::Band>)]
    bands: Vec<Band>,
    #[schema(value_type = Vec<schemas::TopScore>)]
    top: Vec<TopContact>,
    /// How often each enabled score trigger on the profile would have fired.
    #[schema(value_type = BTreeMap<String, u32>)]
    triggers: BTreeMap<TriggerId, u32>,
}

/// One profile, as show, publish and archive answer it.
async fn detailed(
    service: &Service,
    tenant: &TenantId,
    record: &ProfileRecord,
) -> Result<Json<ProfileDetail>, ApiError> {
    let recompute = service.recompute_job(tenant, &record.id).await?.as_ref().map(JobOut::from);
    Ok(Json(ProfileDetail { profile: ProfileOut::from(record), recompute }))
}

/// Every profile of the tenant.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/profiles",
    operation_id = "list_profiles",
    tag = "profiles",
    params(("tenant" = String, Path, description = "The tenant id")),
    responses((status = 200, body = ProfileList), ReadErrors)
)]
async fn list(State(service): State<Service>, scope: Scoped) -> Result<Json<ProfileList>, ApiError> {
    let tenant = scope.tenant;
    let profiles = service.profiles(&tenant).await?.iter().map(ProfileOut::from).collect();
    Ok(Json(ProfileList { profiles }))
}

/// Saves a draft; a published version keeps scoring until the draft is published.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}/profiles/{profile}",
    operation_id = "save_profile",
    tag = "profiles",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("profile" = String, Path, description = "The profile id: 1-64 of `A-Z a-z 0-9 _ -`"),
    ),
    request_body = schemas::ProfileSpec,
    responses(
        (status = 201, description = "A new profile", body = ProfileOut),
        (status = 200, description = "A new draft of an existing profile", body = ProfileOut),
        BodyErrors
    )
)]
async fn save(
    State(service): State<Service>,
    PathParams((_, profile)): PathParams<(String, String)>,
    scope: Scoped,
    JsonBody(spec): JsonBody<ProfileSpec>,
) -> Result<(StatusCode, Json<ProfileOut>), ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let (record, change) = service.put_profile(&tenant, &profile, spec).await?;
    let status = if change == Change::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ProfileOut::from(&record))))
}

/// One profile, with the progress of its latest recompute.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/profiles/{profile}",
    operation_id = "show_profile",
    tag = "profiles",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("profile" = String, Path, description = "The profile id"),
    ),
    responses((status = 200, body = ProfileDetail), ReadErrors)
)]
async fn show(
    State(service): State<Service>,
    PathParams((_, profile)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<ProfileDetail>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.profile(&tenant, &profile).await?;
    detailed(&service, &tenant, &record).await
}

/// Publishes the draft; a new version is recomputed over stored history in the background.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/profiles/{profile}/publish",
    operation_id = "publish_profile",
    tag = "profiles",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("profile" = String, Path, description = "The profile id"),
    ),
    responses((status = 200, body = ProfileDetail), StepErrors)
)]
async fn publish(
    State(service): State<Service>,
    PathParams((_, profile)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<ProfileDetail>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.publish_profile(&tenant, &profile).await?;
    detailed(&service, &tenant, &record).await
}

/// Archives the profile: it stops scoring and leaves listings (history stays).
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/profiles/{profile}/archive",
    operation_id = "archive_profile",
    tag = "profiles",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("profile" = String, Path, description = "The profile id"),
    ),
    responses((status = 200, body = ProfileDetail), StepErrors)
)]
async fn archive(
    State(service): State<Service>,
    PathParams((_, profile)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<ProfileDetail>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.profile_step(&tenant, &profile, ProfileRecord::archive).await?;
    detailed(&service, &tenant, &record).await
}

/// Runs the draft (else the published version) over stored history and writes nothing. The body is optional.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/profiles/{profile}/simulate",
    operation_id = "simulate_profile",
    tag = "profiles",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("profile" = String, Path, description = "The profile id"),
    ),
    request_body(content = Option<SimulateInput>, description = "Optional: how many contacts, band width, top"),
    responses((status = 200, body = SimulateOut), BodyErrors)
)]
async fn simulate(
    State(service): State<Service>,
    PathParams((_, profile)): PathParams<(String, String)>,
    scope: Scoped,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SimulateOut>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let input: SimulateInput = optional_json(body)?;
    let run = service.simulate(&tenant, &profile, &input).await?;
    let report = run.report;
    Ok(Json(SimulateOut {
        profile,
        version: run.version,
        complete: run.complete,
        contacts: report.contacts,
        scored: report.scored,
        bands: report.bands,
        top: report.top,
        triggers: report.triggers,
    }))
}
