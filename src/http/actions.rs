//! The delivery log: `GET /v1/tenants/{t}/actions?status=` and replay.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{path_id, query, PathParams, DEFAULT_PAGE, MAX_PAGE};
use super::openapi::errors::{QueryErrors, StepErrors};
use crate::ids::{ActionId, ContactId, DealId, TriggerId};
use crate::outbox::{ActionStatus, Attempt, OutboxItem};
use crate::service::Service;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(replay))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only actions in this state.
    #[param(inline)]
    status: Option<ActionStatus>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A fired action and every attempt to deliver it.
#[derive(Serialize, ToSchema)]
struct ActionOut {
    /// Stable across retries and replays.
    #[schema(value_type = String)]
    id: ActionId,
    /// `add_tag`, `move_stage`, … (`resolve_event` for an id-only webhook event awaiting resolution).
    r#type: String,
    #[schema(value_type = String)]
    trigger: TriggerId,
    #[schema(value_type = String)]
    contact_id: ContactId,
    #[schema(value_type = Option<String>)]
    deal_id: Option<DealId>,
    #[schema(value_type = Object)]
    params: Value,
    fired_at: DateTime<Utc>,
    status: ActionStatus,
    attempts: Vec<Attempt>,
    next_attempt_at: Option<DateTime<Utc>>,
    /// Why it was skipped or is dead.
    reason: Option<String>,
}

impl From<&OutboxItem> for ActionOut {
    fn from(item: &OutboxItem) -> Self {
        let a = &item.action;
        Self {
            id: a.id.clone(),
            r#type: a.kind.clone(),
            trigger: a.trigger.clone(),
            contact_id: a.contact_id.clone(),
            deal_id: a.deal_id.clone(),
            params: a.params.clone(),
            fired_at: a.fired_at,
            status: item.status,
            attempts: item.attempts.clone(),
            next_attempt_at: item.next_attempt_at,
            reason: item.reason.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct ActionList {
    actions: Vec<ActionOut>,
}

/// Fired actions, newest first, with every attempt.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/actions",
    operation_id = "list_actions",
    tag = "actions",
    params(("tenant" = String, Path, description = "The tenant id"), ListParams),
    responses((status = 200, body = ActionList), QueryErrors)
)]
async fn list(State(service): State<Service>, uri: Uri, scope: Scoped) -> Result<Json<ActionList>, ApiError> {
    let tenant = scope.tenant;
    let params: ListParams = query(&uri)?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(Some("limit".into()), format!("limit must be 1-{MAX_PAGE}")));
    }
    let actions = service.actions(&tenant, params.status, limit).await?.iter().map(ActionOut::from).collect();
    Ok(Json(ActionList { actions }))
}

/// Re-queues a failed or dead action under the same id, with a fresh retry schedule.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/actions/{action}/replay",
    operation_id = "replay_action",
    tag = "actions",
    params(
        ("tenant" = String, Path, description = "The tenant id"),
        ("action" = String, Path, description = "The action id"),
    ),
    responses((status = 202, description = "Queued again", body = ActionOut), StepErrors)
)]
async fn replay(
    State(service): State<Service>,
    PathParams((_, action)): PathParams<(String, String)>,
    scope: Scoped,
) -> Result<(StatusCode, Json<ActionOut>), ApiError> {
    let tenant = scope.tenant;
    let action = path_id::<ActionId>(action)?;
    let item = service.replay(&tenant, &action).await?;
    Ok((StatusCode::ACCEPTED, Json(ActionOut::from(&item))))
}
