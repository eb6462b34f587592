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

pub use auth::verify;
pub use inbound::normalize;
pub use outbound::deliver;
pub use resolve::resolve;

use super::limiter::Rate;
use super::outbound::ApiConfig;
use crate::tenant::Provider;

/// Pipedrive's API: the global host (a company domain works too, via
/// `crm.base_url`), 20 requests per rolling 2 s for an API token on the
/// Essential plan (higher plans allow more; this is the floor).
pub const API: ApiConfig = ApiConfig {
    provider: Provider::Pipedrive,
    default_base: "https://api.pipedrive.com",
    // api.pipedrive.com, or the company domain `<company>.pipedrive.com`.
    hosts: &["pipedrive.com"],
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
