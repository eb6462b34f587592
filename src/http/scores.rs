//! Scores of contacts and of deals: the leaderboard, one subject's scores
//! with their ledger, and manual adjustments. Both kinds share the work;
//! `/contacts` serves contact profiles and `/deals` deal profiles, each with
//! its own operation, since their rows name a `contact_id` or a `deal_id`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Scoped;
use super::cursor;
use super::error::ApiError;
use super::extract::{path_id, query, JsonBody, PathParams, DEFAULT_PAGE, MAX_PAGE};
use super::openapi::errors::{BodyErrors, QueryErrors, ReadErrors};
use super::openapi::schemas;
use crate::engine::decay::Decay;
use crate::engine::duration::Span;
use crate::engine::points::Points;
use crate::engine::profile::SubjectKind;
use crate::engine::AdjustOp;
use crate::ids::{ContactId, DealId, EventId, ProfileId};
use crate::service::scores::{AdjustInput, ScoreView};
use crate::service::Service;
use crate::store::{LeaderboardQuery, Order};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(contact_leaderboard))
        .routes(routes!(deal_leaderboard))
        .routes(routes!(contact_scores))
        .routes(routes!(deal_scores))
        .routes(routes!(adjust_contact))
        .routes(routes!(adjust_deal))
}

/// The stored key of a contact or deal named in a path.
pub(super) fn subject(kind: SubjectKind, raw: String) -> Result<ContactId, ApiError> {
    match kind {
        SubjectKind::Contact => path_id::<ContactId>(raw),
        SubjectKind::Deal => path_id::<DealId>(raw).map(|deal| ContactId::for_deal(&deal)),
    }
}

/// A subject as the API names it: the contact id, or the deal id of a deal's key.
fn named(subject: &ContactId) -> String {
    match subject.deal() {
        Some(deal) => deal.to_string(),
        None => subject.to_string(),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LeaderboardParams {
    /// The profile to list (required).
    profile: Option<String>,
    /// `desc` (the default) or `asc`.
    #[param(inline)]
    order: Option<Order>,
    /// Lowest score listed, a number.
    min: Option<String>,
    /// Highest score listed, a number.
    max: Option<String>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page of this same listing.
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

/// One leaderboard page: each row's subject, score and last change, and the cursor of the next page.
struct Page {
    rows: Vec<(String, Points, Option<DateTime<Utc>>)>,
    next_cursor: Option<String>,
}

async fn leaderboard(kind: SubjectKind, service: &Service, uri: &Uri, scope: Scoped) -> Result<Page, ApiError> {
    let tenant = scope.tenant;
    let params: LeaderboardParams = query(uri)?;
    let profile = params
        .profile
        .ok_or_else(|| ApiError::invalid(Some("profile".into()), "name the profile to list: ?profile=…"))?;
    let profile = ProfileId::parse(profile).map_err(|e| ApiError::invalid(Some("profile".into()), e.to_string()))?;
    let order = params.order.unwrap_or(Order::Desc);
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(Some("limit".into()), format!("limit must be 1-{MAX_PAGE}")));
    }
    // The cursor key: the tenant's token hash, a secret that never leaves the
    // store (a cursor signed with the previous token's still reads in its grace).
    let record =
        service.tenant_view(&tenant).await?.ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    let key = record.record.token_hash.as_bytes();
    let now = service.clock.now();
    let after = params
        .cursor
        .map(|c| {
            record
                .record
                .cursor_keys(now)
                .find_map(|key| cursor::decode(key, &c, &tenant, &profile, order))
                .ok_or_else(|| ApiError::malformed("the cursor is not one this listing issued (forged, altered, or for another tenant, profile or order)"))
        })
        .transpose()?;
    let (min, max) = (points_param("min", params.min)?, points_param("max", params.max)?);
    if let (Some(low), Some(high)) = (min, max) {
        if low > high {
            return Err(ApiError::invalid(
                Some("min".into()),
                format!("min ({low}) is above max ({high}): no score is in that range"),
            ));
        }
    }
    let query = LeaderboardQuery { profile: profile.clone(), order, min, max, limit, after };
    let page = service.leaderboard(&tenant, kind, &query).await?;
    let rows = page.rows.iter().map(|row| (named(&row.contact_id), row.score, row.updated_at)).collect();
    let next_cursor = page.next.map(|after| cursor::encode(key, &tenant, &profile, order, &after));
    Ok(Page { rows, next_cursor })
}

#[derive(Serialize, ToSchema)]
struct ContactRow {
    contact_id: String,
    #[schema(value_type = f64)]
    score: Points,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct ContactList {
    contacts: Vec<ContactRow>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DealRow {
    deal_id: String,
    #[schema(value_type = f64)]
    score: Points,
    updated_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct DealList {
    deals: Vec<DealRow>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// Contacts by score in a contact profile.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/contacts",
    tag = "scores",
    params(("tenant" = String, Path, description = "The tenant id"), LeaderboardParams),
    responses((status = 200, body = ContactList), QueryErrors)
)]
async fn contact_leaderboard(
    State(service): State<Service>,
    uri: Uri,
    scope: Scoped,
) -> Result<Json<ContactList>, ApiError> {
    let page = leaderboard(SubjectKind::Contact, &service, &uri, scope).await?;
    let contacts =
        page.rows.into_iter().map(|(contact_id, score, updated_at)| ContactRow { contact_id, score, updated_at });
    Ok(Json(ContactList { contacts: contacts.collect(), next_cursor: page.next_cursor }))
}

/// Deals by score in a deal profile.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deals",
    tag = "scores",
    params(("tenant" = String, Path, description = "The tenant id"), LeaderboardParams),
    responses((status = 200, body = DealList), QueryErrors)
)]
async fn deal_leaderboard(State(service): State<Service>, uri: Uri, scope: Scoped) -> Result<Json<DealList>, ApiError> {
    let page = leaderboard(SubjectKind::Deal, &service, &uri, scope).await?;
    let deals = page.rows.into_iter().map(|(deal_id, score, updated_at)| DealRow { deal_id, score, updated_at });
    Ok(Json(DealList { deals: deals.collect(), next_cursor: page.next_cursor }))
}

/// One ledger entry: why points were booked, and what they count now.
#[derive(Serialize, ToSchema)]
struct LedgerOut {
    /// A rule id, `manual.<op>`, `trigger.<id>.<op>` or `profile.recompute`.
    rule: String,
    #[schema(value_type = f64)]
    points: Points,
    /// What the entry counts now: decayed, or zero once expired.
    #[schema(value_type = f64)]
    current: Points,
    #[schema(value_type = Option<String>)]
    event_id: Option<EventId>,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<schemas::Decay>)]
    decay: Option<Decay>,
    /// How many interactions a recompute merged into this entry.
    merged: Option<u32>,
    /// Set when booking all the points asked for (this value) would have
    /// taken the score past ±1e12: `points` is the part booked.
    #[schema(value_type = Option<f64>)]
    saturated: Option<Points>,
    profile_version: u32,
}

/// One profile's score of a subject, with its ledger since the last reset (the latest 1,000 entries).
#[derive(Serialize, ToSchema)]
struct ScoreOut {
    #[schema(value_type = f64)]
    score: Points,
    updated_at: Option<DateTime<Utc>>,
    ledger: Vec<LedgerOut>,
}

impl From<ScoreView> for ScoreOut {
    fn from(view: ScoreView) -> Self {
        let ledger = view
            .ledger
            .iter()
            .map(|e| LedgerOut {
                rule: e.rule.clone(),
                points: e.points,
                current: e.value_at(view.as_of),
                event_id: e.event_id.clone(),
                at: e.at,
                expires_at: e.expires_at,
                decay: e.decay,
                merged: e.merged,
                saturated: e.saturated,
                profile_version: e.version,
            })
            .collect();
        Self { score: view.score, updated_at: view.updated_at, ledger }
    }
}

async fn scores_of(
    kind: SubjectKind,
    service: &Service,
    raw: String,
    scope: Scoped,
) -> Result<(String, BTreeMap<String, ScoreOut>), ApiError> {
    let contact = subject(kind, raw)?;
    let views = service.contact_scores(&scope.tenant, &contact).await?;
    let scores = views.into_iter().map(|(profile, view)| (profile.to_string(), ScoreOut::from(view))).collect();
    Ok((named(&contact), scores))
}

/// Every score of a contact, by profile.
#[derive(Serialize, ToSchema)]
struct ContactScores {
    contact_id: String,
    scores: BTreeMap<String, ScoreOut>,
}

/// Every score of a deal, by deal profile.
#[derive(Serialize, ToSchema)]
struct DealScores {
    deal_id: String,
    scores: BTreeMap<String, ScoreOut>,
}

/// A contact's scores with their ledgers.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/contacts/{id}/scores",
    tag = "scores",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The contact id"),
    ),
    responses((status = 200, body = ContactScores), ReadErrors)
)]
async fn contact_scores(
    State(service): State<Service>,
    PathParams((_, id)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<ContactScores>, ApiError> {
    let (contact_id, scores) = scores_of(SubjectKind::Contact, &service, id, scope).await?;
    Ok(Json(ContactScores { contact_id, scores }))
}

/// A deal's scores with their ledgers.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/deals/{id}/scores",
    tag = "scores",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The deal id"),
    ),
    responses((status = 200, body = DealScores), ReadErrors)
)]
async fn deal_scores(
    State(service): State<Service>,
    PathParams((_, id)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<Json<DealScores>, ApiError> {
    let (deal_id, scores) = scores_of(SubjectKind::Deal, &service, id, scope).await?;
    Ok(Json(DealScores { deal_id, scores }))
}

/// A manual adjustment; `points` is required by every `op` but `reset`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AdjustIn {
    #[schema(value_type = schemas::AdjustOp)]
    op: AdjustOp,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    points: Option<Points>,
    /// When the points stop counting, e.g. `30d`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    expires_in: Option<Span>,
}

async fn adjust(
    kind: SubjectKind,
    service: &Service,
    (id, profile): (String, String),
    scope: Scoped,
    body: AdjustIn,
) -> Result<AdjustOut, ApiError> {
    let contact = subject(kind, id)?;
    let profile = path_id::<ProfileId>(profile)?;
    let input = AdjustInput { op: body.op, points: body.points, expires_in: body.expires_in };
    let score = service.adjust(&scope.tenant, &contact, &profile, input).await?;
    Ok(AdjustOut { id: named(&contact), profile, score })
}

/// The new score after an adjustment (`null` after a reset).
struct AdjustOut {
    id: String,
    profile: ProfileId,
    score: Option<Points>,
}

#[derive(Serialize, ToSchema)]
struct ContactAdjusted {
    contact_id: String,
    #[schema(value_type = String)]
    profile: ProfileId,
    /// `null` after a reset.
    #[schema(value_type = Option<f64>)]
    score: Option<Points>,
}

#[derive(Serialize, ToSchema)]
struct DealAdjusted {
    deal_id: String,
    #[schema(value_type = String)]
    profile: ProfileId,
    /// `null` after a reset.
    #[schema(value_type = Option<f64>)]
    score: Option<Points>,
}

/// Adjusts a contact's score in a published profile; fires score triggers.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/contacts/{id}/scores/{profile}",
    tag = "scores",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The contact id"),
        ("profile" = String, Path, description = "A published contact profile"),
    ),
    request_body = AdjustIn,
    responses((status = 200, body = ContactAdjusted), BodyErrors)
)]
async fn adjust_contact(
    State(service): State<Service>,
    PathParams((_, id, profile)): PathParams<(String, String, String)>,
    scope: Scoped,
    JsonBody(body): JsonBody<AdjustIn>,
) -> Result<Json<ContactAdjusted>, ApiError> {
    let out = adjust(SubjectKind::Contact, &service, (id, profile), scope, body).await?;
    Ok(Json(ContactAdjusted { contact_id: out.id, profile: out.profile, score: out.score }))
}

/// Adjusts a deal's score in a published deal profile; fires score triggers.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/deals/{id}/scores/{profile}",
    tag = "scores",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("id" = String, Path, description = "The deal id"),
        ("profile" = String, Path, description = "A published deal profile"),
    ),
    request_body = AdjustIn,
    responses((status = 200, body = DealAdjusted), BodyErrors)
)]
async fn adjust_deal(
    State(service): State<Service>,
    PathParams((_, id, profile)): PathParams<(String, String, String)>,
    scope: Scoped,
    JsonBody(body): JsonBody<AdjustIn>,
) -> Result<Json<DealAdjusted>, ApiError> {
    let out = adjust(SubjectKind::Deal, &service, (id, profile), scope, body).await?;
    Ok(Json(DealAdjusted { deal_id: out.id, profile: out.profile, score: out.score }))
}
