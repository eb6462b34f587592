//! Contacts and their scores: the leaderboard, one contact's scores with
//! ledger, and manual adjustments.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Scoped;
use super::cursor;
use super::error::ApiError;
use super::extract::{path_id, query, JsonBody, DEFAULT_PAGE, MAX_PAGE};
use crate::engine::duration::Span;
use crate::engine::points::Points;
use crate::engine::AdjustOp;
use crate::ids::{ContactId, ProfileId};
use crate::service::scores::AdjustInput;
use crate::service::Service;
use crate::store::{LeaderboardQuery, Order};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/contacts", get(leaderboard))
        .route("/v1/tenants/{tenant}/contacts/{contact}/scores", get(scores))
        .route("/v1/tenants/{tenant}/contacts/{contact}/scores/{profile}", post(adjust))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaderboardParams {
    profile: Option<String>,
    order: Option<Order>,
    min: Option<String>,
    max: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn points_param(name: &str, raw: Option<String>) -> Result<Option<Points>, ApiError> {
    raw.map(|text| {
        let number: serde_json::Number =
            text.parse().map_err(|_| ApiError::invalid(Some(name.to_owned()), format!("{name} must be a number")))?;
        Points::from_json(&number).map_err(|e| ApiError::invalid(Some(name.to_owned()), e.to_string()))
    })
    .transpose()
}

async fn leaderboard(State(service): State<Service>, uri: Uri, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let params: LeaderboardParams = query(&uri)?;
    let profile = params
        .profile
        .ok_or_else(|| ApiError::invalid(Some("profile".into()), "name the profile to list: ?profile=…"))?;
    let profile = ProfileId::parse(profile).map_err(|e| ApiError::invalid(Some("profile".into()), e.to_string()))?;
    let order = params.order.unwrap_or(Order::Desc);
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(Some("limit".into()), format!("limit must be 1-{MAX_PAGE}")));
    }
    // The cursor key: the tenant's token hash, a secret that never leaves the store.
    let record =
        service.tenant_view(&tenant).await?.ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    let key = record.record.token_hash.as_bytes();
    let after = params
        .cursor
        .map(|c| {
            cursor::decode(key, &c, &tenant, &profile, order)
                .ok_or_else(|| ApiError::malformed("the cursor is not one this listing issued (forged, altered, or for another tenant, profile or order)"))
        })
        .transpose()?;
    let query = LeaderboardQuery {
        profile: profile.clone(),
        order,
        min: points_param("min", params.min)?,
        max: points_param("max", params.max)?,
        limit,
        after,
    };
    let page = service.leaderboard(&tenant, &query).await?;
    let contacts: Vec<Value> = page
        .rows
        .iter()
        .map(|row| json!({"contact_id": row.contact_id, "score": row.score, "updated_at": row.updated_at}))
        .collect();
    let next_cursor = page.next.map(|after| cursor::encode(key, &tenant, &profile, order, &after));
    Ok(Json(json!({"contacts": contacts, "next_cursor": next_cursor})))
}

async fn scores(
    State(service): State<Service>,
    Path((_, contact)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let contact = path_id::<ContactId>(contact)?;
    let views = service.contact_scores(&tenant, &contact).await?;
    let scores: serde_json::Map<String, Value> = views
        .into_iter()
        .map(|(profile, view)| {
            let ledger: Vec<Value> = view
                .ledger
                .iter()
                .map(|e| {
                    json!({"rule": e.rule, "points": e.points, "current": e.value_at(view.as_of),
                           "event_id": e.event_id, "at": e.at, "expires_at": e.expires_at, "decay": e.decay,
                           "merged": e.merged, "profile_version": e.version})
                })
                .collect();
            (profile.to_string(), json!({"score": view.score, "updated_at": view.updated_at, "ledger": ledger}))
        })
        .collect();
    Ok(Json(json!({"contact_id": contact, "scores": scores})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdjustIn {
    op: AdjustOp,
    #[serde(default)]
    points: Option<Points>,
    #[serde(default)]
    expires_in: Option<Span>,
}

async fn adjust(
    State(service): State<Service>,
    Path((_, contact, profile)): Path<(String, String, String)>,
    scope: Scoped,
    JsonBody(body): JsonBody<AdjustIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let contact = path_id::<ContactId>(contact)?;
    let profile = path_id::<ProfileId>(profile)?;
    let input = AdjustInput { op: body.op, points: body.points, expires_in: body.expires_in };
    let score = service.adjust(&tenant, &contact, &profile, input).await?;
    Ok(Json(json!({"contact_id": contact, "profile": profile, "score": score})))
}
