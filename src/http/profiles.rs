//! Scoring profiles: `PUT|GET /v1/tenants/{t}/profiles/{p}`, list, publish,
//! archive, simulate, and the progress of a publish's recompute.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{body_bytes, parse_json, path_id, JsonBody};
use crate::engine::profile::{Change, ProfileRecord, ProfileSpec};
use crate::ids::{ProfileId, TenantId};
use crate::service::simulate::SimulateInput;
use crate::service::Service;
use crate::store::RecomputeJob;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/profiles", get(list))
        .route("/v1/tenants/{tenant}/profiles/{profile}", put(save).get(show))
        .route("/v1/tenants/{tenant}/profiles/{profile}/publish", post(publish))
        .route("/v1/tenants/{tenant}/profiles/{profile}/archive", post(archive))
        .route("/v1/tenants/{tenant}/profiles/{profile}/simulate", post(simulate))
}

/// A background job's progress (a recompute, or a trigger applied to existing contacts).
pub(super) fn job_out(job: &RecomputeJob) -> Value {
    json!({
        "version": job.version,
        "status": job.status,
        "contacts_done": job.contacts_done,
        "contacts_changed": job.contacts_changed,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    })
}

/// One profile, as show, publish and archive answer it: with the progress of its latest recompute.
async fn detailed(service: &Service, tenant: &TenantId, record: &ProfileRecord) -> Result<Json<Value>, ApiError> {
    let mut out = profile_out(record);
    out["recompute"] = service.recompute_job(tenant, &record.id).await?.as_ref().map_or(Value::Null, job_out);
    Ok(Json(out))
}

fn profile_out(record: &ProfileRecord) -> Value {
    let latest = record.draft.as_ref().or(record.live.as_ref());
    json!({
        "id": record.id,
        "status": record.status,
        "version": latest.map(|v| v.version),
        "published_version": record.live.as_ref().map(|v| v.version),
        "name": latest.map(|v| v.spec.name.as_str()),
        "published": record.live.as_ref().map(|v| &v.spec),
        "draft": record.draft.as_ref().map(|v| &v.spec),
        "updated_at": record.updated_at,
    })
}

async fn list(State(service): State<Service>, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profiles: Vec<Value> = service.profiles(&tenant).await?.iter().map(profile_out).collect();
    Ok(Json(json!({ "profiles": profiles })))
}

async fn save(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
    JsonBody(spec): JsonBody<ProfileSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let (record, change) = service.put_profile(&tenant, &profile, spec).await?;
    let status = if change == Change::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(profile_out(&record))))
}

async fn show(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.profile(&tenant, &profile).await?;
    detailed(&service, &tenant, &record).await
}

async fn publish(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.publish_profile(&tenant, &profile).await?;
    detailed(&service, &tenant, &record).await
}

async fn archive(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let record = service.profile_step(&tenant, &profile, ProfileRecord::archive).await?;
    detailed(&service, &tenant, &record).await
}

/// `POST …/simulate` with an optional body `{"contacts": 1000, "band": 10, "top": 10}`.
async fn simulate(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    let bytes = body_bytes(body)?;
    let input: SimulateInput =
        if bytes.iter().all(u8::is_ascii_whitespace) { SimulateInput::default() } else { parse_json(&bytes)? };
    let run = service.simulate(&tenant, &profile, &input).await?;
    let report = &run.report;
    Ok(Json(json!({
        "profile": profile,
        "version": run.version,
        "complete": run.complete,
        "contacts": report.contacts,
        "scored": report.scored,
        "bands": report.bands,
        "top": report.top,
        "triggers": report.triggers,
    })))
}
