//! The Pipedrive connector: webhooks v2 (and legacy v1) in, REST API v2 calls out.
//!
//! Facts come from `shared/crm/pipedrive.md`; `docs/connectors/pipedrive.md`
//! is the admin's guide. Layout:
//! - `auth`: the webhook's HTTP Basic credentials (Pipedrive's only
//!   authenticity scheme);
//! - `inbound`: a body (`{meta, data, previous}` or v1) into interactions;
//! - `resolve`: deal events without a person, completed through the API;
//! - `outbound`: fired actions into API calls, and the "slow down" answer.
//!
//! Pipedrive bans and then deletes webhooks that keep failing, so every kind
//! of event this module does not score is acknowledged as `Unmapped`, never
//! refused.

mod auth;
mod inbound;
mod outbound;
mod resolve;

use super::inbound::{Inbound, InboundError, Request, Unresolved};
use super::limiter::Rate;
use super::outbound::{ApiConfig, Reach};
use super::DeliveryError;
use crate::engine::interaction::Interaction;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};

/// Pipedrive's API: the global host (a company domain works too, via
/// `crm.base_url`), 20 requests per rolling 2 s for an API token on the
/// Essential plan (higher plans allow more; this is the floor).
pub const API: ApiConfig = ApiConfig {
    provider: Provider::Pipedrive,
    default_base: "https://api.pipedrive.com",
    rate: Rate::per(20.0, 2.0),
    slow_down: outbound::slow_down,
};

/// Settings keys of the tenant's `crm` map that this connector reads.
mod keys {
    /// HTTP Basic user name set on the webhook (its password is the tenant's `webhook_secret`).
    pub const WEBHOOK_USER: &str = "webhook_user";
    /// Optional: events of any other Pipedrive company are not scored.
    pub const COMPANY_ID: &str = "company_id";
    /// The API token sent as `x-api-token` (a credential).
    pub const API_TOKEN: &str = "api_token";
    /// Optional: activity type key -> interaction type, replacing the defaults.
    pub const ACTIVITY_TYPES: &str = "activity_types";
    /// Optional: the field code of the person field tags are written to (default: the built-in label field).
    pub const LABEL_FIELD: &str = "label_field";
    /// Optional: the activity type key of created tasks (default `task`).
    pub const TASK_TYPE: &str = "task_type";
}

/// Checks the webhook's HTTP Basic credentials.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    auth::verify(tenant, request)
}

/// Turns one webhook body (one event) into inbound items.
pub fn normalize(tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    inbound::normalize(tenant, request)
}

/// Completes a deal event that named no person, through `GET /api/v2/deals/{id}`.
pub async fn resolve(
    reach: Reach<'_>,
    tenant: &TenantRecord,
    event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    resolve::resolve(reach, tenant, event).await
}

/// Performs one fired action through the API; `Ok` is the status of the last call.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    outbound::deliver(reach, tenant, item).await
}
