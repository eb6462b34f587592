//! The delivery log: `GET /v1/tenants/{t}/actions?status=` and replay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::Uri;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{path_id, query, DEFAULT_PAGE, MAX_PAGE};
use crate::ids::ActionId;
use crate::outbox::{ActionStatus, OutboxItem};
use crate::service::Service;

pub fn router() -> Router<Service> {
    Router::new()
        .route("/v1/tenants/{tenant}/actions", get(list))
        .route("/v1/tenants/{tenant}/actions/{action}/replay", post(replay))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<ActionStatus>,
    limit: Option<usize>,
}

fn action_out(item: &OutboxItem) -> Value {
    let a = &item.action;
    json!({
        "id": a.id, "type": a.kind, "trigger": a.trigger, "contact_id": a.contact_id, "deal_id": a.deal_id,
        "params": a.params, "fired_at": a.fired_at, "status": item.status, "attempts": item.attempts,
        "next_attempt_at": item.next_attempt_at, "reason": item.reason,
    })
}

async fn list(State(service): State<Service>, uri: Uri, scope: Scoped) -> Result<Json<Value>, ApiError> {
    let tenant = scope.tenant;
    let params: ListParams = query(&uri)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(Some("limit".into()), format!("limit must be 1-{MAX_PAGE}")));
    }
    let actions: Vec<Value> = service.actions(&tenant, params.status, limit).await?.iter().map(action_out).collect();
    Ok(Json(json!({ "actions": actions })))
}

async fn replay(
    State(service): State<Service>,
    Path((_, action)): Path<(String, String)>,
    scope: Scoped,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = scope.tenant;
    let action = path_id::<ActionId>(action)?;
    let item = service.replay(&tenant, &action).await?;
    Ok((StatusCode::ACCEPTED, Json(action_out(&item))))
}
