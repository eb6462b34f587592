//! Scores of contacts and of deals: the leaderboard, one subject's scores
//! with their ledger, and manual adjustments. Both kinds share the handlers;
//! `/contacts` serves contact profiles and `/deals` deal profiles.

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
use crate::engine::profile::SubjectKind;
use crate::engine::AdjustOp;
use crate::ids::{ContactId, DealId, ProfileId};
use crate::service::scores::AdjustInput;
use crate::service::Service;
use crate::store::{LeaderboardQuery, Order};

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/contacts", get(|s, uri, scope| leaderboard(SubjectKind::Contact, s, uri, scope)))
        .route("/v1/tenants/{tenant}/deals", get(|s, uri, scope| leaderboard(SubjectKind::Deal, s, uri, scope)))
        .route(
            "/v1/tenants/{tenant}/contacts/{id}/scores",
            get(|s, path, scope| scores(SubjectKind::Contact, s, path, scope)),
        )
        .route(
            "/v1/tenants/{tenant}/deals/{id}/scores",
            get(|s, path, scope| scores(SubjectKind::Deal, s, path, scope)),
        )
        .route(
            "/v1/tenants/{tenant}/contacts/{id}/scores/{profile}",
            post(|s, path, scope, body| adjust(SubjectKind::Contact, s, path, scope, body)),
        )
        .route(
            "/v1/tenants/{tenant}/deals/{id}/scores/{profile}",
            post(|s, path, scope, body| adjust(SubjectKind::Deal, s, path, scope, body)),
        )
}

/// The stored key of a contact or deal named in a path.
fn subject(kind: SubjectKind, raw: String) -> Result<ContactId, ApiError> {
    match kind {
        SubjectKind::Contact => path_id::<ContactId>(raw),
        SubjectKind::Deal => path_id::<DealId>(raw).map(|deal| ContactId::for_deal(&deal)),
    }
}

/// A subject as the API names it: `{"contact_id": …}` or `{"deal_id": …}`.
fn named(subject: &ContactId) -> (&'static str, Value) {
    match subject.deal() {
        Some(deal) => ("deal_id", json!(deal)),
        None => ("contact_id", json!(subject)),
    }
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

async fn leaderboard(
    kind: SubjectKind,
    State(service): State<Service>,
    uri: Uri,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
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
    let page = service.leaderboard(&tenant, kind, &query).await?;
    let rows: Vec<Value> = page
        .rows
        .iter()
        .map(|row| {
            let (name, id) = named(&row.contact_id);
            json!({name: id, "score": row.score, "updated_at": row.updated_at})
        })
        .collect();
    let next_cursor = page.next.map(|after| cursor::encode(key, &tenant, &profile, order, &after));
    Ok(Json(json!({kind.plural(): rows, "next_cursor": next_cursor})))
}

async fn scores(
    kind: SubjectKind,
    State(service): State<Service>,
    Path((_, id)): Path<(String, String)>,
    scope: Scoped,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let contact = subject(kind, id)?;
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
    let (name, id) = named(&contact);
    Ok(Json(json!({name: id, "scores": scores})))
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
    kind: SubjectKind,
    State(service): State<Service>,
    Path((_, id, profile)): Path<(String, String, String)>,
    scope: Scoped,
    JsonBody(body): JsonBody<AdjustIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let contact = subject(kind, id)?;
    let profile = path_id::<ProfileId>(profile)?;
    let input = AdjustInput { op: body.op, points: body.points, expires_in: body.expires_in };
    let score = service.adjust(&tenant, &contact, &profile, input).await?;
    let (name, id) = named(&contact);
    Ok(Json(json!({name: id, "profile": profile, "score": score})))
}
