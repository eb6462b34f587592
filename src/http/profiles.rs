//! Scoring profiles: `PUT|GET /v1/tenants/{t}/profiles/{p}`, list, publish, archive.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{path_id, JsonBody};
use crate::engine::profile::{Change, ProfileRecord, ProfileSpec};
use crate::ids::ProfileId;
use crate::service::Service;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/profiles", get(list))
        .route("/v1/tenants/{tenant}/profiles/{profile}", put(save).get(show))
        .route("/v1/tenants/{tenant}/profiles/{profile}/publish", post(publish))
        .route("/v1/tenants/{tenant}/profiles/{profile}/archive", post(archive))
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
    Ok(Json(profile_out(&service.profile(&tenant, &profile).await?)))
}

async fn publish(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    Ok(Json(profile_out(&service.publish_profile(&tenant, &profile).await?)))
}

async fn archive(
    State(service): State<Service>,
    Path((_, profile)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let profile = path_id::<ProfileId>(profile)?;
    Ok(Json(profile_out(&service.profile_step(&tenant, &profile, ProfileRecord::archive).await?)))
}
